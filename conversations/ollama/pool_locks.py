"""httpcore's locks without a turn of the event loop each time one is taken.

httpcore takes two anyio locks for every request on a kept connection: the connection's, then
its HTTP/1.1 state's. anyio's lock, when nobody holds it, still hands the event loop a whole
turn after taking it (a cancel-shielded ``sleep(0)``, which trio's semantics call for). On a
worker busy relaying other replies, each such turn runs whatever else is ready first: measured
with our client against the fake Ollama, on a loop a third busy, the request was written
1.15–1.19 ms after it was asked for, and 0.38–0.66 ms with the locks below
(docs/performance.md).

anyio's ``fast_acquire`` lock skips that turn and nothing else: a cancelled task still cannot
take it, and a task that waits for a held lock still waits. httpcore adopted it
(encode/httpcore#953) and took it back for reasons of process, not of behaviour
(encode/httpcore#1002); pydantic's httpx2 has it again. Until httpcore has it, its lock is made
as httpcore makes it, then given a ``fast_acquire`` lock in place of anyio's default one. The
change is the process's, not only this client's: every httpx client in the worker gets these
locks, from the first Ollama client made on. ``tests/test_ollama_network.py`` fails if a request
on a kept connection gives the loop a turn before it is written (as it would if httpcore changed
how it makes its locks).
"""

from __future__ import annotations

import anyio
from httpcore._synchronization import AsyncLock


def httpcore_locks_fast() -> None:
    """Make httpcore's asyncio locks ``fast_acquire`` ones (once; later calls do nothing)."""
    setup = AsyncLock.setup
    if getattr(setup, "fast_acquire", False):
        return

    def setup_fast(self: AsyncLock) -> None:
        setup(self)
        if getattr(self, "_anyio_lock", None) is not None:  # asyncio (trio keeps its own)
            self._anyio_lock = anyio.Lock(fast_acquire=True)

    setup_fast.fast_acquire = True  # type: ignore[attr-defined]
    AsyncLock.setup = setup_fast  # type: ignore[method-assign]
