"""Checkpoints of the replies a worker is streaming: each reply's text so far and a fresh lease,
written about once a second while it streams, so that a reload shows it and a crash loses
little. The lease says the writer is alive (see turns.lost_replies_sweep).

One task per worker writes the checkpoints of all its replies, together, in one trip to the
database thread and one transaction: with many replies at once, the trips (each one a turn of
the single database thread, and a connection) cost more than the writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from conversations.compiled import CompiledUpdate
from conversations.db import db
from conversations.models import Message
from conversations.turns import new_lease

logger = logging.getLogger(__name__)

# A reply is written at most this often, and a reply that streams is written about this often.
CHECKPOINT_SECONDS = 1.0
# How often the writer looks for replies that are due.
_TICK_SECONDS = CHECKPOINT_SECONDS / 4


@dataclass(frozen=True)
class Checkpoint:
    reply_id: int
    content: str
    thinking: str


class Checkpointed(Protocol):
    def checkpoint_due(self, now: float) -> Checkpoint | None:
        """What to write now, if anything (changed, or the lease needs renewing)."""

    def checkpoint_saved(self, checkpoint: Checkpoint, now: float) -> None: ...

    def checkpoint_lost(self) -> None:
        """The reply's row is gone or no longer streaming."""


_replies: set[Checkpointed] = set()
_writer: asyncio.Task[None] | None = None


def checkpoints_join(reply: Checkpointed) -> None:
    global _writer
    _replies.add(reply)
    loop = asyncio.get_running_loop()
    if _writer is None or _writer.done() or _writer.get_loop() is not loop:
        _writer = loop.create_task(_write_while_streaming(), name="checkpoints")


def checkpoints_leave(reply: Checkpointed) -> None:
    _replies.discard(reply)
    if not _replies and _writer is not None and not _writer.done():
        _writer.cancel()  # nothing left to write; the next reply starts it again


def lease_renewal_seconds() -> float:
    """A reply whose text does not change (a model loading) is still written this often."""
    return settings.CHAT_STREAM_LEASE_SECONDS / 4


async def _write_while_streaming() -> None:
    while _replies:
        await asyncio.sleep(_TICK_SECONDS)
        now = time.monotonic()
        due = [
            (reply, checkpoint)
            for reply in list(_replies)
            if (checkpoint := reply.checkpoint_due(now)) is not None
        ]
        if not due:
            continue
        try:
            lost = await _save([checkpoint for _, checkpoint in due])
        except Exception:
            logger.warning("Checkpoints of %s replies failed", len(due), exc_info=True)
            continue
        for reply, checkpoint in due:
            reply.checkpoint_saved(checkpoint, now)
            if checkpoint.reply_id in lost:
                reply.checkpoint_lost()


@db
def _save(checkpoints: list[Checkpoint]) -> set[int]:
    """Write the checkpoints; return the replies whose row is gone or no longer streaming
    (deleted with their conversation, or swept as lost)."""
    lease = new_lease()
    lost = set()
    with transaction.atomic():
        for checkpoint in checkpoints:
            updated = _CHECKPOINT.run(
                checkpoint.reply_id,
                {
                    "content": checkpoint.content,
                    "thinking": checkpoint.thinking,
                    "lease_expires_at": lease,
                },
            )
            if not updated:
                lost.add(checkpoint.reply_id)
    return lost


# A streaming reply's text so far and its lease. The worker's database thread runs these by
# the hundred a second with many replies streaming, holding the interpreter lock the event
# loop needs for their frames: the ORM building each update's SQL again was most of it.
_CHECKPOINT = CompiledUpdate(Message, where=Q(status=Message.Status.STREAMING))
