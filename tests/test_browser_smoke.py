"""A real Chromium against daphne serving the app with production settings."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from conversations.models import LanguageModel
from tests.conftest import PASSWORD, make_user
from tests.live_server import LiveServer

pytestmark = pytest.mark.browser


def log_in(page: Page, server: LiveServer, username: str) -> None:
    page.goto(f"{server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_a_user_logs_in_and_sees_the_home_page(page: Page, app_server: LiveServer) -> None:
    make_user("carol", real_hash=True)
    LanguageModel.objects.create(
        name="llama3.2:latest", display_name="Llama 3.2", enabled=True, is_default=True
    )

    page.goto(app_server.url)
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))

    log_in(page, app_server, "carol")

    expect(page).to_have_url(f"{app_server.url}/")
    expect(page.get_by_test_id("conversation-list")).to_contain_text("No conversations yet")
    expect(page.get_by_test_id("new-conversation")).to_be_visible()
    expect(page.get_by_test_id("composer")).to_be_visible()
    expect(page.get_by_test_id("model-select")).to_have_value(str(LanguageModel.objects.get().pk))
    expect(page.get_by_test_id("send")).to_be_enabled()
    # Static files come from the app itself: the stylesheet applies and htmx loaded.
    expect(page.locator(".layout")).to_have_css("display", "grid")
    page.wait_for_function("() => window.htmx !== undefined")


def test_a_wrong_password_is_refused_with_a_message(page: Page, app_server: LiveServer) -> None:
    make_user("dave", real_hash=True)
    page.goto(f"{app_server.url}/accounts/login/")
    page.fill("input[name=username]", "dave")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")

    expect(page.get_by_role("alert")).to_contain_text("do not match")
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def test_logging_out_returns_to_the_login_page(page: Page, app_server: LiveServer) -> None:
    make_user("erin", real_hash=True)
    log_in(page, app_server, "erin")
    page.get_by_test_id("logout").click()

    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.goto(app_server.url)
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
