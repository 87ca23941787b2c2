"""Figure 4, writes per reply: the INSERTs, UPDATEs and DELETEs one reply of 50, 500 and 5,000
tokens costs, from the send to the reply's end. The app runs in this process (where Django's
queries can be counted), against the fake Ollama process."""

from __future__ import annotations

import math
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.conf import settings
from django.contrib.auth.models import User

from conversations.generation import CHECKPOINT_SECONDS, generations_interrupt
from conversations.models import Message
from conversations.ollama import close_client
from tests.benchmarks.live import ClockModel, new_conversations
from tests.benchmarks.processes import FakeOllama
from tests.db_writes import counting_writes
from tests.sockets import Tab, session_cookie

LENGTHS = (50, 500, 5000)
# Slow enough that the longest reply streams for seconds (checkpoints happen once a second);
# the quick run streams as fast as the fake can.
MODEL = ClockModel("bench-writes:latest", tokens_per_second=2000, reply_tokens=max(LENGTHS))
QUICK_MODEL = ClockModel(
    "bench-writes-quick:latest", tokens_per_second=0, reply_tokens=max(LENGTHS)
)
# A turn writes the user's message, the empty reply and the conversation's time; the end of
# the reply writes it once more.
FIXED_WRITES = 4


def prepare(owner: User, *, quick: bool) -> dict[int, int]:
    """A conversation per length, which asks for that many tokens (the num_predict option)."""
    model = QUICK_MODEL if quick else MODEL
    return {
        length: new_conversations(owner, model.name, 1, options={"num_predict": length})[0]
        for length in LENGTHS
    }


async def _one_reply(conversation_id: int, cookie: str) -> tuple[list[str], float, int]:
    tab = Tab(conversation_id, cookie=cookie)
    assert await tab.connect()  # noqa: S101
    await tab.next_frame()  # the snapshot
    try:
        with counting_writes() as writes:
            started = time.monotonic()
            await tab.send("send", content="Tell me everything.")
            await tab.until(lambda tab: bool(tab.finished), timeout=120)
            seconds = time.monotonic() - started
    finally:
        await tab.close()
    reply = await Message.objects.filter(conversation_id=conversation_id, role="assistant").alast()
    assert reply is not None  # noqa: S101
    return writes, seconds, reply.eval_count or 0


async def measure(fake: FakeOllama, owner: User, conversations: dict[int, int]) -> dict[str, Any]:
    settings.OLLAMA_BASE_URL = fake.url
    channel_layers.backends.clear()  # a layer for this event loop
    cookie = await sync_to_async(session_cookie)(owner)
    figures: dict[str, Any] = {}
    try:
        for length, conversation_id in conversations.items():
            writes, seconds, tokens = await _one_reply(conversation_id, cookie)
            figures[f"{length}_tokens"] = {
                "writes": len(writes),
                "limit": FIXED_WRITES + math.floor(seconds / CHECKPOINT_SECONDS),
                "seconds": round(seconds, 2),
                "tokens": tokens,
            }
    finally:
        await generations_interrupt()
        await close_client()
        channel_layers.backends.clear()
    return figures
