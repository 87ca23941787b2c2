"""The conversation socket, end to end in one process: the real ASGI application, the in-memory
channel layer, the generation task and the fake Ollama over a real socket."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.contrib.auth.models import User
from django.db import DatabaseError
from django.utils import timezone
from PIL import Image

from conversations import checkpoints, consumers, generation, reply_reading, turn_start, turns
from conversations.channel_layer import LocalChannelLayer
from conversations.db import db
from conversations.fake_ollama import expected_reply
from conversations.fake_ollama.server import RUNNER_STOPPED
from conversations.models import Conversation, LanguageModel, Message
from conversations.ollama import close_client
from conversations.prompting import HistoryMessage, history_request, reply_request
from tests.conftest import make_user
from tests.shown import rendered
from tests.sockets import Tab, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner() -> User:
    return make_user("alice")


async def new_conversation(owner: User, model: str = "llama3.2:latest", **fields) -> Conversation:  # type: ignore[no-untyped-def]
    def create() -> Conversation:
        capabilities = {
            "qwen3:latest": ["completion", "thinking"],
            "llava:latest": ["completion", "vision"],
        }
        language_model, _ = LanguageModel.objects.get_or_create(
            name=model,
            defaults={
                "enabled": True,
                "capabilities": capabilities.get(model, ["completion"]),
                **fields,
            },
        )
        return Conversation.objects.create(owner=owner, model=language_model, model_name=model)

    return await sync_to_async(create)()


async def open_tab(conversation: Conversation, user: User) -> Tab:
    tab = Tab(conversation.pk, cookie=await sync_to_async(session_cookie)(user))
    assert await tab.connect()
    return tab


async def reply_of(conversation: Conversation) -> Message:
    return await Message.objects.filter(conversation=conversation, role="assistant").alast()


async def wait_for_reply(conversation: Conversation) -> Message:
    async with asyncio.timeout(5):
        while (reply := await reply_of(conversation)) is None:
            await asyncio.sleep(0.01)
    return reply


async def start_reply(owner: User) -> tuple[Conversation, Tab, Message]:
    """A new conversation, open in a tab that sends a first message; its reply, once saved."""
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Hello there")
    return conversation, tab, await wait_for_reply(conversation)


async def next_reply(conversation: Conversation, after: Message) -> Message:
    """The reply that replaced or followed ``after``, once it exists."""
    async with asyncio.timeout(5):
        while (reply := await reply_of(conversation)).pk == after.pk:
            await asyncio.sleep(0.01)
    return reply


async def saved_when_done(reply: Message, timeout: float = 10) -> Message:
    """The reply as saved once it stopped streaming (no socket needed)."""
    async with asyncio.timeout(timeout):
        while (saved := await Message.objects.aget(pk=reply.pk)).status == "streaming":
            await asyncio.sleep(0.02)
    return saved


def use_layer(settings, backend: str) -> None:  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend}}
    channel_layers.backends.clear()


def one_worker(settings) -> None:  # type: ignore[no-untyped-def]
    """The in-memory layer (also under make test-postgres, which runs on Redis): a text send
    is shown before it is written only where every page is the worker's own."""
    use_layer(settings, "conversations.channel_layer.LocalChannelLayer")


# --- who may connect ---------------------------------------------------------------------------


async def test_anonymous_visitors_are_refused(live, owner) -> None:  # type: ignore[no-untyped-def]
    conversation = await new_conversation(owner)
    assert not await Tab(conversation.pk).connect()


async def test_another_users_conversation_is_refused(live, owner) -> None:  # type: ignore[no-untyped-def]
    conversation = await new_conversation(owner)
    stranger = await sync_to_async(make_user)("mallory")
    tab = Tab(conversation.pk, cookie=await sync_to_async(session_cookie)(stranger))
    assert not await tab.connect()


async def test_a_foreign_origin_is_refused_even_with_a_session(live, owner) -> None:  # type: ignore[no-untyped-def]
    conversation = await new_conversation(owner)
    cookie = await sync_to_async(session_cookie)(owner)
    assert not await Tab(conversation.pk, cookie=cookie, origin="https://evil.example").connect()
    assert not await Tab(conversation.pk, cookie=cookie, origin="").connect()


# --- a reply, token by token ---------------------------------------------------------------


async def test_a_reply_streams_in_several_frames_and_is_saved_exactly(live, owner) -> None:  # type: ignore[no-untyped-def]
    live.model("llama3.2").tokens_per_second = 100
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)

    await tab.send("send", content="Hello there")
    reply = await wait_for_reply(conversation)
    seen = []

    def complete(t: Tab) -> bool:
        seen.append(t.contents.get(reply.pk, ""))  # what the page shows after each frame
        return t.statuses.get(reply.pk) == "complete"

    await tab.until(complete)

    expected = expected_reply("llama3.2:latest", [{"role": "user", "content": "Hello there"}])
    partial_states = {s for s in seen if s and s != expected}
    assert len(partial_states) >= 3  # the text grew on screen before it was complete
    assert tab.streamed[reply.pk] == tab.contents[reply.pk] == rendered(expected)
    await reply.arefresh_from_db()
    assert (reply.status, reply.content, reply.done_reason) == ("complete", expected, "stop")
    assert reply.eval_count and reply.eval_duration and reply.prompt_eval_count
    assert reply.lease_expires_at is None
    user_message = await Message.objects.filter(conversation=conversation, role="user").afirst()
    assert user_message.content == "Hello there"
    await tab.close()


async def test_the_first_frames_show_the_users_message_and_a_waiting_reply(live, owner) -> None:  # type: ignore[no-untyped-def]
    live.model("slow").first_token_delay = 1.0
    conversation = await new_conversation(owner, "slow:latest")
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Are you there?")
    # The composer is cleared once the message is saved: just after the turn is shown on one
    # worker (where it is shown first), before it on several.
    await tab.until(lambda t: any("hx-swap-oob" in f and "composer-input" in f for f in t.frames))
    await tab.until(lambda t: any('data-role="user"' in f for f in t.frames))
    first = next(f for f in tab.frames if 'data-role="user"' in f)
    assert 'data-role="user"' in first and "Are you there?" in first
    assert 'data-status="streaming"' in first
    assert 'data-testid="waiting"' in first  # a model loading is not an error
    assert 'data-testid="stop"' in first
    reply = await reply_of(conversation)
    assert await tab.until_finished(reply.pk) == "complete"
    await tab.close()


