"""How a socket's consumer waits for its messages: one reader per source, one message handled
at a time.

channels' consumer (``await_many_dispatch``) makes a task for every message it waits for and
waits on both sources (the browser's frames, the channel layer's events) with
``asyncio.wait``. A message then reaches its handler three turns of the event loop after it
arrives (the receiving task ends, ``asyncio.wait`` hears of it, the consumer's task wakes), and
every delta of every reply, on every socket, costs a task and a wait. On a worker relaying
many replies each of those turns runs the other sockets' work first (docs/performance.md).

Here the consumer's own task reads the browser's frames, and one task reads the channel
layer's events for the socket's life; each handles what it reads itself, holding the socket's
lock. Messages are still handled one at a time, each source's in the order they came, and a
message reaches its handler one turn after it arrives. The frames stay on the consumer's own
task (its disconnect too): handled on another task, a disconnect cost twice the CPU, in asgiref's
thread-local lookups (measured closing 1,000 sockets).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from channels.exceptions import StopConsumer

Message = dict[str, Any]


async def dispatch_one_at_a_time(
    sources: Sequence[Callable[[], Awaitable[Message]]],
    dispatch: Callable[[Message], Awaitable[None]],
) -> None:
    """Hand every message of ``sources`` to ``dispatch``, one at a time, until a handler stops
    the consumer (StopConsumer) or fails (its error is raised here). The first source is read
    by the calling task itself, each other one by a task of its own."""
    handling = asyncio.Lock()
    consumer = asyncio.current_task()
    assert consumer is not None  # noqa: S101 - always inside a task under asyncio
    failures: list[BaseException] = []

    async def read(source: Callable[[], Awaitable[Message]]) -> None:
        while True:
            message = await source()
            async with handling:
                await dispatch(message)

    def ended(reader: asyncio.Task[None]) -> None:
        if not reader.cancelled():
            failures.append(cast(BaseException, reader.exception()))
            consumer.cancel()  # the calling task stops reading, and raises what ended this

    readers = [asyncio.create_task(read(source)) for source in sources[1:]]
    for reader in readers:
        reader.add_done_callback(ended)
    try:
        await read(sources[0])
    except StopConsumer:
        pass
    except asyncio.CancelledError:
        if not failures:
            raise  # cancelled from outside
        if not isinstance(failures[0], StopConsumer):
            raise failures[0] from None
    finally:
        for reader in readers:
            reader.remove_done_callback(ended)
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
