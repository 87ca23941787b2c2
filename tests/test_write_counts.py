"""What a reply writes to the database: the same few rows, however long it is. A turn writes
the user's message, the empty reply and the conversation's time; the end of the reply writes it
once; in between, a checkpoint at most once a second. Counted, not timed: the count does not
depend on the machine (docs/performance.md, writes per reply)."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from conversations import checkpoints
from conversations.checkpoints import CHECKPOINT_SECONDS
from conversations.fake_ollama import FakeOllamaServer
from conversations.models import Conversation, LanguageModel, Message
from tests.conftest import make_user
from tests.db_writes import counting_database_trips, counting_writes
from tests.sockets import Tab, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

# The message and the reply (one statement), the conversation's time, the reply's end.
TURN_AND_END = 3


def conversation_with_history(owner: User) -> Conversation:
    """Not a first exchange: that one also asks the model for a title, which is another job."""
    model, _ = LanguageModel.objects.get_or_create(
        name="llama3.2:latest", defaults={"enabled": True, "capabilities": ["completion"]}
    )
    conversation = Conversation.objects.create(owner=owner, model=model, model_name=model.name)
    Message.objects.create(conversation=conversation, role="user", content="Hi")
    Message.objects.create(conversation=conversation, role="assistant", content="Hello!")
    return conversation


async def tab_on_history(username: str) -> tuple[Tab, Conversation]:
    """A new user's tab on a conversation with history, its snapshot read."""
    owner = await sync_to_async(make_user)(username)
    conversation = await sync_to_async(conversation_with_history)(owner)
    tab = Tab(conversation.pk, cookie=await sync_to_async(session_cookie)(owner))
    assert await tab.connect()
    await tab.next_frame()  # the snapshot
    return tab, conversation


async def reply_writes(live: FakeOllamaServer, tokens: int) -> tuple[list[str], float]:
    """The statements one reply of ``tokens`` tokens writes, from the send to its end, and how
    long it streamed."""
    live.model("llama3.2").reply_tokens = tokens
    tab, conversation = await tab_on_history(f"writer{tokens}")
    with counting_writes() as writes:
        started = time.monotonic()
        await tab.send("send", content="Tell me everything.")
        await tab.until(lambda tab: bool(tab.finished), timeout=60)
        seconds = time.monotonic() - started
    await tab.close()
    reply = await Message.objects.filter(conversation=conversation, role="assistant").alast()
    assert reply.status == "complete" and reply.eval_count == tokens
    assert await Message.objects.filter(
        conversation=conversation, role="user", content="Tell me everything."
    ).aexists()
    return writes, seconds


@pytest.mark.parametrize(("tokens", "tokens_per_second"), [(50, 1000), (500, 1000), (5000, 4000)])
async def test_a_reply_writes_three_statements_and_a_checkpoint_a_second_whatever_its_length(
    live, tokens: int, tokens_per_second: int
) -> None:  # type: ignore[no-untyped-def]
    live.model("llama3.2").tokens_per_second = tokens_per_second
    writes, seconds = await reply_writes(live, tokens)

    assert len(writes) <= TURN_AND_END + math.floor(seconds / CHECKPOINT_SECONDS), writes
    inserts = [sql for sql in writes if sql.startswith("INSERT")]
    assert len(inserts) == 1  # the message and the reply, in one statement


async def test_a_reply_that_streams_for_seconds_is_checkpointed_about_once_a_second(live) -> None:  # type: ignore[no-untyped-def]
    live.model("llama3.2").tokens_per_second = 100
    writes, seconds = await reply_writes(live, 250)  # about 2.5 s

    assert seconds >= 2
    assert 1 <= len(writes) - TURN_AND_END <= math.floor(seconds / CHECKPOINT_SECONDS)


async def test_replies_streaming_at_once_are_checkpointed_together(live, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    batches: list[int] = []
    save = checkpoints._save

    async def counted(rows):  # type: ignore[no-untyped-def]
        batches.append(len(rows))
        return await save(rows)

    monkeypatch.setattr(checkpoints, "_save", counted)
    live.model("llama3.2").tokens_per_second = 100
    live.model("llama3.2").reply_tokens = 250
    tabs = [(await tab_on_history(f"together{number}"))[0] for number in range(3)]
    for tab in tabs:
        await tab.send("send", content="Go")
    await asyncio.gather(*(tab.until(lambda t: bool(t.finished), timeout=30) for tab in tabs))
    for tab in tabs:
        await tab.close()

    assert sum(batches) >= 3  # every reply was checkpointed while it streamed
    assert max(batches) > 1  # in one trip to the database with the others


@pytest.mark.parametrize("tokens", [50, 500])
async def test_a_send_and_its_reply_take_two_trips_to_the_database_thread(
    live, tokens: int
) -> None:  # type: ignore[no-untyped-def]
    """One to save the turn and build the request, one to save the end: the frames in between,
    and the send's arrival, take none (checkpoints, at most one a second, are counted above)."""
    live.model("llama3.2").tokens_per_second = 2000
    live.model("llama3.2").reply_tokens = tokens
    tab, _ = await tab_on_history(f"tripper{tokens}")
    with counting_database_trips() as trips:
        await tab.send("send", content="Tell me everything.")
        await tab.until(lambda tab: bool(tab.finished), timeout=30)
    await tab.close()

    assert [trip for trip in trips if trip != "_save"] == ["turn_prepare", "_finish"]
