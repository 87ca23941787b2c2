"""How a socket's consumer waits for its messages: one reader per source, one message handled
at a time.

channels' consumer (``await_many_dispatch``) makes a task for every message it waits for and
waits on both sources (the browser's frames, the channel layer's events) with
``asyncio.wait``. A message then reaches its handler three turns of the event loop after it
arrives (the receiving task ends, ``asyncio.wait`` hears of it, the consumer's task wakes), and
every delta of every reply, on every socket, costs a task and a wait. On a worker relaying
many replies each of those turns runs the other sockets' work first (docs/performance.md).

Here each source has one reader for the socket's life, which handles what it reads itself,
holding the socket's lock: messages are still handled one at a time, each source's in the
order they came, and a message reaches its handler one turn after it arrives.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from channels.exceptions import StopConsumer

Message = dict[str, Any]


async def dispatch_one_at_a_time(
    sources: Sequence[Callable[[], Awaitable[Message]]],
    dispatch: Callable[[Message], Awaitable[None]],
) -> None:
    """Hand every message of ``sources`` to ``dispatch``, one at a time, until a handler stops
    the consumer (StopConsumer) or fails (its error is raised here)."""
    handling = asyncio.Lock()

    async def read(source: Callable[[], Awaitable[Message]]) -> None:
        while True:
            message = await source()
            async with handling:
                await dispatch(message)

    # Each reader in a copy of this context, as channels' tasks were.
    readers = [
        asyncio.create_task(read(source), context=contextvars.copy_context()) for source in sources
    ]
    try:
        done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
        for reader in done:
            reader.result()  # a reader ends only by an exception: StopConsumer, or a failure
    except StopConsumer:
        pass
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
