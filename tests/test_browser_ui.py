"""The interface people use all day, in a real Chromium against daphne and the fake Ollama:
conversations, Markdown, the composer, long chats, themes and phones. Each test leaves
screenshots of what it saw in screenshots/ (not committed)."""

from __future__ import annotations

import io
import re
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from conversations.fake_ollama import FakeOllamaServer
from conversations.models import Conversation, LanguageModel, Message, SystemPrompt
from conversations.services import system_prompt_save
from tests.browsing import log_in, reply_article, screenshot, start_conversation
from tests.conftest import live_server_environment, local_today_at, make_user
from tests.live_server import LiveServer, daphne_process

pytestmark = pytest.mark.browser

Models = dict[str, LanguageModel]


@pytest.fixture
def models() -> Models:
    made = {}
    for name, label, capabilities in [
        ("llama3.2:latest", "Llama 3.2", ["completion", "tools"]),
        ("qwen3:latest", "Qwen 3", ["completion", "thinking"]),
        ("llava:latest", "LLaVA", ["completion", "vision"]),
    ]:
        made[name] = LanguageModel.objects.create(
            name=name,
            display_name=label,
            enabled=True,
            capabilities=capabilities,
            is_default=name == "llama3.2:latest",
        )
    make_user("carol", real_hash=True)
    return made


def conversation_with(
    owner_name: str, model: LanguageModel, title: str, *texts: str, age_days: int = 0
) -> Conversation:
    """A conversation saved straight into the database: user and assistant turns in order."""
    owner = User.objects.get(username=owner_name)
    # A minute ago (what the test sends next comes after these messages), but never before
    # today's midnight on the site's clock, so that a chat of today is today's at any hour.
    moment = max(timezone.now() - timedelta(minutes=1), local_today_at(0))
    moment -= timedelta(days=age_days)
    conversation = Conversation.objects.create(
        owner=owner, model=model, model_name=model.name, title=title, updated_at=moment
    )
    for number, text in enumerate(texts):
        Message.objects.create(
            conversation=conversation,
            role="user" if number % 2 == 0 else "assistant",
            content=text,
            model_name=model.name,
            created_at=moment + timedelta(seconds=number),
        )
    return conversation


def png_file(tmp_path: Path, width: int = 4, height: int = 3) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    path = tmp_path / "red.png"
    path.write_bytes(buffer.getvalue())
    return path


# --- starting a conversation -----------------------------------------------------------------


def test_a_new_conversation_uses_the_chosen_model_and_preset(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: Models
) -> None:
    pirate = SystemPrompt.objects.create(name="Pirate", text="Talk like a pirate.")
    system_prompt_save(prompt=pirate, edited_by=None)
    log_in(page, app_server)
    expect(page.get_by_test_id("model-select")).to_have_value(str(models["llama3.2:latest"].pk))
    expect(page.get_by_test_id("model-select")).to_contain_text("Qwen 3 · thinking")
    expect(page.get_by_test_id("model-select")).to_contain_text("LLaVA · vision")
    expect(page.get_by_test_id("conversation-list")).to_contain_text("No conversations yet")
    screenshot(page, "new-conversation-light")

    page.get_by_test_id("model-select").select_option(label="Qwen 3 · thinking")
    page.get_by_test_id("system-prompt-select").select_option(label="Pirate")
    start_conversation(page, "Qwen 3", "Ahoy?")
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)

    [request] = browser_ollama.requests_to("/api/chat")
    assert request.body["model"] == "qwen3:latest"
    assert request.body["messages"][0] == {"role": "system", "content": "Talk like a pirate."}


