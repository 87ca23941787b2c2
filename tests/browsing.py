"""What browser tests do again and again: log in, start a conversation, find the reply, and
keep screenshots of the screens for people to look at (``screenshots/``, not committed)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from conversations.models import Conversation
from tests.conftest import PASSWORD
from tests.live_server import BASE_DIR, LiveServer

SCREENSHOTS = BASE_DIR / "screenshots"


def log_in(page: Page, server: LiveServer, username: str = "carol") -> None:
    page.goto(f"{server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{server.url}/")


def start_conversation(page: Page, model: str, content: str = "Hello there") -> Conversation:
    # By the start of its label, which goes on with its capabilities ("Qwen 3 · thinking").
    option = page.locator("[data-testid=model-select] option", has_text=model).first
    page.select_option("[data-testid=model-select]", value=option.get_attribute("value"))
    page.fill("[data-testid=composer] textarea[name=content]", content)
    page.get_by_test_id("send").click()
    expect(page).to_have_url(re.compile(r"/conversations/\d+/$"))
    return Conversation.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))


def reply_article(page: Page) -> Locator:
    return page.locator("[data-testid=message][data-role=assistant]").last


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
