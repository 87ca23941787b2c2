"""The Redis channel layer as the settings configure it, against the machine's real Redis."""

from __future__ import annotations

import asyncio
import os

from channels_redis.core import RedisChannelLayer
from django.conf import settings

from chatsite.env import url_with_default_query

REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/7")


async def test_an_idle_socket_on_redis_waits_past_the_blocking_pop() -> None:
    """redis-py 8 gives up a read after 5 s by default, as long as channels_redis's blocking pop:
    the settings give reads longer, so an idle socket keeps waiting instead of failing."""
    layer = RedisChannelLayer(
        hosts=[url_with_default_query(REDIS, "socket_timeout", str(settings.REDIS_SOCKET_TIMEOUT))]
    )
    channel = await layer.new_channel()
    try:
        # Two blocking pops' worth of silence, then a message: it arrives.
        receiving = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(RedisChannelLayer.brpop_timeout * 2 + 1)
        assert not receiving.done(), receiving
        await layer.send(channel, {"type": "still.here"})
        assert (await asyncio.wait_for(receiving, 5)) == {"type": "still.here"}
    finally:
        await layer.flush()