def test_a_locked_prompt_is_shown_as_such_and_cannot_be_replaced(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: Models
) -> None:
    SystemPrompt.objects.create(name="Pirate", text="Talk like a pirate.")
    policy = SystemPrompt.objects.create(
        name="Company policy",
        text="Follow the policy.",
        user_selectable=False,
        default_for_model=models["llama3.2:latest"],
        locked=True,
    )
    system_prompt_save(prompt=policy, edited_by=None)
    log_in(page, app_server)

    locked = page.get_by_test_id("locked-prompt")
    expect(locked).to_be_visible()
    expect(locked).to_contain_text("Company policy")
    expect(page.get_by_test_id("system-prompt-select")).to_be_hidden()
    page.get_by_test_id("model-select").select_option(label="Qwen 3 · thinking")
    expect(locked).to_be_hidden()
    expect(page.get_by_test_id("system-prompt-select")).to_be_visible()
    page.get_by_test_id("system-prompt-select").select_option(label="Pirate")
    page.get_by_test_id("model-select").select_option(label="Llama 3.2")
    expect(locked).to_be_visible()

    start_conversation(page, "Llama 3.2", "Which prompt?")
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    [request] = browser_ollama.requests_to("/api/chat")
    assert request.body["messages"][0] == {"role": "system", "content": "Follow the policy."}


# --- the sidebar -------------------------------------------------------------------------------


def test_search_finds_a_conversation_by_the_text_of_a_message(
    page: Page, app_server: LiveServer, models: Models
) -> None:
    llama = models["llama3.2:latest"]
    conversation_with("carol", llama, "Travel plans", "Where should we go?", "The zebra migration.")
    conversation_with("carol", llama, "Groceries", "Buy apples", "Apples are in season.")
    make_user("mallory", real_hash=True)
    conversation_with("mallory", llama, "Secret zebra", "zebra zebra", "zebra")
    log_in(page, app_server)
    items = page.get_by_test_id("conversation-item")
    expect(items).to_have_count(2)

    page.get_by_test_id("conversation-search").fill("zebra")
    expect(items).to_have_count(1)
    expect(items).to_have_text("Travel plans")  # found in a reply, and never another user's
    page.get_by_test_id("conversation-search").fill("nothing like this")
    expect(page.get_by_test_id("search-empty")).to_be_visible()
    page.get_by_test_id("conversation-search").fill("")
    expect(items).to_have_count(2)


def test_the_sidebar_groups_by_day_and_loads_more_as_it_scrolls(
    page: Page, app_server: LiveServer, models: Models
) -> None:
    llama = models["llama3.2:latest"]
    conversation_with("carol", llama, "Today's chat", "hi", "hello")
    conversation_with("carol", llama, "Yesterday's chat", "hi", "hello", age_days=1)
    for number in range(60):
        conversation_with("carol", llama, f"Old chat {number}", "hi", "hello", age_days=40)
    log_in(page, app_server)
    headings = page.locator(".group-heading")
    expect(headings.nth(0)).to_have_text(re.compile("Today", re.I))
    expect(headings.nth(1)).to_have_text(re.compile("Yesterday", re.I))
    expect(headings.nth(2)).to_have_text(re.compile("Older", re.I))
    items = page.get_by_test_id("conversation-item")
    expect(items).to_have_count(50)
    items.last.scroll_into_view_if_needed()
    expect(items).to_have_count(62)
    expect(headings).to_have_count(3)  # the next page continues its group without a heading
    screenshot(page, "sidebar-light")


def test_rename_pin_archive_and_delete(page: Page, app_server: LiveServer, models: Models) -> None:
    llama = models["llama3.2:latest"]
    first = conversation_with("carol", llama, "First", "one", "reply")
    conversation_with("carol", llama, "Second", "two", "reply")
    log_in(page, app_server)
    page.goto(f"{app_server.url}/conversations/{first.pk}/")
    items = page.get_by_test_id("conversation-item")
    expect(items).to_have_text(["Second", "First"])

    page.get_by_test_id("rename").click()
    page.get_by_test_id("rename-input").fill("Renamed in place")
    page.get_by_test_id("rename-input").press("Enter")
    expect(page.get_by_test_id("conversation-title")).to_have_text("Renamed in place")
    expect(items.first).to_have_text("Second")
    expect(page.locator(f"#conversation-item-{first.pk}")).to_contain_text("Renamed in place")

    page.get_by_test_id("pin").click()
    expect(items).to_have_text(["Renamed in place", "Second"])
    expect(page.locator(".group-heading").first).to_have_text(re.compile("Pinned", re.I))
    expect(page.get_by_test_id("pin")).to_have_text("Unpin")

    page.get_by_test_id("archive").click()
    expect(items).to_have_text(["Second"])
    expect(page.get_by_test_id("archive")).to_have_text("Unarchive")
    page.get_by_test_id("show-archived").click()
    expect(items).to_have_text(["Renamed in place"])
    page.get_by_test_id("show-active").click()
    expect(items).to_have_text(["Second"])

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("delete").click()
    expect(page).to_have_url(f"{app_server.url}/")
    assert not Conversation.objects.filter(pk=first.pk).exists()
    first_saved = Conversation.objects.filter(title="Second").get()
    assert first_saved.pinned is False


