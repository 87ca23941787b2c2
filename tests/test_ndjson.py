"""The client's line reader: lines however the reads cut them, and its one stall timer.
(Against a real server, tests/test_ollama_client.py covers the same stall end to end.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest

from conversations.ollama.errors import StreamStalled
from conversations.ollama.ndjson import lines_until_stalled


async def reads(pieces: Sequence[bytes | float]) -> AsyncIterator[bytes]:
    """Each piece is one read; a number is a wait of that many seconds before the next."""
    for piece in pieces:
        if isinstance(piece, float):
            await asyncio.sleep(piece)
        else:
            yield piece


async def collect(pieces: Sequence[bytes | float], stall: float = 5.0) -> list[bytes]:
    return [line async for line in lines_until_stalled(reads(pieces), stall)]


async def test_lines_come_whole_however_the_reads_cut_them() -> None:
    pieces: list[bytes | float] = [b'{"a":', b' 1}\n{"b": 2}\n\n{"c"', b": 3}\r\n", b'{"d": 4}']
    assert await collect(pieces) == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}\r', b'{"d": 4}']


async def test_a_read_that_waits_past_the_stall_timeout_is_abandoned() -> None:
    with pytest.raises(StreamStalled) as error:
        await collect([b"one\n", 0.5, b"two\n"], stall=0.2)
    assert "0.2 seconds" in str(error.value)
    # The reader's task is not left cancelling: it carries on after handling the stall.
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)


async def test_slow_reads_within_the_timeout_are_not_a_stall() -> None:
    pieces: list[bytes | float] = [b"one\n", 0.15, b"two\n", 0.15, b"three\n"]
    assert await collect(pieces, stall=0.2) == [b"one", b"two", b"three"]


async def test_time_the_consumer_takes_between_reads_is_not_a_stall() -> None:
    got = []
    async for line in lines_until_stalled(reads([b"one\n", b"two\n", b"three\n"]), 0.1):
        got.append(line)
        await asyncio.sleep(0.25)  # busy elsewhere, for longer than the timeout
    assert got == [b"one", b"two", b"three"]


async def test_someone_elses_cancel_is_a_cancel_not_a_stall() -> None:
    task = asyncio.create_task(collect([b"one\n", 5.0, b"two\n"], stall=0.2))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_stall_is_a_stall_even_in_a_task_already_being_cancelled() -> None:
    """A reader run while its task is torn down (a cancel already caught, not taken back)."""

    async def read_after_a_cancel() -> list[bytes]:
        with contextlib.suppress(asyncio.CancelledError):  # caught; the task reads on
            await asyncio.sleep(5)
        return await collect([b"one\n", 5.0, b"two\n"], stall=0.2)

    task = asyncio.create_task(read_after_a_cancel())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(StreamStalled):
        await task
