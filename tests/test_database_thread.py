"""The worker's database thread keeps one connection across trips, and replaces one that no
longer works."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from conversations.db import database_thread_close, db
from conversations.models import Conversation

pytestmark = pytest.mark.django_db(transaction=True)


def _connection_and_rows() -> tuple[object, int]:
    """Which connection the trip used (its DB-API object, kept alive by being returned), and
    that it can query."""
    rows = Conversation.objects.count()
    return connection.connection, rows


async def test_trips_share_one_connection_instead_of_opening_one_each() -> None:
    try:
        first, _ = await db(_connection_and_rows)()
        second, _ = await db(_connection_and_rows)()
        third, _ = await db(_connection_and_rows)()
    finally:
        await database_thread_close()
    assert first is second is third


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _terminate(pid: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        connection.close()  # or PostgreSQL will not drop the test database


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite's connections do not drop (make test-postgres)",
)
async def test_a_kept_connection_the_server_dropped_is_replaced_before_the_next_trip() -> None:
    """A PostgreSQL restart (here: the server ending the connection) costs a reconnect, not a
    failed trip: the connection is checked before it is used again."""
    try:
        pid = await db(_backend_pid)()
        await sync_to_async(_terminate)(pid)  # from another thread's connection
        assert await db(_backend_pid)() != pid
        assert (await db(_connection_and_rows)())[1] == 0
    finally:
        await database_thread_close()