# --- messages ----------------------------------------------------------------------------------


def test_a_reply_renders_as_markdown_with_highlighted_code_and_copy_buttons(
    browser: Browser, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: Models
) -> None:
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(10_000)
    log_in(page, app_server)
    start_conversation(page, "Llama 3.2")
    reply = reply_article(page)
    body = reply.get_by_test_id("message-content")
    seen = set()
    while reply.get_attribute("data-status") == "streaming":
        seen.add(body.text_content() or "")
        page.wait_for_timeout(30)
    assert not any("**" in text for text in seen)  # formatted while streaming, not raw
    expect(body.locator("li strong")).to_have_text("bold")
    expect(body.locator("li em")).to_have_text("italic")
    expect(body.locator("li code")).to_have_text("inline code")
    code = body.locator("pre code")
    expect(code).to_contain_text('def greet(name):\n    return f"Hello, {name}!"')
    expect(code.locator("span.k").first).to_have_text("def")  # Pygments' keyword class
    expect(code.locator("span.k").first).not_to_have_css("color", "rgb(29, 33, 39)")

    body.get_by_test_id("copy-code").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == 'def greet(name):\n    return f"Hello, {name}!"'
    reply.get_by_test_id("copy-message").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("Hello from llama3.2:latest!") and "def greet(name):" in copied
    screenshot(page, "chat-light")
    context.close()


def test_thinking_is_open_while_the_model_thinks_and_closes_when_the_answer_starts(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: Models
) -> None:
    browser_ollama.model("qwen3").tokens_per_second = 8
    log_in(page, app_server)
    start_conversation(page, "Qwen 3", "Why is the sky blue?")
    thinking = reply_article(page).get_by_test_id("thinking")
    expect(thinking).to_have_attribute("open", "")
    expect(thinking).to_contain_text("The user wrote")
    expect(reply_article(page).get_by_test_id("message-content")).to_contain_text(
        "Hello from", timeout=20_000
    )
    expect(thinking).not_to_have_attribute("open", "")
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(thinking.locator(".thinking-text")).to_be_hidden()
    thinking.locator("summary").click()
    expect(thinking.locator(".thinking-text")).to_be_visible()


def test_regenerate_replaces_the_reply_and_edit_resends_the_last_message(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: Models
) -> None:
    browser_ollama.model("llama3.2").reply_tokens = 12
    log_in(page, app_server)
    conversation = start_conversation(page, "Llama 3.2", "Hello there")
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    first_reply = reply_article(page).get_attribute("data-message-id")

    page.get_by_test_id("regenerate").click()
    expect(reply_article(page)).not_to_have_attribute("data-message-id", first_reply or "")
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(page.get_by_test_id("message")).to_have_count(2)
    assert len(browser_ollama.requests_to("/api/chat")) == 2

    page.get_by_test_id("edit").click()
    page.locator(".edit textarea").fill("Goodbye instead")
    page.locator(".edit button[type=submit]").click()
    expect(page.locator("[data-testid=message][data-role=user]")).to_have_text(
        re.compile("Goodbye instead")
    )
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(page.get_by_test_id("message")).to_have_count(2)
    last = browser_ollama.requests_to("/api/chat")[-1].body
    assert [m["content"] for m in last["messages"]] == ["Goodbye instead"]
    assert list(conversation.messages.values_list("content", flat=True))[0] == "Goodbye instead"


