"""Figure 1, added first-token latency: from a tab's send to the first token it shows, minus
what a client talking straight to the fake Ollama waits for its first chunk, in the same run.

At N concurrent replies, N - 1 tabs keep replies of 20 tokens a second streaming in their own
conversations (each sends again as soon as its reply ends). One more tab measures: it sends,
waits for the first token, presses Stop, waits for the reply to end and sends again; between
two of its sends, the direct client asks the fake Ollama once. Both see the same load.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx

from conversations.models import Conversation
from tests.benchmarks.browser import Tab, close_tabs, direct_first_chunk, open_tabs
from tests.benchmarks.live import ClockModel, Live, new_conversations
from tests.benchmarks.stats import p50_p99_ms

MODEL = ClockModel("bench-first:latest", tokens_per_second=20, reply_tokens=300)
LEVELS = (1, 10, 50)
# Between two measured sends: about the pace of a person, and little load of its own.
PROBE_PAUSE_SECONDS = 0.1
# The background tabs' first messages spread over this; measuring starts once they are sent.
ARRIVALS_SECONDS, QUICK_ARRIVALS_SECONDS = 2.0, 1.0
SAMPLES, QUICK_SAMPLES = 100, 20


def prepare(live: Live, *, quick: bool) -> dict[int, list[int]]:
    """A conversation for the measuring tab and one for each background reply, per level. The
    background replies differ in length (the reply length limit), as real ones do: replies of
    one length would all end, and start again, at the same moments."""
    levels = {level: new_conversations(live.owner, MODEL.name, level) for level in LEVELS}
    for ids in levels.values():
        for conversation_id in ids[1:]:
            length = random.randint(MODEL.reply_tokens // 2, MODEL.reply_tokens * 3 // 2)  # noqa: S311
            Conversation.objects.filter(pk=conversation_id).update(options={"num_predict": length})
    return levels


async def _background(tabs: list[Tab], stop: asyncio.Event, arrivals: float) -> None:
    """Replies streaming in other conversations until ``stop``, which stops them. The first
    messages are spread out: people do not all press Send in the same millisecond."""

    async def user(tab: Tab) -> None:
        await asyncio.sleep(random.uniform(0, arrivals))  # noqa: S311
        while not stop.is_set():
            await tab.reply_to("Tell me a long story.", stop=stop)

    await asyncio.gather(*(user(tab) for tab in tabs))


async def _level(live: Live, conversation_ids: list[int], *, quick: bool) -> dict[str, Any]:
    probe_id, *others = conversation_ids
    stop = asyncio.Event()
    app: list[int] = []
    direct: list[int] = []
    background_tabs = await open_tabs(live.app.url, live.cookie, others)
    probe = await Tab.open(live.app.url, live.cookie, probe_id)
    arrivals = QUICK_ARRIVALS_SECONDS if quick else ARRIVALS_SECONDS
    background = asyncio.create_task(_background(background_tabs, stop, arrivals))
    try:
        async with httpx.AsyncClient(base_url=live.fake.url, timeout=30) as http:
            # Once each first: the first of anything in a process (a pool's connection, code
            # run for the first time) is not what a user waits for every time.
            await direct_first_chunk(http, MODEL.name, "Warm up")
            await probe.reply_to("Warm up", stop_after_first=True)
            await asyncio.sleep(arrivals if others else 0)
            for number in range(QUICK_SAMPLES if quick else SAMPLES):
                reply = await probe.reply_to(f"Question {number}", stop_after_first=True)
                if reply.first_token_us is not None:
                    app.append(reply.first_token_us)
                await asyncio.sleep(PROBE_PAUSE_SECONDS / 2)
                direct.append(await direct_first_chunk(http, MODEL.name, f"Question {number}"))
                await asyncio.sleep(PROBE_PAUSE_SECONDS / 2)
        stop.set()
        await asyncio.wait_for(background, 60)
    finally:
        background.cancel()
        await close_tabs([probe, *background_tabs])
    app_p50, app_p99 = p50_p99_ms(app)
    direct_p50, direct_p99 = p50_p99_ms(direct)
    return {
        "added_p50_ms": round(app_p50 - direct_p50, 1),
        "added_p99_ms": round(app_p99 - direct_p99, 1),
        "app_p50_ms": app_p50,
        "app_p99_ms": app_p99,
        "direct_p50_ms": direct_p50,
        "direct_p99_ms": direct_p99,
        "samples": len(app),
    }


async def measure(
    live: Live, conversations: dict[int, list[int]], *, quick: bool
) -> dict[str, Any]:
    return {
        f"{level}_replies": await _level(live, conversations[level], quick=quick)
        for level in LEVELS
    }
