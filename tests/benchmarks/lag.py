"""Figure 2, token lag: from a token leaving the fake Ollama to a tab reading it, while 100
replies of 20 tokens a second stream at once (the app's batching of tokens into frames
included).

Each of 100 tabs sends, reads its reply to the end and sends again. Their first messages spread
over the length of one reply, so that from then on about 100 replies stream at any moment, and
new ones start about as often as people would start them. Tokens that arrive in the window
that follows count.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tests.benchmarks.browser import Reply, Tab, close_tabs, now_us, open_tabs
from tests.benchmarks.live import ClockModel, Live, new_conversations
from tests.benchmarks.processes import cpu_seconds
from tests.benchmarks.stats import ms, percentile

REPLIES = 100
MODEL = ClockModel("bench-lag:latest", tokens_per_second=20, reply_tokens=200)
# The quick run's replies are shorter, asked for as a user may: the reply length limit.
QUICK_TOKENS = 80
WINDOW_SECONDS, QUICK_WINDOW_SECONDS = 10.0, 3.0


def prepare(live: Live, *, quick: bool) -> list[int]:
    options = {"num_predict": QUICK_TOKENS} if quick else {}
    return new_conversations(live.owner, MODEL.name, REPLIES, options=options)


async def measure(live: Live, conversation_ids: list[int], *, quick: bool) -> dict[str, Any]:
    reply_seconds = (QUICK_TOKENS if quick else MODEL.reply_tokens) / MODEL.tokens_per_second
    window = QUICK_WINDOW_SECONDS if quick else WINDOW_SECONDS
    tabs = await open_tabs(live.app.url, live.cookie, conversation_ids)
    stop = asyncio.Event()
    replies: list[Reply] = []

    async def user(tab: Tab) -> None:
        await asyncio.sleep(random.uniform(0, reply_seconds))  # noqa: S311
        while not stop.is_set():
            replies.append(await tab.reply_to("Tell me more.", stop=stop))

    users = asyncio.gather(*(user(tab) for tab in tabs))
    try:
        await asyncio.sleep(reply_seconds)
        starts, app_cpu = now_us(), cpu_seconds(live.app.pid)
        await asyncio.sleep(window)
        ends, app_cpu = now_us(), cpu_seconds(live.app.pid) - app_cpu
        stop.set()
        await asyncio.wait_for(users, 60)
    finally:
        users.cancel()
        await close_tabs(tabs)
    lags = [
        lag
        for reply in replies
        for arrived, lag in zip(reply.arrivals, reply.lags, strict=True)
        if starts <= arrived <= ends
    ]
    return {
        "replies": len(tabs),
        "tokens_per_second_each": MODEL.tokens_per_second,
        "tokens": len(lags),
        "window_seconds": window,
        # How busy the worker was meanwhile: 100 is one core all the time.
        "app_cpu_percent": round(app_cpu / window * 100),
        "lag_p50_ms": ms(percentile(lags, 0.5)),
        "lag_p99_ms": ms(percentile(lags, 0.99)),
        "lag_max_ms": ms(max(lags, default=0)),
    }
