"""Chatting in a real Chromium against daphne (production settings) and the fake Ollama."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from conversations.fake_ollama import FakeOllamaServer, expected_reply
from conversations.fake_ollama.replies import reply_tokens_for
from conversations.models import LanguageModel, Message
from tests.browsing import log_in, reply_article, start_conversation
from tests.conftest import live_server_environment, make_user
from tests.live_server import LiveServer, daphne_process
from tests.shown import shown_text

pytestmark = pytest.mark.browser

HELLO = [{"role": "user", "content": "Hello there"}]


# What the "stall" model sends before it goes quiet (with the connection left open).
STALL_POINT = "".join(
    reply_tokens_for("stall:latest", [{"role": "user", "content": "Hello there"}])[:5]
)


def wait_for_status(message_id: int, *statuses: str, timeout: float = 15) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = Message.objects.get(pk=message_id)
        if message.status in statuses:
            return message
        time.sleep(0.05)
    raise AssertionError(
        f"message {message_id} is still {Message.objects.get(pk=message_id).status}"
    )


@pytest.fixture
def models() -> None:
    for name, capabilities in [
        ("llama3.2:latest", ["completion", "tools"]),
        ("qwen3:latest", ["completion", "thinking"]),
        ("broken:latest", ["completion"]),
        ("stall:latest", ["completion"]),
    ]:
        LanguageModel.objects.create(
            name=name, enabled=True, capabilities=capabilities, is_default=name == "llama3.2:latest"
        )
    make_user("carol", real_hash=True)


def test_a_reply_streams_into_the_page_and_is_saved_exactly(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: None
) -> None:
    browser_ollama.model("llama3.2").reply_tokens = 80
    log_in(page, app_server)
    conversation = start_conversation(page, "llama3.2:latest")

    reply = reply_article(page)
    body = reply.get_by_test_id("message-content")
    states = set()
    while reply.get_attribute("data-status") == "streaming":
        states.add(body.text_content())
        time.sleep(0.05)
    expect(reply).to_have_attribute("data-status", "complete")

    expected = expected_reply("llama3.2:latest", HELLO, reply_tokens=80)
    saved = Message.objects.get(conversation=conversation, role="assistant")
    assert saved.content == expected
    assert body.text_content() == shown_text(expected)
    assert len({s for s in states if s and s != expected}) >= 3  # it grew on screen
    expect(reply.get_by_test_id("message-stats")).to_contain_text("80 tokens")
    expect(page.get_by_test_id("stop")).to_have_count(0)
    expect(page.get_by_test_id("regenerate")).to_be_visible()
    # The user's message, and the title that replaces its first words.
    expect(page.locator("[data-testid=message][data-role=user]")).to_have_text(
        re.compile("Hello there")
    )
    expect(page.get_by_test_id("conversation-title")).to_contain_text("Hello from llama3.2")
    expect(page).to_have_title(re.compile(r"^Hello from llama3\.2"))
    expect(page.locator(f"#conversation-item-{conversation.pk}")).to_contain_text("Hello from")


def test_a_follow_up_goes_over_the_socket(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: None
) -> None:
    log_in(page, app_server)
    start_conversation(page, "llama3.2:latest")
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    page.fill("#composer-input", "And then?")
    page.get_by_test_id("send").click()

    expect(page.locator("[data-testid=message]")).to_have_count(4)
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(page.locator("#composer-input")).to_have_value("")
    sent = browser_ollama.requests_to("/api/chat")[-1].body
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]


def test_stop_keeps_the_partial_reply(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: None
) -> None:
    browser_ollama.model("llama3.2").reply_tokens = 400
    log_in(page, app_server)
    conversation = start_conversation(page, "llama3.2:latest")
    reply = reply_article(page)
    expect(reply.get_by_test_id("message-content")).to_contain_text("You wrote")

    page.get_by_test_id("stop").click()

    expect(reply).to_have_attribute("data-status", "stopped")
    expect(page.get_by_test_id("stop")).to_have_count(0)
    saved = Message.objects.get(conversation=conversation, role="assistant")
    assert saved.status == "stopped"
    assert "You wrote" in saved.content
    assert shown_text(saved.content) == reply.get_by_test_id("message-content").text_content()
    assert browser_ollama.wait_for(lambda: browser_ollama.requests_to("/api/chat")[0].disconnected)


def test_a_follow_up_sent_over_the_socket_can_be_stopped(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: None
) -> None:
    """The Stop button comes with the start of the turn: it must name that reply."""
    log_in(page, app_server)
    conversation = start_conversation(page, "llama3.2:latest")
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    browser_ollama.model("llama3.2").reply_tokens = 400
    page.fill("#composer-input", "And then?")
    page.get_by_test_id("send").click()
    reply = page.locator("[data-testid=message][data-role=assistant]").nth(1)
    expect(reply.get_by_test_id("message-content")).to_contain_text("You wrote")

    page.get_by_test_id("stop").click()

    expect(reply).to_have_attribute("data-status", "stopped")
    expect(page.get_by_test_id("chat-error")).not_to_contain_text("Nothing to stop")
    saved = Message.objects.filter(conversation=conversation, role="assistant").last()
    assert saved is not None and saved.status == "stopped"


def test_a_reload_mid_reply_shows_everything_so_far_and_continues(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: None
) -> None:
    browser_ollama.model("llama3.2").reply_tokens = 160
    log_in(page, app_server)
    conversation = start_conversation(page, "llama3.2:latest")
    body = reply_article(page).get_by_test_id("message-content")
    expect(body).to_contain_text("Hello from")

    page.reload()
    body = reply_article(page).get_by_test_id("message-content")
    expect(body).to_contain_text("Hello from")  # the text so far, at once
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=20_000)

    saved = Message.objects.get(conversation=conversation, role="assistant")
    assert saved.content == expected_reply("llama3.2:latest", HELLO, reply_tokens=160)
    assert body.text_content() == shown_text(saved.content)  # nothing lost, nothing twice


def test_a_second_tab_follows_the_stream_and_can_stop_it(
    page: Page,
    browser: Browser,
    app_server: LiveServer,
    browser_ollama: FakeOllamaServer,
    models: None,
) -> None:
    browser_ollama.model("llama3.2").reply_tokens = 400
    log_in(page, app_server)
    conversation = start_conversation(page, "llama3.2:latest")
    expect(reply_article(page).get_by_test_id("message-content")).to_contain_text("Hello")

    second = page.context.new_page()
    second.goto(page.url)
    other_body = reply_article(second).get_by_test_id("message-content")
    first_length = len(other_body.text_content() or "")
    expect(other_body).not_to_have_text(other_body.text_content() or "")  # it keeps growing
    assert len(other_body.text_content() or "") > first_length

    second.get_by_test_id("stop").click()
    expect(reply_article(page)).to_have_attribute("data-status", "stopped")
    expect(reply_article(second)).to_have_attribute("data-status", "stopped")
    saved = Message.objects.get(conversation=conversation, role="assistant")
    assert reply_article(page).get_by_test_id("message-content").text_content() == shown_text(
        saved.content
    )
    assert other_body.text_content() == shown_text(saved.content)


def test_closing_the_only_tab_mid_reply_still_saves_the_whole_reply(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: None
) -> None:
    browser_ollama.model("llama3.2").reply_tokens = 100
    log_in(page, app_server)
    conversation = start_conversation(page, "llama3.2:latest")
    expect(reply_article(page).get_by_test_id("message-content")).to_contain_text("Hello")
    reply_id = Message.objects.get(conversation=conversation, role="assistant").pk
    page.close()

    saved = wait_for_status(reply_id, "complete")
    assert saved.content == expected_reply("llama3.2:latest", HELLO, reply_tokens=100)


def test_thinking_is_shown_apart_from_the_answer(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: None
) -> None:
    log_in(page, app_server)
    start_conversation(page, "qwen3:latest · thinking", "Why is the sky blue?")
    reply = reply_article(page)
    expect(reply.get_by_test_id("thinking")).to_contain_text(
        'The user wrote "Why is the sky blue?"'
    )
    expect(reply).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(reply.get_by_test_id("message-content")).not_to_contain_text("The user wrote")


def test_a_failure_mid_reply_is_shown_with_the_text_so_far(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: None
) -> None:
    log_in(page, app_server)
    start_conversation(page, "broken:latest")
    reply = reply_article(page)
    expect(reply).to_have_attribute("data-status", "error", timeout=15_000)
    expect(page.get_by_test_id("chat-error")).to_contain_text("Ollama stopped with an error")
    expect(reply.get_by_test_id("message-content")).to_contain_text("Hello from")
    expect(page.get_by_test_id("regenerate")).to_be_visible()


def test_a_killed_server_leaves_the_reply_interrupted_not_streaming(
    page: Page,
    app_server: LiveServer,
    browser_ollama: FakeOllamaServer,
    models: None,
    tmp_path: Path,
) -> None:
    env = live_server_environment(browser_ollama, CHAT_STREAM_LEASE_SECONDS="2")
    with daphne_process(env, tmp_path / "doomed.log") as doomed:
        log_in(page, doomed)
        conversation = start_conversation(page, "stall:latest")
        expect(reply_article(page).get_by_test_id("message-content")).to_have_text(STALL_POINT)
        reply_id = Message.objects.get(conversation=conversation, role="assistant").pk
        shown = reply_article(page).get_by_test_id("message-content").text_content()
        time.sleep(1.5)  # a checkpoint (about once a second) has saved the text so far
        os.kill(doomed.pid, signal.SIGKILL)  # no shutdown code runs
        time.sleep(3)  # the lease runs out
        assert Message.objects.get(pk=reply_id).status == "streaming"  # nobody has looked yet

    # Another worker opens the conversation (the session is shared): the lost reply is marked,
    # its text kept.
    page.goto(f"{app_server.url}/conversations/{conversation.pk}/")
    expect(reply_article(page)).to_have_attribute("data-status", "interrupted")
    expect(page.get_by_test_id("chat-error")).to_contain_text(
        "stopped while this reply was being written"
    )
    saved = Message.objects.get(pk=reply_id)
    assert saved.status == "interrupted"
    assert shown_text(saved.content) == shown
    expect(page.get_by_test_id("stop")).to_have_count(0)


def test_a_server_shut_down_cleanly_saves_the_reply_as_interrupted_at_once(
    page: Page,
    app_server: LiveServer,
    browser_ollama: FakeOllamaServer,
    models: None,
    tmp_path: Path,
) -> None:
    env = live_server_environment(browser_ollama)
    with daphne_process(env, tmp_path / "restarting.log") as restarting:
        log_in(page, restarting)
        conversation = start_conversation(page, "stall:latest")
        expect(reply_article(page).get_by_test_id("message-content")).to_have_text(STALL_POINT)
        shown = reply_article(page).get_by_test_id("message-content").text_content()
        reply_id = Message.objects.get(conversation=conversation, role="assistant").pk
        os.kill(restarting.pid, signal.SIGTERM)  # a restart: daphne runs its shutdown

        saved = wait_for_status(reply_id, "interrupted", timeout=10)
        assert shown_text(saved.content) == shown  # even what came after the last checkpoint
        assert "restarted" in saved.error
        assert browser_ollama.wait_for(
            lambda: browser_ollama.requests_to("/api/chat")[0].disconnected
        )


def test_each_format_downloads_from_the_conversation_page(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: None
) -> None:
    browser_ollama.model("llama3.2").reply_tokens = 20
    log_in(page, app_server)
    conversation = start_conversation(page, "llama3.2:latest")
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    saved = Message.objects.get(conversation=conversation, role="assistant")

    page.get_by_test_id("download-menu").click()
    for fmt in ("md", "json", "txt", "html"):
        with page.expect_download() as download:
            page.get_by_test_id(f"export-{fmt}").click()
        file = download.value
        assert file.suggested_filename.endswith(f"-{conversation.pk}.{fmt}")
        text = Path(file.path()).read_text(encoding="utf-8")
        if fmt in ("md", "txt"):
            assert saved.content.split("\n")[0] in text
        if fmt == "html":
            assert "<!doctype html>" in text and "<script" not in text.lower()
        if fmt == "json":
            assert json.loads(text)["conversation"]["messages"][1]["content"] == saved.content