async def test_thinking_streams_separately_and_is_saved_apart(live, owner) -> None:  # type: ignore[no-untyped-def]
    conversation = await new_conversation(owner, "qwen3:latest")
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Why?")
    reply = await wait_for_reply(conversation)
    open_states = []

    def finished(t: Tab) -> bool:
        open_states.append(t.thinking_open.get(reply.pk))
        return reply.pk in t.finished

    await tab.until(finished)
    await reply.arefresh_from_db()
    assert reply.thinking.startswith('The user wrote "Why?"')
    assert tab.thinking[reply.pk] == reply.thinking
    # Open while the model thinks, closed once the answer starts.
    states = [state for state in open_states if state is not None]
    assert states[0] is True and states[-1] is False
    assert tab.streamed[reply.pk] == rendered(reply.content)
    assert "The user wrote" not in reply.content
    [request] = live.requests_to("/api/chat")
    assert request.body["think"] is True


async def test_closing_the_only_tab_does_not_stop_the_reply(live, owner) -> None:  # type: ignore[no-untyped-def]
    live.model("llama3.2").tokens_per_second = 50
    conversation, tab, reply = await start_reply(owner)
    await tab.next_frame()
    await tab.close()

    reply = await saved_when_done(reply, 10)
    assert reply.status == "complete"
    assert reply.content == expected_reply(
        "llama3.2:latest", [{"role": "user", "content": "Hello there"}]
    )


async def test_a_second_tab_sees_the_same_stream_and_can_stop_it(live, owner) -> None:  # type: ignore[no-untyped-def]
    live.model("llama3.2").tokens_per_second = 40
    live.model("llama3.2").reply_tokens = 400
    conversation = await new_conversation(owner)
    first, second = await open_tab(conversation, owner), await open_tab(conversation, owner)

    await first.send("send", content="Hello there")
    reply = await wait_for_reply(conversation)
    await second.until(lambda t: len(t.contents.get(reply.pk, "")) > 20)
    await second.send("stop", message_id=reply.pk)

    assert await first.until_finished(reply.pk) == "stopped"
    assert await second.until_finished(reply.pk) == "stopped"
    await reply.arefresh_from_db()
    assert reply.status == "stopped"
    assert 20 < len(reply.content) < 400 * 3
    assert first.contents[reply.pk] == second.contents[reply.pk] == rendered(reply.content)
    assert first.streamed[reply.pk] == second.streamed[reply.pk] == rendered(reply.content)
    request = live.requests_to("/api/chat")[0]
    assert await asyncio.to_thread(live.wait_for, lambda: request.disconnected)


async def test_joining_mid_reply_shows_everything_so_far_then_continues_without_gap_or_repeat(
    live, owner
) -> None:  # type: ignore[no-untyped-def]
    live.model("llama3.2").tokens_per_second = 60
    live.model("llama3.2").reply_tokens = 120
    conversation = await new_conversation(owner)
    first = await open_tab(conversation, owner)
    await first.send("send", content="Hello there")
    reply = await wait_for_reply(conversation)
    await first.until(lambda t: len(t.contents.get(reply.pk, "")) > 40)

    late = await open_tab(conversation, owner)  # a reload, or another device
    await late.until_finished(reply.pk)
    await first.until_finished(reply.pk)
    await reply.arefresh_from_db()
    # What each tab built from the stream is the whole reply rendered, with no gap or repeat.
    assert late.streamed[reply.pk] == rendered(reply.content) == first.streamed[reply.pk]
    assert late.contents[reply.pk] == rendered(reply.content)
    assert late.frames[0].count('id="msg-') >= 1  # it started from a full snapshot


async def test_a_second_send_while_streaming_is_refused_and_nothing_interleaves(
    live, owner
) -> None:  # type: ignore[no-untyped-def]
    live.model("llama3.2").tokens_per_second = 30
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="First")
    reply = await wait_for_reply(conversation)
    await tab.send("send", content="Second")
    await tab.until(lambda t: "still being written" in t.error_text())
    await tab.send("stop", message_id=reply.pk)
    await tab.until_finished(reply.pk)
    roles = [m.role async for m in Message.objects.filter(conversation=conversation)]
    assert roles == ["user", "assistant"]


# --- bad frames ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("this is not json", "could not be read"),
        ("[1, 2]", "could not be read"),
        (json.dumps({"action": "dance"}), "Unknown action"),
        (json.dumps({"content": "no action"}), "Unknown action"),
        (json.dumps({"action": "send", "content": "   "}), "Write a message first."),
        (json.dumps({"action": "send", "content": "x" * 110_000}), "That message is too long"),
        (json.dumps({"action": "send", "content": "x" * 100_001}), "the limit is 100,000"),
        (json.dumps({"action": "regenerate"}), "no reply to regenerate"),
        (json.dumps({"action": "edit", "content": "new"}), "no message to edit"),
    ],
)
async def test_a_bad_frame_gets_an_error_and_the_socket_stays_open(
    live, owner, frame: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)
    await tab.send_raw(frame)
    await tab.until(lambda t: message in t.error_text())
    # Still open: a good message goes through.
    await tab.send("send", content="Hello there")
    reply = await wait_for_reply(conversation)
    assert await tab.until_finished(reply.pk) == "complete"


async def test_a_message_over_the_limit_is_refused_with_the_limit(live, owner, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="x" * 11)
    await tab.until(lambda t: "the limit is 10" in t.error_text())
    assert not await Message.objects.filter(conversation=conversation).aexists()


async def test_error_text_is_escaped(live, owner) -> None:  # type: ignore[no-untyped-def]
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="<script>alert(1)</script>")
    reply = await wait_for_reply(conversation)
    await tab.until_finished(reply.pk)
    assert not any("<script>alert(1)" in frame for frame in tab.frames)
    assert any("&lt;script&gt;alert(1)" in frame for frame in tab.frames)


