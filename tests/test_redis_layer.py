"""The Redis channel layer as the settings configure it, against the machine's real Redis: the
two ways its client (redis-py) has broken our sockets and replies."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator

import pytest
from channels_redis.core import RedisChannelLayer

from chatsite.env import env_redis_url

# `make test-postgres` (and CI) sets REDIS_URL; without Redis there is nothing to check.
REDIS = os.environ.get("REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS, reason="REDIS_URL is not set (make test-postgres)")


@pytest.fixture
async def layer() -> AsyncIterator[RedisChannelLayer]:
    # The same host string the settings build from REDIS_URL, nothing added.
    redis_layer = RedisChannelLayer(hosts=[env_redis_url("R", environ={"R": REDIS})])
    yield redis_layer
    await redis_layer.flush()


async def test_an_idle_socket_on_redis_waits_past_the_blocking_pop(layer) -> None:  # type: ignore[no-untyped-def]
    """redis-py 8 gives up a read after 5 s by default, as long as channels_redis's blocking
    pop: an idle socket's receive failed and the socket closed with 1011."""
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    # Two blocking pops' worth of silence, then a message: it arrives.
    await asyncio.sleep(RedisChannelLayer.brpop_timeout * 2 + 1)
    assert not receiving.done(), receiving
    await layer.send(channel, {"type": "still.here"})
    assert (await asyncio.wait_for(receiving, 5)) == {"type": "still.here"}


async def test_a_cancelled_receive_ends_while_other_channels_keep_receiving(layer) -> None:  # type: ignore[no-untyped-def]
    """A reply cancels its stop-and-sync listener when it ends. With redis-py 8.1 such a
    cancellation, landing during the blocking pop, was swallowed: the receive ran on for ever
    and the reply never sent its end (within ten cancels here, every time)."""
    busy = await layer.new_channel()
    received = 0

    async def keep_receiving() -> None:
        nonlocal received
        while True:
            await layer.receive(busy)
            received += 1

    async def keep_sending() -> None:
        while True:
            await layer.send(busy, {"type": "tick"})
            await asyncio.sleep(shuffle.random() * 0.005)

    shuffle = random.Random(8)  # noqa: S311 - timings, not secrets
    helpers = [asyncio.create_task(keep_receiving()), asyncio.create_task(keep_sending())]
    try:
        for attempt in range(150):
            listener = asyncio.create_task(layer.receive(await layer.new_channel()))
            await asyncio.sleep(shuffle.random() * 0.02)
            listener.cancel()
            done, _ = await asyncio.wait([listener], timeout=3)
            assert done, f"cancel {attempt} was swallowed: {listener}"
            assert listener.cancelled()
        sent_before = received
        await asyncio.sleep(0.2)
        assert received > sent_before  # the other channel still receives
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
