"""Figure 7, idle sockets: how much the worker's resident memory grows per open conversation
socket that does nothing, with a thousand of them open (each on its own conversation, as
people leave tabs open)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.benchmarks.browser import close_tabs, open_tabs
from tests.benchmarks.live import ClockModel, Live, new_conversations
from tests.benchmarks.processes import resident_kib

SOCKETS = 1000
QUICK_SOCKETS = 300  # opening a thousand takes about ten seconds
MODEL = ClockModel("bench-idle:latest", tokens_per_second=20, reply_tokens=20)
# Sockets opened and closed first, so that memory the first connections need once (imports,
# caches, the allocator's first arenas) is not counted against every socket.
WARM_UP = 50


def prepare(live: Live, *, quick: bool) -> list[int]:
    return new_conversations(live.owner, MODEL.name, QUICK_SOCKETS if quick else SOCKETS)


async def measure(live: Live, conversation_ids: list[int], *, quick: bool) -> dict[str, Any]:
    warm_up, measured = conversation_ids[:WARM_UP], conversation_ids
    await close_tabs(await open_tabs(live.app.url, live.cookie, warm_up))
    await asyncio.sleep(0.5)
    before = resident_kib(live.app.pid)
    started = time.monotonic()
    tabs = await open_tabs(live.app.url, live.cookie, measured)
    opened = time.monotonic() - started
    try:
        await asyncio.sleep(1)  # idle: whatever the worker does per socket later is counted
        after = resident_kib(live.app.pid)
    finally:
        await close_tabs(tabs)
    return {
        "sockets": len(tabs),
        "kib_per_socket": round((after - before) / len(tabs), 1),
        "rss_before_mib": round(before / 1024, 1),
        "rss_after_mib": round(after / 1024, 1),
        "seconds_to_open": round(opened, 1),
    }
