"""What a worker does when daphne shuts it down."""

from __future__ import annotations

import asyncio
import sys

from conversations.db import database_thread_close
from conversations.generation import generations_interrupt
from conversations.ollama import close_client
from conversations.turn_start import starts_interrupt


async def worker_shutdown() -> None:
    """Stop the replies asked for but not started yet, save every reply this worker is writing
    as interrupted, then close the Ollama pool and the database thread's connection."""
    await starts_interrupt()
    await generations_interrupt()
    await close_client()
    await database_thread_close()


def on_daphne_shutdown() -> None:
    """Daphne runs on Twisted's asyncio reactor and has no ASGI lifespan: ask the reactor to run
    worker_shutdown before it stops."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    def shutdown() -> defer.Deferred[None]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(worker_shutdown()))

    # zope interface methods have no self, which confuses mypy.
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)  # type: ignore[arg-type]
