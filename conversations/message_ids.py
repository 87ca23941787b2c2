"""Ids for a turn's messages before they are inserted, so that the turn's start can be shown
while its rows are being written.

The first token waits for the start of the turn (the page needs the reply's element before its
text). Rendering the start needs the messages' ids; with the ids known first, the start goes
out (with the reply's first text, when it has arrived) before the insert and the commit, which
run once the asking page has it. Supported where the database hands out ids safely ahead of an
insert; elsewhere a turn inserts first, as before.
"""

from __future__ import annotations

from django.db import connection

from conversations.models import Message


def message_ids_reserve(count: int) -> list[int] | None:
    """``count`` ids that no other message will get, in order, to be inserted by this
    transaction; None where the database cannot say them in advance."""
    if not connection.in_atomic_block:
        raise RuntimeError("Ids are reserved for an insert in the same transaction.")
    table = Message._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A sequence never hands out a value twice, whatever the transactions do.
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, count],
            )
            return [row[0] for row in cursor.fetchall()]
        if connection.vendor == "sqlite":
            # The table is AUTOINCREMENT: the next id is one more than the highest ever handed
            # out, kept in sqlite_sequence (no row before the first insert). A turn's
            # transaction holds SQLite's write lock from its start (IMMEDIATE), so no one else
            # inserts meanwhile; if another setting let someone, the insert fails on the
            # primary key and the turn is not saved.
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            row = cursor.fetchone()
            last = int(row[0]) if row else 0
            return list(range(last + 1, last + 1 + count))
    return None
