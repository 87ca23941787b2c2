"""From a saved turn to a running reply: ask Ollama, tell the conversation's sockets.

Everything between a user's send and the first token is here, and the path is kept short: the
turn is saved, the request built and the announcement rendered in one trip to the database
thread, and Ollama is asked from that trip as soon as the request exists, so the model works
on its first token while the announcement renders. The generation publishes nothing before
the announcement is out, so no page gets a delta before the reply it belongs to. The start
runs as a task of the worker: a socket that closes meanwhile stops nothing half-way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

from channels.layers import get_channel_layer

from conversations import frames
from conversations.db import db
from conversations.generation import Generation, generation_launch, generation_prepare
from conversations.groups import stream_group
from conversations.models import Conversation, Message
from conversations.prompting import ReplyRequest, reply_request
from conversations.turns import Turn, reply_fail

logger = logging.getLogger(__name__)


class EarlyStart:
    """Starts a reply from the database thread, on the worker's event loop, as soon as its
    request is built; announces it once its announcement is rendered."""

    def __init__(self, conversation_id: int) -> None:
        self.conversation_id = conversation_id
        self.loop = asyncio.get_running_loop()
        self._announcement: asyncio.Future[str | None] = self.loop.create_future()
        self.started: concurrent.futures.Future[None] | None = None

    def start(self, turn: Turn, request: ReplyRequest) -> None:
        """In the database thread: ask Ollama now."""
        self.started = asyncio.run_coroutine_threadsafe(self._run(turn, request), self.loop)

    def announce(self, html: str | None) -> None:
        """In the database thread: the announcement is ready (None: sockets render it)."""
        self.loop.call_soon_threadsafe(self._announcement.set_result, html)

    async def _run(self, turn: Turn, request: ReplyRequest) -> None:
        generation = await _generation_start(self.conversation_id, turn, request)
        await _announce(self.conversation_id, turn, await self._announcement, generation)


@db
def turn_prepare(
    action: Any, conversation: Conversation, early: EarlyStart, **kwargs: Any
) -> tuple[Turn, ReplyRequest | None, str | None]:
    """Save the turn (``action``), build its request and start it (``early``), and render its
    announcement: one trip to the database thread. Raises what ``action`` raises (a refused
    turn). The request is None when it could not be built; nothing was started then."""
    turn: Turn = action(conversation=conversation, **kwargs)
    request: ReplyRequest | None = None
    try:
        # The turn's reply belongs to the conversation it locked, its model already loaded.
        request = reply_request(turn.reply.conversation, turn.reply)
    except Exception:
        logger.exception("Could not prepare reply %s; trying again", turn.reply.pk)
    if request is not None:
        early.start(turn, request)
    html = None
    try:
        html = _announcement_html(turn)
    finally:
        if request is not None:
            early.announce(html)  # whatever happened: a started reply must be announced
    return turn, request, html


async def turn_announce_and_start(
    conversation_id: int,
    turn: Turn,
    request: ReplyRequest | None = None,
    announcement_html: str | None = None,
) -> None:
    """Start the reply of a saved turn and announce it: for a turn started outside a socket
    (the first message, with images), or whose request could not be built the first time.

    Ollama is asked first; an announcement not rendered yet is rendered while the model works
    on its first token."""
    try:
        if request is None:
            request = await db(_reply_request)(conversation_id, turn.reply.pk)
    except Exception:
        logger.exception("Could not prepare reply %s", turn.reply.pk)
        await db(reply_fail)(turn.reply.pk, "The reply could not be prepared.")
        layer = get_channel_layer()
        await layer.group_send(stream_group(conversation_id), _announcement(turn, None))
        await layer.group_send(
            stream_group(conversation_id),
            {"type": "generation.finished", "message_id": turn.reply.pk},
        )
        return
    generation = await _generation_start(conversation_id, turn, request)
    if announcement_html is None:
        announcement_html = await db(_announcement_html)(turn)
    await _announce(conversation_id, turn, announcement_html, generation)


async def _generation_start(conversation_id: int, turn: Turn, request: ReplyRequest) -> Generation:
    # Listening before anyone hears of the reply: a stop or sync sent at once is not lost.
    generation = await generation_prepare(
        conversation_id=conversation_id, reply_id=turn.reply.pk, request=request
    )
    generation_launch(generation)
    return generation


async def _announce(
    conversation_id: int, turn: Turn, html: str | None, generation: Generation
) -> None:
    try:
        await get_channel_layer().group_send(
            stream_group(conversation_id), _announcement(turn, html)
        )
    finally:
        generation.announced()  # the generation may publish now, even if the send failed


def _announcement(turn: Turn, html: str | None) -> dict[str, Any]:
    announcement: dict[str, Any] = {
        "type": "turn.started",
        "reply_id": turn.reply.pk,
        "message_ids": turn.message_ids,
        "removed_ids": turn.removed_ids,
    }
    if html is not None:
        announcement["html"] = html  # rendered once for every socket
    return announcement


def _announcement_html(turn: Turn) -> str | None:
    """The start of the turn, rendered once for every socket; None if that failed (a socket
    then renders it itself)."""
    try:
        return frames.turn_started_frame(turn.messages, turn.removed_ids)
    except Exception:
        logger.exception("Could not render the start of reply %s", turn.reply.pk)
        return None


def _reply_request(conversation_id: int, reply_id: int) -> ReplyRequest:
    conversation = Conversation.objects.select_related("model").get(pk=conversation_id)
    reply = Message.objects.get(pk=reply_id)
    return reply_request(conversation, reply)
