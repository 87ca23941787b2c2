"""The admin in a real Chromium against daphne and the fake Ollama: an admin's first session
from sync to a locked prompt a user then chats under, the pull progress page, the prompt
preview, and untrusted text in transcripts. Screenshots go to screenshots/ (not committed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from conversations.fake_ollama import FakeOllamaServer
from conversations.models import Conversation, LanguageModel, Message, SystemPrompt
from conversations.services import system_prompt_save
from tests.browsing import log_in, reply_article, screenshot
from tests.conftest import PASSWORD, live_server_environment, make_chat_admin, make_user
from tests.live_server import LiveServer, daphne_process
from tests.test_browser_ui import XSS_PAYLOADS

pytestmark = pytest.mark.browser

LOCKED_TEXT = "You are the support desk of Example Corp. Answer in one paragraph."


def admin_log_in(page: Page, server: LiveServer, username: str = "dana") -> None:
    page.goto(f"{server.url}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()


def test_an_admin_syncs_enables_a_model_and_locks_a_prompt_that_a_user_then_chats_under(
    browser: Browser, page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer
) -> None:
    # A team already chatting with one model: newly synced models arrive disabled.
    LanguageModel.objects.create(name="llama3.2:latest", enabled=True, is_default=True)
    make_chat_admin("dana", real_hash=True)
    make_user("carol", real_hash=True)
    other = SystemPrompt.objects.create(name="Pirate", text="Talk like a pirate.")
    system_prompt_save(prompt=other, edited_by=None)

    admin_log_in(page, app_server)
    page.goto(f"{app_server.url}/admin/conversations/languagemodel/")
    page.get_by_test_id("admin-sync").click()
    expect(page.locator(".messagelist")).to_contain_text("Synced from Ollama: 9 added")
    qwen_row = page.locator("#result_list tr", has_text="qwen3:latest")
    expect(qwen_row).to_contain_text("completion, tools, thinking")
    expect(qwen_row).to_contain_text("8.2B · Q4_K_M")
    screenshot(page, "admin-models")

    # Enable Qwen 3 right in the list.
    qwen_row.locator("input[name$='-enabled']").check()
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    assert LanguageModel.objects.get(name="qwen3:latest").enabled

    # Write a prompt locked to it.
    page.goto(f"{app_server.url}/admin/conversations/systemprompt/add/")
    page.fill("input[name=name]", "Support desk")
    page.fill("textarea[name=text]", LOCKED_TEXT)
    qwen = LanguageModel.objects.get(name="qwen3:latest")
    page.select_option("select[name=default_for_model]", value=str(qwen.pk))
    page.check("input[name=locked]")
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    screenshot(page, "admin-prompts")

    # A user picks Qwen 3: the page says which prompt is in force and offers no other.
    user_page = browser.new_context().new_page()
    user_page.set_default_timeout(10_000)
    log_in(user_page, app_server, "carol")
    option = user_page.locator("[data-testid=model-select] option", has_text="qwen3").first
    user_page.select_option("[data-testid=model-select]", value=option.get_attribute("value"))
    expect(user_page.get_by_test_id("locked-prompt")).to_contain_text("Support desk")
    expect(user_page.get_by_test_id("system-prompt-select")).to_be_hidden()
    # Even a user who forces the hidden select to another prompt gets the locked one.
    user_page.fill("[data-testid=composer] textarea[name=content]", "How do I reset my password?")
    user_page.evaluate(
        """(id) => {
            const select = document.querySelector('[data-testid=system-prompt-select]');
            select.disabled = false;
            select.closest('label').hidden = false;
            select.add(new Option('Pirate', id));
            select.value = id;
        }""",
        str(other.pk),
    )
    with user_page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/new/")
    ) as sent_form:
        user_page.get_by_test_id("send").click()
    assert f'name="system_prompt"\r\n\r\n{other.pk}\r\n' in (sent_form.value.post_data or "")
    expect(user_page).to_have_url(re.compile(r"/conversations/\d+/$"))
    conversation = Conversation.objects.get(pk=int(user_page.url.rstrip("/").rsplit("/", 1)[1]))
    expect(reply_article(user_page)).to_have_attribute("data-status", "complete", timeout=15_000)
    user_page.context.close()

    sent = browser_ollama.requests_to("/api/chat")[-1].body
    assert sent is not None
    assert sent["model"] == "qwen3:latest"
    assert sent["messages"][0] == {"role": "system", "content": LOCKED_TEXT}
    assert sent["messages"][-1]["content"] == "How do I reset my password?"
    conversation.refresh_from_db()
    assert conversation.system_prompt_name == "Support desk"
    assert conversation.system_prompt_text == LOCKED_TEXT


def test_a_pull_shows_live_progress_that_survives_a_reload(
    page: Page,
    app_server: LiveServer,
    browser_ollama: FakeOllamaServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    LanguageModel.objects.create(name="llama3.2:latest", enabled=True)
    monkeypatch.setattr(browser_ollama, "pull_step_seconds", 0.4)
    make_chat_admin("dana", real_hash=True)
    admin_log_in(page, app_server)
    page.goto(f"{app_server.url}/admin/conversations/languagemodel/")
    page.get_by_test_id("admin-pull").click()
    page.fill("input[name=name]", "gemma3:1b")
    page.get_by_test_id("admin-pull-start").click()
    progress = page.get_by_test_id("pull-progress")
    expect(progress).to_have_attribute("data-status", "running")
    # The bar moves while the page stays open (htmx polls the row).
    expect(page.get_by_test_id("pull-percent")).not_to_have_text("0%", timeout=10_000)
    screenshot(page, "admin-pull")
    page.reload()
    expect(page.get_by_test_id("pull-done")).to_contain_text(
        "gemma3:1b is on the server", timeout=20_000
    )
    expect(page.get_by_test_id("pull-percent")).to_have_text("100%")
    gemma = LanguageModel.objects.get(name="gemma3:1b")
    assert gemma.installed and not gemma.enabled


def test_the_prompt_preview_streams_the_answer_as_text(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer
) -> None:
    LanguageModel.objects.create(name="llama3.2:latest", enabled=True, is_default=True)
    make_chat_admin("dana", real_hash=True)
    admin_log_in(page, app_server)
    page.goto(f"{app_server.url}/admin/conversations/systemprompt/add/")
    page.fill("textarea[name=text]", "Answer like a <b>pirate</b>.")
    page.fill("[data-testid=prompt-preview-message]", "<img src=x onerror=window.__xss=1>")
    page.get_by_test_id("prompt-preview-run").click()
    output = page.get_by_test_id("prompt-preview-output")
    expect(page.locator("#prompt-preview[data-preview-done=true]")).to_be_attached(timeout=15_000)
    sent = browser_ollama.requests_to("/api/chat")[-1].body
    assert sent is not None
    assert sent["messages"][0] == {"role": "system", "content": "Answer like a <b>pirate</b>."}
    # The fake echoes the test message back: it must arrive as text.
    expect(output).to_contain_text("<img src=x onerror=window.__xss=1>")
    assert page.evaluate("window.__xss") is None
    expect(output.locator("img")).to_have_count(0)
    assert not SystemPrompt.objects.exists()  # the preview saved nothing
    screenshot(page, "admin-prompt-preview")


def test_an_xss_battery_in_transcripts_executes_nothing_in_the_admin(
    browser: Browser,
    app_server: LiveServer,
    browser_ollama: FakeOllamaServer,
    tmp_path: Path,
) -> None:
    model = LanguageModel.objects.create(name="llama3.2:latest", enabled=True)
    owner = make_user("carol", real_hash=True)
    admin = make_user("root", real_hash=True, is_staff=True, is_superuser=True)
    assert admin.is_superuser
    battery = "\n\n".join(XSS_PAYLOADS)
    conversation = Conversation.objects.create(
        owner=owner,
        model=model,
        model_name=model.name,
        title="<img src=x onerror=\"window.__xss='title'\">",
    )
    Message.objects.create(conversation=conversation, role="user", content=battery)
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        content=battery,
        thinking=battery,
        error="<script>window.__xss='error'</script>",
        status="error",
        model_name="<svg onload=\"window.__xss='model'\">",
    )

    # Transcripts readable: a daphne of its own with the operator's setting on.
    env = live_server_environment(browser_ollama, ADMIN_CAN_READ_TRANSCRIPTS="1")
    with daphne_process(env, tmp_path / "daphne.log") as server:
        page = browser.new_context().new_page()
        page.set_default_timeout(10_000)
        admin_log_in(page, server, "root")
        for path in (
            "/admin/conversations/conversation/",
            f"/admin/conversations/conversation/?q={conversation.title[:8]}",
            f"/admin/conversations/conversation/{conversation.pk}/change/",
            "/admin/",
        ):
            page.goto(f"{server.url}{path}")
            for summary in page.locator("details summary").all():
                summary.click()
            for link in page.locator(".transcript a").all():
                link.click(modifiers=["Control"])
            page.wait_for_timeout(200)
            assert page.evaluate("window.__xss") is None, path
        page.goto(f"{server.url}/admin/conversations/conversation/{conversation.pk}/change/")
        transcript = page.get_by_test_id("admin-transcript")
        expect(transcript).to_contain_text("<script>window.__xss = 'script'</script>")
        expect(
            transcript.locator("script, iframe, svg, img, form, [onerror], [onload]")
        ).to_have_count(0)
        expect(transcript.locator("[href^='javascript:']")).to_have_count(0)
        screenshot(page, "admin-transcript-xss")
        page.context.close()
