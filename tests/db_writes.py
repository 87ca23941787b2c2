"""Counting what the app writes to the database, from any thread: the ORM runs in worker
threads under the socket code, whose connections CaptureQueriesContext (one connection of one
thread) does not see, and which may have been opened before the count starts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

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