def test_enter_sends_and_shift_enter_adds_a_line(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: Models
) -> None:
    browser_ollama.model("llama3.2").reply_tokens = 5
    log_in(page, app_server)
    composer = page.locator("#composer-input")
    composer.click()
    composer.press_sequentially("line one")
    composer.press("Shift+Enter")
    composer.press_sequentially("line two")
    height_before = composer.bounding_box()["height"]
    composer.press("Shift+Enter")
    composer.press_sequentially("line three")
    assert composer.bounding_box()["height"] > height_before  # it grows with its content
    composer.press("Enter")
    expect(page).to_have_url(re.compile(r"/conversations/\d+/$"))
    user_message = page.locator("[data-testid=message][data-role=user]")
    expect(user_message.get_by_test_id("message-content")).to_have_text(
        "line one\nline two\nline three"
    )
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)

    composer = page.locator("#composer-input")
    composer.fill("Second message")
    composer.press("Enter")
    expect(page.get_by_test_id("message")).to_have_count(4)
    expect(page.locator("#composer-input")).to_have_value("")


def test_images_attached_for_a_vision_model_reach_ollama_and_show_as_thumbnails(
    page: Page,
    app_server: LiveServer,
    browser_ollama: FakeOllamaServer,
    models: Models,
    tmp_path: Path,
) -> None:
    log_in(page, app_server)
    attach = page.get_by_test_id("attach-images")
    expect(attach).to_be_hidden()  # the default model has no vision
    page.get_by_test_id("model-select").select_option(label="LLaVA · vision")
    expect(attach).to_be_visible()
    attach.set_input_files(str(png_file(tmp_path)))
    expect(page.locator("#image-previews img")).to_have_count(1)
    page.fill("#composer-input", "What is this?")
    page.get_by_test_id("send").click()

    expect(reply_article(page).get_by_test_id("message-content")).to_have_text(
        "I see 1 image: image 1 is a PNG of 4x3.", timeout=15_000
    )
    [request] = browser_ollama.requests_to("/api/chat")
    assert len(request.body["messages"][-1]["images"]) == 1
    thumbnail = page.get_by_test_id("message-image")
    expect(thumbnail).to_be_visible()
    assert page.evaluate("img => img.naturalWidth", thumbnail.element_handle()) == 4


def test_a_500_message_conversation_opens_at_the_end_and_scrolls_back_to_the_start(
    page: Page, app_server: LiveServer, models: Models
) -> None:
    llama = models["llama3.2:latest"]
    conversation = conversation_with("carol", llama, "Long", "first")
    start = conversation.messages.get().created_at
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            role="user" if number % 2 == 0 else "assistant",
            content=f"message number {number}",
            model_name=llama.name,
            created_at=start + timedelta(seconds=number),
        )
        for number in range(1, 500)
    )
    log_in(page, app_server)
    page.goto(f"{app_server.url}/conversations/{conversation.pk}/")
    shown = page.get_by_test_id("message")
    expect(shown).to_have_count(50)
    expect(shown.last).to_contain_text("message number 499")
    expect(shown.last).to_be_in_viewport()  # it opens at the newest message

    box = page.locator("#messages")
    for _ in range(20):
        if shown.count() == 500:
            break
        count = shown.count()
        box.evaluate("box => { box.scrollTop = 0; }")
        page.wait_for_function(
            "count => document.querySelectorAll('[data-testid=message]').length > count", arg=count
        )
    expect(shown).to_have_count(500)
    expect(shown.first).to_contain_text("first")
    texts = shown.evaluate_all("nodes => nodes.map(n => n.dataset.messageId)")
    assert texts == [str(pk) for pk in conversation.messages.values_list("id", flat=True)]


# --- the feel ---------------------------------------------------------------------------------


