"""Figure 3, relay throughput: the most tokens a second one worker relays from a model that
streams as fast as it can, at rising numbers of replies at once, while the token lag p99 stays
under 100 ms; and the worker's CPU time per 1,000 tokens relayed at that point."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from tests.benchmarks.browser import Reply, Tab, close_tabs, now_us, open_tabs
from tests.benchmarks.live import ClockModel, Live, new_conversations
from tests.benchmarks.processes import cpu_seconds
from tests.benchmarks.stats import ms, percentile

MODEL = ClockModel("bench-max:latest", tokens_per_second=0, reply_tokens=1000)
LEVELS = (1, 2, 4, 8, 16, 32, 64)
LAG_LIMIT_MS = 100


def prepare(live: Live, *, quick: bool) -> dict[int, list[int]]:
    return {level: new_conversations(live.owner, MODEL.name, level) for level in LEVELS}


async def _level(live: Live, conversation_ids: list[int], seconds: float) -> dict[str, Any]:
    """Every tab sends again as soon as its reply is done, for ``seconds``. Throughput and lag
    count the tokens that arrived within that window; CPU counts every token relayed."""
    tabs = await open_tabs(live.app.url, live.cookie, conversation_ids)
    replies: list[Reply] = []
    started = now_us()
    ends = started + int(seconds * 1_000_000)
    app_cpu = cpu_seconds(live.app.pid)

    async def user(tab: Tab) -> None:
        while now_us() < ends:
            replies.append(await tab.reply_to("Go"))

    try:
        await asyncio.wait_for(asyncio.gather(*(user(tab) for tab in tabs)), seconds + 60)
        app_cpu = cpu_seconds(live.app.pid) - app_cpu
    finally:
        await close_tabs(tabs)
    in_window = [
        lag
        for reply in replies
        for arrived, lag in zip(reply.arrivals, reply.lags, strict=True)
        if arrived <= ends
    ]
    relayed = sum(len(reply.lags) for reply in replies)
    return {
        "replies_at_once": len(tabs),
        "tokens_per_second": round(len(in_window) / seconds),
        "lag_p50_ms": ms(percentile(in_window, 0.5)),
        "lag_p99_ms": ms(percentile(in_window, 0.99)),
        "cpu_ms_per_1000_tokens": round(app_cpu * 1_000_000 / max(1, relayed), 1),
    }


async def _direct_tokens_per_second(live: Live) -> int:
    """How fast the fake Ollama streams the same reply to a client that only parses it."""
    async with httpx.AsyncClient(base_url=live.fake.url, timeout=30) as http:
        body = {"model": MODEL.name, "messages": [{"role": "user", "content": "Go"}]}
        started = time.perf_counter()
        tokens = 0
        for _ in range(3):
            async with http.stream("POST", "/api/chat", json=body) as response:
                async for line in response.aiter_lines():
                    tokens += bool(json.loads(line)["message"]["content"])
        return round(tokens / (time.perf_counter() - started))


async def measure(
    live: Live, conversations: dict[int, list[int]], *, quick: bool
) -> dict[str, Any]:
    levels: list[dict[str, Any]] = []
    for level in LEVELS:
        result = await _level(live, conversations[level], 1.5 if quick else 4)
        levels.append(result)
        if result["lag_p99_ms"] >= LAG_LIMIT_MS:
            break  # more replies at once would only add lag
    within = [r for r in levels if r["lag_p99_ms"] < LAG_LIMIT_MS] or levels[:1]
    best = max(within, key=lambda r: r["tokens_per_second"])
    return {
        "tokens_per_second": best["tokens_per_second"],
        "at_replies_at_once": best["replies_at_once"],
        "lag_p99_ms": best["lag_p99_ms"],
        "cpu_ms_per_1000_tokens": best["cpu_ms_per_1000_tokens"],
        "direct_stream_tokens_per_second": await _direct_tokens_per_second(live),
        "levels": levels,
    }
