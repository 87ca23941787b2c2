"""Reading a streamed response's lines, with a stall timeout that costs nothing per read.

A model at full speed sends a line every few microseconds, each in a read of its own. A timer
per read (``asyncio.timeout``) cost about a third of the client's time per line (measured in
docs/performance.md). Here one timer watches the whole stream: it fires once per stall period
and cancels the read only if that read has waited the whole period for data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from conversations.ollama.errors import StreamStalled


async def lines_until_stalled(
    chunks: AsyncIterator[bytes], stall_seconds: float
) -> AsyncGenerator[bytes, None]:
    """The non-blank lines of ``chunks``, split at ``\n`` (NDJSON; a ``\r`` before it stays,
    which JSON reads as whitespace). Raises StreamStalled when one read waits more than
    ``stall_seconds`` for data. Time spent by whoever consumes the lines, between reads, does
    not count as a stall. The timer cancels the task that first reads: consume the lines from
    one task, as an ``async for`` does."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None  # noqa: S101 - always inside a task under asyncio
    # Cancels already pending on the task (it may read while being torn down) are not ours.
    cancels_before = task.cancelling()
    # When the read under way began; None between reads.
    read_started: float | None = None
    stalled = False
    timer: asyncio.TimerHandle

    def check() -> None:
        nonlocal timer, stalled
        if read_started is not None and loop.time() - read_started >= stall_seconds:
            stalled = True
            task.cancel()
            return
        due = (read_started if read_started is not None else loop.time()) + stall_seconds
        timer = loop.call_at(due, check)

    timer = loop.call_later(stall_seconds, check)
    pending = bytearray()
    try:
        while True:
            read_started = loop.time()
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except BaseException as error:
                if not stalled:
                    raise
                # Our cancel (whatever the read turned it into): taken back. A stall, unless
                # someone else cancelled the task too, whose cancel stands.
                if task.uncancel() <= cancels_before and isinstance(error, asyncio.CancelledError):
                    raise StreamStalled(stall_seconds) from None
                raise
            finally:
                read_started = None
            pending += chunk
            if b"\n" not in chunk:
                continue
            *complete, rest = pending.split(b"\n")
            pending = bytearray(rest)
            for line in complete:
                if line.strip():
                    yield bytes(line)
        if pending.strip():
            yield bytes(pending)  # a last line without its line end
    finally:
        timer.cancel()
