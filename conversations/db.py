"""The worker's database thread: where async code runs its ORM work, one trip at a time.

channels' ``database_sync_to_async`` runs such work in asgiref's shared thread and, with Django's
default ``CONN_MAX_AGE`` of 0, opens a connection for every trip and closes it after: on the
way to a first token that was about a millisecond (the connection, and SQLite reading the
schema again for its first statement). Django advises against persistent connections under
ASGI because each HTTP request's sync work runs in a thread of its own, whose connection
nobody would close. This thread is the worker's own, for the life of the worker, so it keeps
its one connection: across trips, for as long as the connection works. Before each trip, as
channels does, a connection that failed, or that a transaction left in the wrong state, is
closed, and Django's health check (``CONN_HEALTH_CHECKS``) tests a kept one before its first
query (a PostgreSQL server restarted meanwhile costs a reconnect, not a failed turn).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar, cast

from asgiref.sync import SyncToAsync
from django.db import close_old_connections, connections

P = ParamSpec("P")
R = TypeVar("R")

# One thread: trips run one after another, as they did in asgiref's shared thread.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="database")


class _DatabaseTrip(SyncToAsync):  # type: ignore[type-arg]
    def thread_handler(self, loop: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            _keep_connections()


def _keep_connections() -> None:
    for connection in connections.all(initialized_only=True):
        # Only where no age was configured (Django's default, 0): an operator's own
        # CONN_MAX_AGE still applies.
        if connection.connection is not None and connection.settings_dict["CONN_MAX_AGE"] == 0:
            connection.close_at = None


def db(function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run ``function`` (which uses the ORM) in the worker's database thread, from async
    code."""
    return cast(
        Callable[P, Awaitable[R]],
        _DatabaseTrip(function, thread_sensitive=False, executor=_executor),
    )


async def database_thread_close() -> None:
    """Close the database thread's connections (at shutdown; after a test)."""
    await asyncio.wrap_future(_executor.submit(connections.close_all))


def database_thread_close_blocking() -> None:
    """As ``database_thread_close``, for a caller outside any event loop (a test session's
    end, before its database is dropped)."""
    _executor.submit(connections.close_all).result()