# --- failures --------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("model", "status", "words", "partial"),
    [
        (
            "mistral:latest",
            "error",
            "Model 'mistral:latest' is not installed on the Ollama server: an admin can install "
            "it with `ollama pull mistral:latest`, or pick another model.",
            False,
        ),
        ("busy:latest", "error", "Ollama is busy with other requests", False),
        ("broken:latest", "error", f"Ollama stopped with an error: {RUNNER_STOPPED}", True),
        (
            "cutoff:latest",
            "error",
            "The connection to Ollama was cut before the reply was finished.",
            True,
        ),
    ],
)
async def test_each_failure_is_saved_and_shown_with_what_to_do(
    live, owner, model, status, words, partial
) -> None:  # type: ignore[no-untyped-def]
    conversation = await new_conversation(owner, model)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Hello there")
    reply = await wait_for_reply(conversation)
    assert await tab.until_finished(reply.pk) == status
    await reply.arefresh_from_db()
    assert words in reply.error
    assert words in tab.error_text()
    assert bool(reply.content) is partial  # the text before the failure is kept
    assert reply.lease_expires_at is None


async def test_a_stalled_reply_is_given_up_after_the_stall_timeout(live, owner, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OLLAMA_STALL_TIMEOUT = 1
    await close_client()  # the shared client is rebuilt from the settings
    conversation = await new_conversation(owner, "stall:latest")
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Hello there")
    reply = await wait_for_reply(conversation)
    assert await tab.until_finished(reply.pk) == "error"
    await reply.arefresh_from_db()
    assert "sent nothing for 1 seconds" in reply.error
    assert reply.content  # the five tokens before the stall


async def test_a_dead_ollama_is_reported_with_how_to_start_it(live, owner, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OLLAMA_BASE_URL = f"http://127.0.0.1:{closed_port()}"
    await close_client()
    conversation, tab, reply = await start_reply(owner)
    assert await tab.until_finished(reply.pk) == "error"
    assert "Ollama is not reachable at http://127.0.0.1:" in tab.error_text()
    assert "ollama serve" in tab.error_text()


def cannot_build(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Stands in for building a request, failing."""
    raise RuntimeError("no way")


async def layer_down(**kwargs):  # type: ignore[no-untyped-def]
    """Stands in for a generation's start, with the channel layer down."""
    raise RuntimeError("the channel layer is down")


async def test_a_request_that_fails_once_is_built_again_and_the_reply_goes_on(
    live, owner, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    def flaky(build):  # type: ignore[no-untyped-def]
        def built(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("a passing hiccup")
            return build(*args, **kwargs)

        return built

    # Built under the turn's lock first, then again from the saved turn.
    monkeypatch.setattr(turn_start, "history_request", flaky(history_request))
    monkeypatch.setattr(turn_start, "reply_request", flaky(reply_request))
    conversation, tab, reply = await start_reply(owner)
    assert await tab.until_finished(reply.pk) == "complete"
    assert calls["n"] == 2
    assert len(live.requests_to("/api/chat")) == 1  # Ollama was asked once, not twice


async def test_a_request_that_cannot_be_built_fails_the_reply_with_a_reason(
    live, owner, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(turn_start, "history_request", cannot_build)
    monkeypatch.setattr(turn_start, "reply_request", cannot_build)
    conversation, tab, reply = await start_reply(owner)
    assert await tab.until_finished(reply.pk) == "error"
    assert "The reply could not be prepared." in tab.error_text()
    assert live.requests_to("/api/chat") == []
    # The user's message is kept, and the conversation is not stuck: the next send is answered.
    assert await Message.objects.filter(conversation=conversation, role="user").acount() == 1
    monkeypatch.undo()
    await tab.send("send", content="Once more")
    second = await next_reply(conversation, reply)
    assert await tab.until_finished(second.pk) == "complete"


async def test_a_turn_that_cannot_be_saved_stops_what_it_asked_and_loses_nothing(
    live, owner, monkeypatch, settings
) -> None:  # type: ignore[no-untyped-def]
    """Ollama is asked before the reply is written, and the turn is shown before it is
    written: when writing it fails, the request is closed (the model stops), nothing of the
    turn is kept, every page showing it gets the conversation back as saved, and the user is
    told. The next turn (which, on SQLite, gets the same ids) is not disturbed by the one that
    failed."""
    use_layer(settings, f"{__name__}.RecordingLayer")
    live.model("llama3.2").tokens_per_second = 20
    conversation = await new_conversation(owner)
    tab, other_tab = await open_tab(conversation, owner), await open_tab(conversation, owner)
    unsaved: list[int] = []

    def full_disk(*args, reply, **kwargs):  # type: ignore[no-untyped-def]
        unsaved.append(reply.pk)
        # Once the request has reached Ollama (a write can be slow to fail).
        assert live.wait_for(lambda: live.requests_to("/api/chat"))
        raise DatabaseError("database or disk is full")

    monkeypatch.setattr(turns, "_start_reply", full_disk)
    await tab.send("send", content="Hello there")

    def snapshots(page: Tab) -> list[int]:  # the first is the one every page opens with
        return [i for i, f in enumerate(page.frames) if 'id="messages" hx-swap-oob' in f]

    for page in (tab, other_tab):
        await page.until(lambda page: len(snapshots(page)) == 2)
        await page.until(lambda page: "could not be saved" in page.error_text())
        shown = next(i for i, f in enumerate(page.frames) if "Hello there" in f)
        taken_back = snapshots(page)[1]
        assert shown < taken_back and "Hello there" not in page.frames[taken_back]
        assert page.error_text() == turn_start.TURN_NOT_SAVED

    [asked] = live.requests_to("/api/chat")
    assert await asyncio.to_thread(live.wait_for, lambda: asked.disconnected)
    assert await Message.objects.filter(conversation=conversation).acount() == 0
    assert not any("composer-input" in frame for frame in tab.frames)  # the text stays
    # The reply that was never saved says nothing more: its id may be the next reply's.
    published = channel_layers["default"].published
    [retracted] = [m for m in published if m["type"] == "turn.retracted"]
    assert retracted["reply_id"] == unsaved[0]
    assert not [m for m in published if m["type"] == "generation.finished"]
    monkeypatch.undo()
    await tab.send("send", content="Hello again")
    reply = await wait_for_reply(conversation)
    assert await tab.until_finished(reply.pk) == "complete"
    assert await other_tab.until_finished(reply.pk) == "complete"
    assert (await Message.objects.aget(pk=reply.pk)).status == "complete"
    await other_tab.close()


@pytest.mark.parametrize("action", ["regenerate", "edit"])
async def test_a_regenerate_or_edit_that_cannot_be_saved_changes_nothing(
    live, owner, monkeypatch, action: str
) -> None:  # type: ignore[no-untyped-def]
    """They ask Ollama before deleting the old reply: when saving fails, the old reply and
    the message are as they were, and what was asked is stopped."""
    live.model("llama3.2").tokens_per_second = 2000
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Hello there")
    first = await wait_for_reply(conversation)
    assert await tab.until_finished(first.pk) == "complete"
    before = [(m.pk, m.content) async for m in Message.objects.filter(conversation=conversation)]

    def full_disk(*args, **kwargs):  # type: ignore[no-untyped-def]
        assert live.wait_for(lambda: len(live.requests_to("/api/chat")) == 2)
        raise DatabaseError("database or disk is full")

    monkeypatch.setattr(turns, "_start_reply", full_disk)
    await tab.send(action, content="Goodbye")
    await tab.until(lambda tab: "could not be saved" in tab.error_text())

    asked = live.requests_to("/api/chat")[1]
    assert await asyncio.to_thread(live.wait_for, lambda: asked.disconnected)
    after = [(m.pk, m.content) async for m in Message.objects.filter(conversation=conversation)]
    assert after == before


async def test_a_reply_that_cannot_start_after_its_turn_is_saved_fails_with_a_reason(
    live, owner, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Ollama was asked and the turn saved, then the reply could not start (its channel layer
    down): the reply is saved as failed and shown so, the request stopped, and the
    conversation is not held up."""
    live.model("llama3.2").tokens_per_second = 20
    calls = {"n": 0}
    prepare = generation.generation_prepare

    async def down_once(**kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return await (layer_down if calls["n"] == 1 else prepare)(**kwargs)

    monkeypatch.setattr(turn_start, "generation_prepare", down_once)
    conversation, tab, reply = await start_reply(owner)

    assert await tab.until_finished(reply.pk) == "error"
    assert turn_start.REPLY_NOT_STARTED in tab.error_text()
    await reply.arefresh_from_db()
    assert (reply.status, reply.error) == ("error", turn_start.REPLY_NOT_STARTED)
    [asked] = live.requests_to("/api/chat")
    assert await asyncio.to_thread(live.wait_for, lambda: asked.disconnected)
    assert await Message.objects.filter(conversation=conversation, role="user").acount() == 1
    await tab.send("send", content="Once more")
    second = await next_reply(conversation, reply)
    assert await tab.until_finished(second.pk) == "complete"


async def test_the_stop_button_of_a_reply_sent_over_the_socket_names_that_reply(
    live, owner
) -> None:  # type: ignore[no-untyped-def]
    """The start of the turn brings the Stop button; pressed, it must stop this reply (it sent
    no id, and the server answered "Nothing to stop")."""
    live.model("llama3.2").tokens_per_second = 20
    conversation, tab, reply = await start_reply(owner)
    await tab.until(lambda tab: any('data-testid="stop"' in frame for frame in tab.frames))
    [started] = [frame for frame in tab.frames if 'data-testid="stop"' in frame]
    assert f'name="message_id" value="{reply.pk}"' in started
    await tab.send("stop", message_id=str(reply.pk))
    assert await tab.until_finished(reply.pk) == "stopped"


async def test_a_reply_that_cannot_start_on_the_second_try_fails_with_a_reason(
    live, owner, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Its request could not be built under the lock, and then its generation could not start:
    the reply is saved as failed, not left streaming with nothing shown."""
    monkeypatch.setattr(turn_start, "history_request", cannot_build)
    monkeypatch.setattr(turn_start, "generation_prepare", layer_down)
    conversation, tab, reply = await start_reply(owner)
    assert await tab.until_finished(reply.pk) == "error"
    assert turn_start.REPLY_NOT_STARTED in tab.error_text()
    assert live.requests_to("/api/chat") == []


async def test_a_start_still_waiting_for_its_turn_at_shutdown_stops_what_it_asked(
    live, owner, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A worker stopping while a turn is being saved: the start waits a moment for the turn,
    then is stopped, and so is its request to Ollama."""
    live.model("llama3.2").tokens_per_second = 20
    monkeypatch.setattr(turn_start, "STARTS_SETTLE_SECONDS", 0.2)
    conversation = await new_conversation(owner)
    request = await db(reply_request_for_new_message)(conversation)
    early = turn_start.EarlyStart(conversation.pk)
    early._begin(request)  # as the database thread's ask does; the turn never comes
    assert await asyncio.to_thread(live.wait_for, lambda: live.requests_to("/api/chat"))

    await turn_start.starts_interrupt()

    [asked] = live.requests_to("/api/chat")
    assert await asyncio.to_thread(live.wait_for, lambda: asked.disconnected)


def reply_request_for_new_message(conversation: Conversation):  # type: ignore[no-untyped-def]
    history = [HistoryMessage(None, "user", "Hello there", "complete")]
    return history_request(
        Conversation.objects.select_related("model").get(pk=conversation.pk), history
    )


async def test_the_turn_goes_on_writing_only_once_its_request_is_on_its_way(
    live, owner, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The database thread and the event loop share one interpreter lock: the turn waits for
    the loop to write the request before it writes the turn, or the request would wait for
    the writes."""
    written_when_asked: list[bool] = []
    ask = turn_start.EarlyStart.ask

    def watched(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        ask(self, *args, **kwargs)
        written_when_asked.append(self._sent.is_set())

    monkeypatch.setattr(turn_start.EarlyStart, "ask", watched)
    # The bound is for a slow Ollama host; a loaded test machine must not reach it.
    monkeypatch.setattr(turn_start, "REQUEST_WRITE_WAIT_SECONDS", 5.0)
    conversation, tab, reply = await start_reply(owner)
    assert await tab.until_finished(reply.pk) == "complete"
    assert written_when_asked == [True]


async def test_a_reply_that_ends_before_its_turn_fails_to_be_written_saves_nothing(
    live, owner, monkeypatch, settings
) -> None:  # type: ignore[no-untyped-def]
    """A turn is shown, and its reply started, before the turn is written. If the writing
    fails, the reply sends nothing to the database under its id, even when it ended
    meanwhile: on SQLite the next turn gets the same ids."""
    one_worker(settings)
    conversation = await new_conversation(owner, "fast:latest")
    tab = await open_tab(conversation, owner)
    outcomes: list[int] = []
    finish = generation._finish

    async def recorded(reply_id, fields):  # type: ignore[no-untyped-def]
        outcomes.append(reply_id)
        return await finish(reply_id, fields)

    def full_disk(*args, **kwargs):  # type: ignore[no-untyped-def]
        assert live.wait_for(lambda: any(r.finished for r in live.requests_to("/api/chat")))
        time.sleep(0.2)  # the reply is read to its end, and its generation ends, meanwhile
        raise DatabaseError("database or disk is full")

    start_reply = turns._start_reply
    monkeypatch.setattr(generation, "_finish", recorded)
    monkeypatch.setattr(turns, "_start_reply", full_disk)
    await tab.send("send", content="Hello there")
    await tab.until(lambda tab: sum('id="messages" hx-swap-oob' in f for f in tab.frames) == 2)
    await tab.until(lambda tab: tab.error_text() == turn_start.TURN_NOT_SAVED)
    assert outcomes == []
    assert await Message.objects.filter(conversation=conversation).acount() == 0
    monkeypatch.setattr(turns, "_start_reply", start_reply)
    await tab.send("send", content="Hello again")
    reply = await wait_for_reply(conversation)
    assert await tab.until_finished(reply.pk) == "complete"
    assert outcomes == [reply.pk]


async def test_the_asking_page_has_the_turns_start_before_the_turn_is_written(
    live, owner, monkeypatch, settings
) -> None:  # type: ignore[no-untyped-def]
    """The first token waits for the turn's start (the page needs the reply's element): the
    start goes out before the turn's rows are written, which then happens after the first
    token. The writing here waits for the page to show the start."""
    one_worker(settings)
    page_has_start = threading.Event()
    shown_before_written: list[bool] = []
    start_reply = turns._start_reply

    def written_once_shown(*args, **kwargs):  # type: ignore[no-untyped-def]
        shown_before_written.append(page_has_start.wait(5))
        return start_reply(*args, **kwargs)

    monkeypatch.setattr(turns, "_start_reply", written_once_shown)
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Hello there")
    await tab.until(lambda tab: any('data-role="user"' in f for f in tab.frames))
    page_has_start.set()
    reply = await wait_for_reply(conversation)
    assert await tab.until_finished(reply.pk) == "complete"
    assert shown_before_written == [True]
    assert await Message.objects.filter(conversation=conversation).acount() == 2


class RecordingLayer(LocalChannelLayer):
    """The in-memory layer, keeping what was published to each conversation's sockets."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.published: list[dict] = []  # type: ignore[type-arg]

    async def group_send(self, group: str, message: dict) -> None:  # type: ignore[type-arg]
        if not group.endswith("-control"):
            self.published.append(message)
        await super().group_send(group, message)


def announcement_after_first_text(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Hold the rendering of each turn's start until the model's first text has arrived."""
    render = turn_start._announcement_html
    readings: list[object] = []
    reading_init = reply_reading.ReplyReading.__init__

    def keep(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        reading_init(self, *args, **kwargs)
        readings.append(self)

    def held(turn):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 5
        while not (readings and readings[-1].content) and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.005)
        return render(turn)

    monkeypatch.setattr(reply_reading.ReplyReading, "__init__", keep)
    monkeypatch.setattr(turn_start, "_announcement_html", held)


async def test_text_that_arrives_before_the_announcement_goes_out_with_it(
    live, owner, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Once, in the announcement's event (not as an event of its own, which cost every socket
    another turn of its receive loop), shown in the frame of the turn's start (one swap, one
    write), after the start and before what follows, and the reply ends up whole: nothing
    missed, nothing twice."""
    use_layer(settings, f"{__name__}.RecordingLayer")
    announcement_after_first_text(monkeypatch)
    conversation, tab, reply = await start_reply(owner)
    assert await tab.until_finished(reply.pk) == "complete"
    published = channel_layers["default"].published
    started = [m for m in published if m["type"] == "turn.started"]
    assert len(started) == 1 and started[0]["delta"]["seq"] == 1
    deltas = [m["seq"] for m in published if m["type"] == "generation.delta"]
    assert deltas and deltas[0] == 2  # the first went with the announcement
    assert deltas == list(range(2, 2 + len(deltas)))
    first_text = f'<div id="msg-{reply.pk}-tail" hx-'
    texts = [i for i, f in enumerate(tab.frames) if first_text in f]
    announcement = next(i for i, f in enumerate(tab.frames) if 'data-role="user"' in f)
    assert texts[0] == announcement  # the first text is in the start's frame …
    start = tab.frames[announcement]
    assert start.index(f'id="msg-{reply.pk}"') < start.index(first_text)  # … after the turn
    expected = expected_reply("llama3.2:latest", [{"role": "user", "content": "Hello there"}])
    assert tab.streamed[reply.pk] == tab.contents[reply.pk] == rendered(expected)
    await tab.close()


async def test_the_asking_page_is_shown_the_first_text_without_waiting_in_its_queue(
    live, owner, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The first text that comes after the announcement is shown to the page that asked by
    the task that publishes it, as the start was: here the page's socket lets no delta of the
    group through until the page shows the first text, which it still does, once; the rest of
    the reply then follows, nothing missed, nothing twice."""
    use_layer(settings, f"{__name__}.RecordingLayer")
    live.model("llama3.2").first_token_delay = 0.3  # the start goes out well before the text
    release = asyncio.Event()
    dispatch = consumers.ConversationConsumer.dispatch

    async def held(self, message):  # type: ignore[no-untyped-def]
        if message["type"] == "generation.delta":
            await release.wait()
        await dispatch(self, message)

    monkeypatch.setattr(consumers.ConversationConsumer, "dispatch", held)
    conversation, tab, reply = await start_reply(owner)
    first_text = f'<div id="msg-{reply.pk}-waiting" hx-swap-oob="delete">'
    await tab.until(lambda t: any(first_text in frame for frame in t.frames))
    release.set()
    assert await tab.until_finished(reply.pk) == "complete"
    started = [m for m in channel_layers["default"].published if m["type"] == "turn.started"]
    assert "delta" not in started[0]  # the text did come after the start
    assert sum(first_text in frame for frame in tab.frames) == 1
    expected = expected_reply("llama3.2:latest", [{"role": "user", "content": "Hello there"}])
    assert tab.streamed[reply.pk] == tab.contents[reply.pk] == rendered(expected)
    await tab.close()


async def test_a_page_that_joined_before_the_announcement_keeps_the_first_text_for_the_state(
    live, owner, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A page whose snapshot already showed the streaming reply waits for the reply's state;
    the first text that came with the announcement is kept for it, and shown after it if the
    state did not have it yet: no text lost, and no second request for the state."""
    conversation = await new_conversation(owner)

    def streaming_reply() -> Message:
        return Message.objects.create(
            conversation=conversation, role="assistant", status="streaming", content=""
        )

    reply = await sync_to_async(streaming_reply)()
    socket = consumers.ConversationConsumer()
    socket.conversation = conversation
    socket._shown, socket._held, socket._asked_at, socket._heard_at = {}, {}, {}, {}
    socket._watchdog = None
    sent: list[str] = []
    asked: list[int] = []

    async def send(html: str) -> None:
        sent.append(html)

    async def request_state(reply_id: int) -> None:
        asked.append(reply_id)
        socket._shown[reply_id] = None

    monkeypatch.setattr(socket, "send", send)
    monkeypatch.setattr(socket, "_request_state", request_state)
    await request_state(reply.pk)  # as the snapshot of a reply already streaming does
    first = {"type": "generation.delta", "message_id": reply.pk, "seq": 1, "html": "<p>Hi</p>"}
    await socket.turn_started(
        {
            "reply_id": reply.pk,
            "message_ids": [reply.pk],
            "removed_ids": [],
            "html": "<start/>",
            "delta": first,
        }
    )
    assert sent == []  # the page shows the reply already; the text waits for the state
    await socket.generation_state(
        {"message_id": reply.pk, "seq": 0, "content": "", "thinking": "", "committed": 0}
    )
    assert sent[-1] == "<p>Hi</p>"
    assert asked == [reply.pk]
    await socket.generation_delta({**first, "seq": 2, "html": "<p>there</p>"})
    assert sent[-1] == "<p>there</p>" and asked == [reply.pk]
    watchdog: asyncio.Task[None] | None = getattr(socket, "_watchdog", None)
    if watchdog is not None:  # started by the state: nothing left for it to watch
        watchdog.cancel()


class WatchedLayer(LocalChannelLayer):
    """The in-memory layer, watching the replies' stop-and-sync listeners: it counts the
    cancels of their receives. As ``Deaf``, it also loses the request to stop listening and
    ignores the first cancel, as channels_redis's receive did with redis-py 8.1."""

    deaf = False

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.listeners: set[str] = set()
        self.cancelled = self.swallowed = 0

    async def group_add(self, group: str, channel: str) -> None:
        if group.endswith("-control"):
            self.listeners.add(channel)
        await super().group_add(group, channel)

    async def send(self, channel: str, message: dict) -> None:  # type: ignore[type-arg]
        if self.deaf and message.get("type") == "generation.listener.stop":
            return  # lost on the way
        await super().send(channel, message)

    async def receive(self, channel: str):  # type: ignore[no-untyped-def]
        try:
            return await super().receive(channel)
        except asyncio.CancelledError:
            if channel not in self.listeners:
                raise
            self.cancelled += 1
            if not self.deaf or self.swallowed:
                raise
            self.swallowed += 1
            return await super().receive(channel)  # until cancelled again: never, by the reply


class DeafLayer(WatchedLayer):
    deaf = True


async def test_a_reply_asks_its_listener_to_stop_instead_of_cancelling_it(
    live, owner, settings
) -> None:  # type: ignore[no-untyped-def]
    """A receive cancelled during channels_redis's blocking pop can lose a message Redis pops
    for the closing connection, maybe another socket's frame: the listener is asked to return."""
    use_layer(settings, f"{__name__}.WatchedLayer")
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Hello there")
    first = await wait_for_reply(conversation)
    assert await tab.until_finished(first.pk) == "complete"
    await tab.send("send", content="And again")
    second = await next_reply(conversation, first)
    assert await tab.until_finished(second.pk) == "complete"
    layer = channel_layers["default"]
    assert len(layer.listeners) == 2
    assert layer.cancelled == 0


async def test_a_listener_that_neither_stops_nor_obeys_a_cancel_does_not_hold_up_the_end(
    live, owner, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(generation, "LISTENER_EXIT_SECONDS", 0.2)
    use_layer(settings, f"{__name__}.DeafLayer")
    conversation, tab, reply = await start_reply(owner)
    assert await tab.until_finished(reply.pk) == "complete"
    assert channel_layers["default"].swallowed == 1  # the listener really ignored it


# --- regenerate and edit -----------------------------------------------------------------


async def test_regenerate_replaces_the_last_reply(live, owner) -> None:  # type: ignore[no-untyped-def]
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Hello there")
    first_reply = await wait_for_reply(conversation)
    await tab.until_finished(first_reply.pk)
    await tab.send("regenerate")
    second = await next_reply(conversation, first_reply)
    assert await tab.until_finished(second.pk) == "complete"
    assert any(f'id="msg-{first_reply.pk}" hx-swap-oob="delete"' in f for f in tab.frames)
    assert [m.role async for m in Message.objects.filter(conversation=conversation)] == [
        "user",
        "assistant",
    ]


async def test_edit_changes_the_last_message_and_answers_it_again(live, owner) -> None:  # type: ignore[no-untyped-def]
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Hello there")
    first_reply = await wait_for_reply(conversation)
    await tab.until_finished(first_reply.pk)
    await tab.send("edit", content="Goodbye")
    second = await next_reply(conversation, first_reply)
    await tab.until_finished(second.pk)
    await second.arefresh_from_db()
    assert second.content == expected_reply(
        "llama3.2:latest", [{"role": "user", "content": "Goodbye"}]
    )
    last_request = live.requests_to("/api/chat")[-1].body
    assert [m["content"] for m in last_request["messages"]] == ["Goodbye"]


# --- what is written, and when ----------------------------------------------------------------


async def test_a_long_fast_reply_goes_out_in_batched_frames(live, owner) -> None:  # type: ignore[no-untyped-def]
    live.model("fast").reply_tokens = 5000
    conversation = await new_conversation(owner, "fast:latest")
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Hello there")
    reply = await wait_for_reply(conversation)
    await tab.until_finished(reply.pk, timeout=30)

    await reply.arefresh_from_db()
    assert reply.eval_count == 5000
    assert len(tab.frames) < 5000 / 10  # far fewer frames than tokens
    # (What a reply writes, however long, is pinned in test_write_counts.py.)


async def test_a_long_reply_is_checkpointed_while_it_streams(live, owner) -> None:  # type: ignore[no-untyped-def]
    live.model("llama3.2").tokens_per_second = 40
    live.model("llama3.2").reply_tokens = 200
    conversation, tab, reply = await start_reply(owner)
    await asyncio.sleep(2.5)
    saved = await Message.objects.aget(pk=reply.pk)
    assert saved.status == "streaming"
    assert len(saved.content) > 0  # a reload now shows the text so far
    assert saved.lease_expires_at is not None
    await tab.send("stop", message_id=reply.pk)
    await tab.until_finished(reply.pk)


async def test_a_history_too_long_for_the_context_is_trimmed_and_the_user_is_told(
    live, owner
) -> None:  # type: ignore[no-untyped-def]
    conversation = await new_conversation(owner)

    def fill() -> None:
        conversation.options = {"num_ctx": 600}
        conversation.save()
        for number in range(6):
            Message.objects.create(
                conversation=conversation, role="user", content=f"q{number} " + "q" * 400
            )
            Message.objects.create(
                conversation=conversation, role="assistant", content=f"a{number} " + "a" * 400
            )

    await sync_to_async(fill)()
    old_reply = await reply_of(conversation)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Hello there")
    reply = await next_reply(conversation, old_reply)
    await tab.until_finished(reply.pk)

    sent = live.requests_to("/api/chat")[0].body
    assert sent["options"]["num_ctx"] == 600
    assert sent["messages"][-1]["content"] == "Hello there"
    assert len(sent["messages"]) < 13
    await reply.arefresh_from_db()
    assert reply.history_dropped == 13 - len(sent["messages"])
    assert "earlier messages left out" in tab.frames[-1]


async def test_the_new_conversation_form_starts_the_reply_and_opens_the_conversation(
    live, owner, async_client
) -> None:  # type: ignore[no-untyped-def]
    model = await LanguageModel.objects.acreate(
        name="llama3.2:latest", enabled=True, capabilities=["completion"]
    )
    await async_client.aforce_login(owner)
    response = await async_client.post(
        "/conversations/new/", {"model": model.pk, "content": "Hello there"}
    )

    conversation = await Conversation.objects.aget(owner=owner)
    assert response.status_code == 302
    assert response["Location"] == f"/conversations/{conversation.pk}/"
    reply = await wait_for_reply(conversation)
    reply = await saved_when_done(reply, 5)
    assert reply.content == expected_reply(
        "llama3.2:latest", [{"role": "user", "content": "Hello there"}]
    )
    # The first words title the conversation until the generated title replaces it.
    async with asyncio.timeout(5):
        while (await Conversation.objects.aget(pk=conversation.pk)).title == "Hello there":
            await asyncio.sleep(0.02)
    conversation = await Conversation.objects.aget(pk=conversation.pk)
    assert conversation.title.startswith("Hello from llama3.2:latest! You wrote")
    assert len(conversation.title) <= 60


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"model": 999, "content": "Hi"}, "That model is not offered"),
        ({"content": "   "}, "Write a message first."),
    ],
)
async def test_the_new_conversation_form_refuses_bad_input_and_keeps_nothing(
    live, owner, async_client, fields, words
) -> None:  # type: ignore[no-untyped-def]
    model = await LanguageModel.objects.acreate(name="llama3.2:latest", enabled=True)
    await async_client.aforce_login(owner)
    response = await async_client.post("/conversations/new/", {"model": model.pk, **fields})
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not await Conversation.objects.aexists()


async def test_an_image_for_a_model_that_cannot_see_is_refused(live, owner, async_client) -> None:  # type: ignore[no-untyped-def]
    model = await LanguageModel.objects.acreate(
        name="llama3.2:latest", enabled=True, capabilities=["completion"]
    )
    await async_client.aforce_login(owner)
    image = io.BytesIO()
    Image.new("RGB", (2, 2)).save(image, format="PNG")
    image.seek(0)
    image.name = "cat.png"
    response = await async_client.post(
        "/conversations/new/", {"model": model.pk, "content": "What?", "images": image}
    )
    assert response.status_code == 400
    assert "cannot see images" in response.content.decode()
    assert not await Conversation.objects.aexists()


async def test_a_vision_model_receives_the_attached_image(live, owner, async_client) -> None:  # type: ignore[no-untyped-def]
    model = await LanguageModel.objects.acreate(
        name="llava:latest", enabled=True, capabilities=["completion", "vision"]
    )
    await async_client.aforce_login(owner)
    image = io.BytesIO()
    Image.new("RGB", (5, 4)).save(image, format="PNG")
    image.seek(0)
    image.name = "cat.png"
    await async_client.post(
        "/conversations/new/", {"model": model.pk, "content": "What?", "images": image}
    )
    conversation = await Conversation.objects.aget(owner=owner)
    reply = await wait_for_reply(conversation)
    await saved_when_done(reply)
    assert (
        await Message.objects.aget(pk=reply.pk)
    ).content == "I see 1 image: image 1 is a PNG of 5x4."


async def test_a_rename_made_before_the_generated_title_arrives_is_kept(
    live, owner, async_client
) -> None:  # type: ignore[no-untyped-def]
    live.model("slow").first_token_delay = 0.5
    model = await LanguageModel.objects.acreate(
        name="slow:latest", enabled=True, capabilities=["completion"]
    )
    await async_client.aforce_login(owner)
    await async_client.post("/conversations/new/", {"model": model.pk, "content": "Hello there"})
    conversation = await Conversation.objects.aget(owner=owner)
    reply = await wait_for_reply(conversation)
    await saved_when_done(reply)
    await async_client.post(f"/conversations/{conversation.pk}/rename/", {"title": "My own title"})
    assert await asyncio.to_thread(
        live.wait_for, lambda: any(r.finished for r in live.requests_to("/api/generate"))
    )
    await asyncio.sleep(0.2)
    assert (await Conversation.objects.aget(pk=conversation.pk)).title == "My own title"


async def test_a_stop_for_an_older_reply_does_not_stop_the_current_one(live, owner) -> None:  # type: ignore[no-untyped-def]
    live.model("llama3.2").tokens_per_second = 40
    conversation, tab, reply = await start_reply(owner)
    await tab.send("stop", message_id=reply.pk - 100)  # a late frame, replayed after a reconnect
    await tab.send("stop", message_id="not a number")
    await tab.until(lambda t: "Nothing to stop" in t.error_text())
    assert await tab.until_finished(reply.pk) == "complete"


async def test_a_reconnecting_tab_is_brought_up_to_date_from_the_database(live, owner) -> None:  # type: ignore[no-untyped-def]
    conversation, tab, reply = await start_reply(owner)
    await tab.until_finished(reply.pk)
    await tab.close()
    # While this tab is away, another device has a whole exchange.
    other = await open_tab(conversation, owner)
    await other.send("send", content="Second question")
    second = await next_reply(conversation, reply)
    await other.until_finished(second.pk)

    back = await open_tab(conversation, owner)
    snapshot = await back.next_frame()
    assert 'id="messages" hx-swap-oob="innerHTML"' in snapshot
    assert snapshot.count('data-testid="message"') == 4
    assert "Second question" in snapshot
    assert back.statuses[second.pk] == "complete"
    assert 'data-testid="stop"' not in snapshot
    assert 'data-testid="regenerate"' in snapshot


# --- replies whose worker died -----------------------------------------------------------------


async def test_an_open_page_shows_a_reply_whose_worker_died_as_interrupted(
    live, owner, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_STREAM_LEASE_SECONDS = 2
    conversation = await new_conversation(owner)

    def orphan() -> Message:
        # What a killed worker leaves: a streaming reply that nobody writes, its lease running.
        Message.objects.create(conversation=conversation, role="user", content="Hi")
        return Message.objects.create(
            conversation=conversation,
            role="assistant",
            status="streaming",
            content="Half a",
            lease_expires_at=timezone.now() + timedelta(seconds=2),
        )

    reply = await sync_to_async(orphan)()
    tab = await open_tab(conversation, owner)
    await tab.next_frame()
    assert tab.statuses[reply.pk] == "streaming"

    assert await tab.until_finished(reply.pk, timeout=8) == "interrupted"
    assert "stopped while this reply was being written" in tab.frames[-1]
    saved = await Message.objects.aget(pk=reply.pk)
    assert (saved.status, saved.content) == ("interrupted", "Half a")


async def test_a_page_does_not_ask_the_database_about_a_reply_it_hears_from(
    live, owner, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # A check due every 3 s, for a reply of 5 s: the page hears from it far more often.
    settings.CHAT_STREAM_LEASE_SECONDS = 6
    checks: list[int] = []
    status_after_sweep = consumers._status_after_sweep

    async def counted(conversation_id: int, reply_id: int) -> str | None:
        checks.append(reply_id)
        return await status_after_sweep(conversation_id, reply_id)

    monkeypatch.setattr(consumers, "_status_after_sweep", counted)
    live.model("llama3.2").tokens_per_second = 20
    live.model("llama3.2").reply_tokens = 100
    conversation = await new_conversation(owner)
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Take your time")
    reply = await wait_for_reply(conversation)

    assert await tab.until_finished(reply.pk, timeout=15) == "complete"
    assert checks == []


async def test_a_reply_that_falls_silent_and_stops_renewing_its_lease_is_shown_interrupted(
    live, owner, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_STREAM_LEASE_SECONDS = 2
    settings.OLLAMA_STALL_TIMEOUT = 30
    await close_client()  # the shared client is rebuilt from the settings

    async def worker_gone(rows):  # type: ignore[no-untyped-def]
        return set()  # as if its worker had died: nothing saved, the lease not renewed

    monkeypatch.setattr(checkpoints, "_save", worker_gone)
    conversation = await new_conversation(owner, "stall:latest")
    tab = await open_tab(conversation, owner)
    await tab.send("send", content="Hello there")
    reply = await wait_for_reply(conversation)
    await tab.until(lambda t: bool(t.tails.get(reply.pk)))  # heard from, then silent

    assert await tab.until_finished(reply.pk, timeout=10) == "interrupted"
    assert "stopped while this reply was being written" in tab.frames[-1]
