"""Counting what the app writes to the database, from any thread: the ORM runs in worker
threads under the socket code, whose connections CaptureQueriesContext (one connection of one
thread) does not see, and which may have been opened before the count starts. Also counting
the trips async code makes to those threads: each waits its turn behind all the worker's
database work."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from asgiref.sync import SyncToAsync
from django.db.backends.utils import CursorWrapper

_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


@contextmanager
def counting_writes() -> Iterator[list[str]]:
    """The INSERT, UPDATE and DELETE statements any connection sends while the block runs."""
    writes: list[str] = []
    execute, executemany = CursorWrapper.execute, CursorWrapper.executemany

    def counted_execute(self: CursorWrapper, sql: str, params: Any = None) -> Any:
        if _WRITE.match(sql):
            writes.append(sql)
        return execute(self, sql, params)

    def counted_executemany(self: CursorWrapper, sql: str, param_list: Any) -> Any:
        if _WRITE.match(sql):
            writes.append(sql)
        return executemany(self, sql, param_list)

    with (
        mock.patch.object(CursorWrapper, "execute", counted_execute),
        mock.patch.object(CursorWrapper, "executemany", counted_executemany),
    ):
        yield writes


@contextmanager
def counting_database_trips() -> Iterator[list[str]]:
    """The name of each function async code runs in a worker thread while the block runs (the
    worker's database thread, through ``conversations.db.db``, or ``sync_to_async``)."""
    trips: list[str] = []
    thread_handler = SyncToAsync.thread_handler

    def counted(self: SyncToAsync[Any, Any], *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(self.func, "__name__", repr(self.func)))
        return thread_handler(self, *args, **kwargs)

    with mock.patch.object(SyncToAsync, "thread_handler", counted):
        yield trips