def test_dark_mode_follows_the_system(
    browser: Browser, app_server: LiveServer, models: Models
) -> None:
    llama = models["llama3.2:latest"]
    conversation = conversation_with(
        "carol", llama, "Dark", "Show code", "Here:\n\n```python\nprint('dark')\n```\n"
    )
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    log_in(page, app_server)
    page.goto(f"{app_server.url}/conversations/{conversation.pk}/")
    expect(page.locator("body")).to_have_css("background-color", "rgb(21, 23, 27)")
    expect(page.locator("body")).to_have_css("color", "rgb(230, 232, 235)")
    code_background = page.locator(".markdown pre").evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert sum(int(part) for part in re.findall(r"\d+", code_background)[:3]) < 150  # a dark theme
    screenshot(page, "chat-dark")
    context.close()


def test_on_a_phone_the_sidebar_slides_in_from_a_menu_button(
    browser: Browser, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: Models
) -> None:
    llama = models["llama3.2:latest"]
    conversation = conversation_with("carol", llama, "On the go", "Hi", "Hello **there**.")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    log_in(page, app_server)
    page.goto(f"{app_server.url}/conversations/{conversation.pk}/")
    sidebar = page.locator("#sidebar")
    expect(sidebar).not_to_be_in_viewport()
    expect(page.get_by_test_id("composer")).to_be_in_viewport()
    screenshot(page, "chat-phone")
    page.get_by_label("Show the conversation list").click()
    expect(sidebar).to_be_in_viewport()
    expect(page.get_by_test_id("conversation-item")).to_have_text("On the go")
    screenshot(page, "sidebar-phone")
    page.get_by_label("Close the conversation list").click()
    expect(sidebar).not_to_be_in_viewport()
    # Nothing is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()


def test_keyboard_shortcuts_and_their_help(
    page: Page, app_server: LiveServer, models: Models
) -> None:
    llama = models["llama3.2:latest"]
    conversation = conversation_with("carol", llama, "Keys", "Hi", "Hello.")
    log_in(page, app_server)
    page.goto(f"{app_server.url}/conversations/{conversation.pk}/")
    page.keyboard.press("Shift+Escape")
    expect(page.locator("#composer-input")).to_be_focused()
    page.keyboard.press("Control+k")
    expect(page.get_by_test_id("conversation-search")).to_be_focused()
    page.keyboard.press("Control+/")
    expect(page.get_by_test_id("shortcuts")).to_be_visible()
    expect(page.get_by_test_id("shortcuts")).to_contain_text("New conversation")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("shortcuts")).to_be_hidden()
    page.keyboard.press("Control+Shift+O")
    expect(page).to_have_url(f"{app_server.url}/")


def test_a_dropped_connection_shows_a_banner_and_the_page_catches_up(
    transactional_db: None,
    page: Page,
    browser_ollama: FakeOllamaServer,
    models: Models,
    tmp_path: Path,
) -> None:
    llama = models["llama3.2:latest"]
    conversation = conversation_with("carol", llama, "Flaky", "Hi", "Hello.")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = live_server_environment(browser_ollama)
    with daphne_process(env, tmp_path / "first.log", port=port) as server:
        log_in(page, server)
        page.goto(f"{server.url}/conversations/{conversation.pk}/")
        page.wait_for_function("() => document.querySelector('#messages article') !== null")
        page.wait_for_timeout(500)  # the socket is open
        expect(page.get_by_test_id("connection-banner")).to_be_hidden()
    # The server went away (a restart): the page says so, quietly.
    expect(page.get_by_test_id("connection-banner")).to_be_visible()
    expect(page.get_by_test_id("connection-banner")).to_contain_text("Reconnecting")
    Message.objects.create(
        conversation=conversation, role="user", content="Sent from another device"
    )
    with daphne_process(env, tmp_path / "second.log", port=port):
        expect(page.get_by_test_id("connection-banner")).to_be_hidden(timeout=20_000)
        expect(page.get_by_test_id("message").last).to_contain_text("Sent from another device")


# --- untrusted text ----------------------------------------------------------------------------

XSS_PAYLOADS = [
    "<script>window.__xss = 'script'</script>",
    "<img src=x onerror=\"window.__xss = 'img'\">",
    "<svg onload=\"window.__xss = 'svg'\"><circle r=1 /></svg>",
    "<iframe src=\"javascript:window.__xss = 'iframe'\"></iframe>",
    "[a link](javascript:window.__xss='link')",
    "<a href=\"javascript:window.__xss='anchor'\">anchor</a>",
    "![pixel](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    '<div hx-get="/" hx-trigger="load" hx-on::after-request="window.__xss=\'htmx\'">htmx</div>',
    '<form ws-send hx-trigger="load"><input name=action value=regenerate></form>',
    '<p style="position:fixed;inset:0" onclick="window.__xss=\'style\'">cover</p>',
    "```html\n<script>window.__xss = 'fence'</script>\n```",
]


def test_an_xss_battery_in_titles_messages_thinking_and_replies_executes_nothing(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: Models
) -> None:
    browser_ollama.model("llama3.2").reply_tokens = 40
    battery = "\n\n".join(XSS_PAYLOADS)
    llama = models["llama3.2:latest"]
    conversation = conversation_with(
        "carol", llama, "<img src=x onerror=\"window.__xss='title'\">", battery, battery
    )
    Message.objects.filter(conversation=conversation, role="assistant").update(thinking=battery)
    log_in(page, app_server)
    page.goto(f"{app_server.url}/conversations/{conversation.pk}/")
    # A live reply streams the user's words back, through the streaming renderer this time.
    composer = page.locator("#composer-input")
    composer.fill("<img src=x onerror=\"window.__xss='live'\"> [x](javascript:window.__xss=1)")
    composer.press("Enter")
    expect(page.get_by_test_id("message")).to_have_count(4)
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    for link in page.locator(".message-content a").all():
        link.click(modifiers=["Control"])  # a click on whatever links survived does nothing bad
    page.locator("[data-testid=thinking] summary").first.click()
    page.wait_for_timeout(300)

    assert page.evaluate("window.__xss") is None
    assert Conversation.objects.filter(pk=conversation.pk).exists()
    assert Message.objects.filter(conversation=conversation).count() == 4  # no regenerate ran
    # Shown inertly: the text is there, as text.
    user_text = page.locator("[data-role=user] [data-testid=message-content]").first
    expect(user_text).to_contain_text("<script>window.__xss = 'script'</script>")
    expect(page.get_by_test_id("conversation-title")).to_have_text(
        "<img src=x onerror=\"window.__xss='title'\">"
    )
    expect(page.get_by_test_id("thinking").first).to_contain_text("<svg onload=")
    dangerous = page.evaluate(
        """() => {
            const found = [];
            for (const el of document.querySelectorAll('#messages *, #sidebar *, h1')) {
                const tag = el.tagName.toLowerCase();
                if (['script', 'iframe', 'svg', 'object', 'embed', 'form'].includes(tag)
                    && el.closest('.message-content, .thinking, .conversation-entry')) {
                    found.push(tag);
                }
                for (const attr of el.attributes) {
                    const name = attr.name.toLowerCase();
                    const inOutput = el.closest('.message-content, .thinking-text');
                    if (name.startsWith('on') || (inOutput && (name === 'style'
                        || name.startsWith('hx-') || name.startsWith('ws-')
                        || name.startsWith('data-hx')))) {
                        found.push(tag + '[' + name + ']');
                    }
                    if ((name === 'href' || name === 'src') && /^\\s*(javascript|data):/i.test(attr.value)) {
                        found.push(tag + '[' + name + '=' + attr.value + ']');
                    }
                }
            }
            return found;
        }"""
    )
    assert dangerous == []
    images = page.locator(".message-content img")
    expect(images).to_have_count(0)
    screenshot(page, "xss-battery")


def test_the_settings_panel_changes_what_the_next_reply_is_asked_with(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: Models
) -> None:
    browser_ollama.model("llama3.2").reply_tokens = 5
    llama = models["llama3.2:latest"]
    conversation = conversation_with("carol", llama, "Tuned", "Hi", "Hello.")
    log_in(page, app_server)
    page.goto(f"{app_server.url}/conversations/{conversation.pk}/")
    page.get_by_test_id("conversation-settings").locator("summary").click()
    temperature = page.locator("#settings-form input[name=temperature]")
    expect(temperature).to_have_attribute("placeholder", "0.8")  # the model's default
    temperature.fill("7")
    page.get_by_test_id("settings-save").click()
    # The browser holds an out-of-bounds value back (the server refuses it too: test_sidebar).
    expect(page.locator("#settings-form input[name=temperature]:invalid")).to_have_count(1)
    expect(page.get_by_test_id("settings-saved")).to_have_count(0)
    page.locator("#settings-form input[name=temperature]").fill("0.2")
    page.locator("#settings-form input[name=num_ctx]").fill("4096")
    page.get_by_test_id("settings-save").click()
    expect(page.get_by_test_id("settings-saved")).to_be_visible()

    page.locator("#composer-input").fill("Again")
    page.locator("#composer-input").press("Enter")
    expect(page.get_by_test_id("message")).to_have_count(4)
    expect(reply_article(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    options = browser_ollama.requests_to("/api/chat")[-1].body["options"]
    assert (options["temperature"], options["num_ctx"]) == (0.2, 4096)


def test_a_follow_up_with_an_image_goes_over_http_and_streams_over_the_socket(
    page: Page,
    app_server: LiveServer,
    browser_ollama: FakeOllamaServer,
    models: Models,
    tmp_path: Path,
) -> None:
    llava = models["llava:latest"]
    conversation = conversation_with("carol", llava, "Pictures", "Hi", "Hello.")
    log_in(page, app_server)
    page.goto(f"{app_server.url}/conversations/{conversation.pk}/")
    page.get_by_test_id("attach-images").set_input_files(str(png_file(tmp_path, 6, 5)))
    expect(page.locator("#image-previews img")).to_have_count(1)
    page.locator("#composer-input").fill("And this one?")
    page.locator("#composer-input").press("Enter")

    expect(page.get_by_test_id("message")).to_have_count(4)
    expect(reply_article(page).get_by_test_id("message-content")).to_have_text(
        "I see 1 image: image 1 is a PNG of 6x5.", timeout=15_000
    )
    expect(page.get_by_test_id("message-image")).to_have_count(1)
    expect(page.locator("#composer-input")).to_have_value("")
    expect(page.locator("#image-previews img")).to_have_count(0)
    [request] = browser_ollama.requests_to("/api/chat")
    assert "images" in request.body["messages"][-1]


def test_no_image_input_for_a_model_without_vision(
    page: Page, app_server: LiveServer, models: Models
) -> None:
    conversation = conversation_with("carol", models["llama3.2:latest"], "Text", "Hi", "Hello.")
    log_in(page, app_server)
    page.goto(f"{app_server.url}/conversations/{conversation.pk}/")
    expect(page.get_by_test_id("composer")).to_be_visible()
    expect(page.get_by_test_id("attach-images")).to_have_count(0)


def test_the_view_follows_the_stream_until_the_user_scrolls_up_then_offers_a_jump(
    page: Page, app_server: LiveServer, browser_ollama: FakeOllamaServer, models: Models
) -> None:
    browser_ollama.model("llama3.2").reply_tokens = 300
    browser_ollama.model("llama3.2").tokens_per_second = 30
    paragraph = "A long line of earlier conversation. " * 12
    conversation = conversation_with(
        "carol", models["llama3.2:latest"], "Scrolling", *[paragraph] * 20
    )
    log_in(page, app_server)
    page.goto(f"{app_server.url}/conversations/{conversation.pk}/")
    page.locator("#composer-input").fill("Tell me more")
    page.locator("#composer-input").press("Enter")
    expect(page.get_by_test_id("message")).to_have_count(22)
    at_bottom = "box => box.scrollHeight - box.scrollTop - box.clientHeight < 80"
    box = page.locator("#messages")
    expect(reply_article(page).get_by_test_id("message-content")).to_contain_text("ipsum")
    assert box.evaluate(at_bottom)  # following the stream

    box.evaluate("box => { box.scrollTop = 0; }")
    jump = page.get_by_test_id("jump-latest")
    expect(jump).to_be_visible()  # new text arrives below while the user reads above
    assert not box.evaluate(at_bottom)
    jump.click()
    expect(jump).to_be_hidden()
    assert box.evaluate(at_bottom)
