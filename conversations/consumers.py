"""The conversation socket: one per open conversation page.

It parses and validates frames, hands sends to the generation code, and relays what the
conversation's group publishes as HTML fragments. It owns no generation: closing it stops
nothing. The fragments of a reply come rendered (once, whoever watches); a socket renders only
what is its own: its snapshot, its errors, a reply's state when it joins mid-reply.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import InMemoryChannelLayer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.http import Http404

from conversations import frames
from conversations.db import db
from conversations.forms import EditForm, SendForm, first_error
from conversations.groups import control_group, stream_group
from conversations.models import Conversation, Message
from conversations.ownership import aget_conversation_for_user
from conversations.turn_start import (
    TURN_NOT_SAVED,
    EarlyStart,
    turn_announce_and_start,
    turn_prepare,
)
from conversations.turns import (
    Turn,
    TurnRefused,
    lost_replies_sweep,
    refusal_text,
    turn_edit,
    turn_regenerate,
    turn_send,
)

logger = logging.getLogger(__name__)

# A frame carries one message and a few form fields; anything much larger is refused unread.
FRAME_OVERHEAD = 4096
# How long to wait for a running reply's state before asking again.
SYNC_RETRY_SECONDS = 2.0


class ConversationConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    conversation: Conversation
    # For each streaming reply this socket shows: the last delta sequence number applied, or
    # None while waiting for the generation's state (deltas are held until it arrives).
    _shown: dict[int, int | None]
    _held: dict[int, list[dict[str, Any]]]
    _asked_at: dict[int, float]
    # When each streaming reply this socket shows last sent something (the event loop's time).
    _heard_at: dict[int, float]

    async def connect(self) -> None:
        self._shown, self._held, self._asked_at, self._heard_at = {}, {}, {}, {}
        self._watchdog: asyncio.Task[None] | None = None
        # Turns this socket showed before they were written, until written.
        self._writing: set[asyncio.Task[None]] = set()
        user = self.scope.get("user")
        conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        try:
            self.conversation = await aget_conversation_for_user(user, conversation_id)
        except Http404:
            await self.close()  # refused before accept: the handshake fails with 403
            return
        # Join first, then read the database: whatever happens after this is heard. The page
        # (or, on a reconnect, the page as it was) may have missed frames before it: replace
        # its messages with the database's, then ask running replies for their text so far.
        await self.channel_layer.group_add(stream_group(conversation_id), self.channel_name)
        await self.accept()
        await self._send_snapshot()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """As channels dispatches, except that only the connect keeps its trip to the database
        thread to close stale connections before the handler (the connect reads through the
        async ORM, which does not close them). A reply sends events many times a second, per
        socket, and they need no database; a frame from the browser is either a stop, which
        needs none, or a turn, whose one trip runs through ``db``, which closes stale
        connections itself. Without this, every frame of every reply queued behind the
        database work of the whole worker, and a send took two trips, not one."""
        if message["type"] == "websocket.connect":
            await super().dispatch(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        for writing in self._writing:
            writing.cancel()  # the turn goes on being written; nobody is left to tell
        if hasattr(self, "conversation"):
            await self.channel_layer.group_discard(
                stream_group(self.conversation.pk), self.channel_name
            )

    # --- frames from the browser ---------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.send(frames.error_frame("This connection only takes text frames."))
            return
        if len(text_data) > settings.CHAT_MAX_MESSAGE_CHARS + FRAME_OVERHEAD:
            await self.send(frames.error_frame("That message is too long to send."))
            return
        try:
            data = json.loads(text_data)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            await self.send(frames.error_frame("The message could not be read. Reload the page."))
            return
        data.pop("HEADERS", None)
        action = data.get("action")
        handler = {
            "send": self._send_message,
            "edit": self._edit_message,
            "regenerate": self._regenerate,
            "stop": self._stop,
        }.get(action if isinstance(action, str) else "")
        if handler is None:
            await self.send(frames.error_frame("Unknown action. Reload the page."))
            return
        await handler(data)

    async def _send_message(self, data: dict[str, Any]) -> None:
        form = SendForm(data)
        if not form.is_valid():
            await self.send(frames.error_frame(first_error(form)))
            return
        content = form.cleaned_data["content"]
        # Shown before it is written only where every page is this worker's: a page on another
        # worker that joined between the start and the commit would get neither.
        shown_first = isinstance(self.channel_layer, InMemoryChannelLayer)
        await self._start_turn(
            turn_send, content=content, shown_first=shown_first, clears_composer=True
        )

    async def _edit_message(self, data: dict[str, Any]) -> None:
        form = EditForm(data)
        if not form.is_valid():
            await self.send(frames.error_frame(first_error(form)))
            return
        await self._start_turn(turn_edit, content=form.cleaned_data["content"])

    async def _regenerate(self, data: dict[str, Any]) -> None:
        await self._start_turn(turn_regenerate)

    async def _stop(self, data: dict[str, Any]) -> None:
        # Whichever worker runs the reply hears this through the channel layer. The reply's id
        # makes a late Stop (replayed after a reconnect) harmless to a newer reply.
        reply_id = data.get("message_id")
        if not isinstance(reply_id, str | int) or not str(reply_id).isdigit():
            await self.send(frames.error_frame("Nothing to stop."))
            return
        await self.channel_layer.group_send(
            control_group(self.conversation.pk),
            {"type": "generation.stop", "message_id": int(reply_id)},
        )

    async def _start_turn(
        self,
        action: Any,
        *,
        shown_first: bool = False,
        clears_composer: bool = False,
        **kwargs: Any,
    ) -> None:
        """``shown_first``: the action can show the turn before writing it (a text send);
        ``clears_composer``: once the turn is saved, the composer is emptied."""
        # This socket handles its messages one at a time, and the start would otherwise wait
        # in its queue until this handler returns: the turn's announcer shows it this page.
        early = EarlyStart(self.conversation.pk, page=self)
        if shown_first:
            kwargs["show"] = early.show
        trip = asyncio.ensure_future(turn_prepare(action, self.conversation, early, **kwargs))
        shown = False
        try:
            # A turn shown before it is written goes on writing once this page has its start.
            waited: list[asyncio.Future[Any]] = [trip, early.started]
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            shown = early.started.done() and early.started.result()
        except asyncio.CancelledError:
            trip.cancel()  # as when the trip itself is awaited: the socket is closing
            raise
        finally:
            early.page_waits_no_more()
        if shown and not trip.done():
            # Its reply's first text may be queued behind this handler: relay it meanwhile.
            task = asyncio.create_task(self._turn_written(trip, early, clears_composer))
            self._writing.add(task)
            task.add_done_callback(self._written)
            return
        await self._turn_written(trip, early, clears_composer)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("A turn in conversation %s failed", self.conversation.pk, exc_info=error)

    async def _turn_written(
        self,
        trip: asyncio.Future[tuple[Turn, str | None]],
        early: EarlyStart,
        clears_composer: bool,
    ) -> None:
        try:
            turn, html = await trip
        except (TurnRefused, ValidationError) as refused:
            await self.send(frames.error_frame(refusal_text(refused)))
            return
        except DatabaseError:
            # Nothing of the turn was saved (and what was asked of Ollama is stopped; a turn
            # already shown is taken back from every page): the composer keeps the text.
            logger.exception("Could not save a turn in conversation %s", self.conversation.pk)
            await self.send(frames.error_frame(TURN_NOT_SAVED))
            return
        # Asked already, the reply starts and is announced by itself: this socket goes on to
        # relay it (a handler that waited would hold the announcement and the first token up).
        if not early.asked:  # the request could not be built: try again, or fail the reply
            await turn_announce_and_start(self.conversation.pk, turn, html)
        if clears_composer:
            await self.send(frames.composer_reset_frame())

    # --- events from the conversation's group --------------------------------------------------

    async def turn_started(self, event: dict[str, Any]) -> None:
        reply_id = event["reply_id"]
        delta = event.get("delta")  # the reply's first text, if it came before the announcement
        if reply_id in self._shown:  # this socket's snapshot had the turn, or it was shown it
            if delta is not None:
                await self.generation_delta(delta)
            return
        self._shown[reply_id] = 0  # a new reply: nothing shown, nothing missed
        self._heard_from(reply_id)
        html = event.get("html") or await db(frames.turn_started_frame_from_db)(
            self.conversation.pk, event["message_ids"], event["removed_ids"]
        )
        if delta is not None and delta["seq"] == 1:
            # One frame, not two: one message for the page to swap, one write to its socket.
            self._shown[reply_id] = delta["seq"]
            html += delta["html"]
            delta = None
        await self.send(html)
        self._ensure_watchdog()
        if delta is not None:  # not the reply's first: in order, or the state is asked for
            await self.generation_delta(delta)

    async def turn_retracted(self, event: dict[str, Any]) -> None:
        """A turn shown before it was written could not be written: show the conversation as
        the database has it (without the turn), and why."""
        reply_id = event["reply_id"]
        for state in (self._shown, self._held, self._asked_at, self._heard_at):
            state.pop(reply_id, None)
        await self._send_snapshot()  # as on a reconnect: a turn may have started meanwhile
        await self.send(frames.error_frame(event["error"]))

    async def generation_delta(self, event: dict[str, Any]) -> None:
        reply_id = event["message_id"]
        if reply_id not in self._shown:
            await self._request_state(reply_id)
        self._heard_from(reply_id)
        shown = self._shown[reply_id]
        if shown is None:
            self._held.setdefault(reply_id, []).append(event)
        elif event["seq"] == shown + 1:
            self._shown[reply_id] = event["seq"]
            await self.send(event["html"])
        elif event["seq"] > shown + 1:
            # A delta went missing (a full channel, a layer hiccup): start again from the state.
            self._held[reply_id] = [event]
            await self._request_state(reply_id)

    async def generation_state(self, event: dict[str, Any]) -> None:
        reply_id = event["message_id"]
        if self._shown.get(reply_id, 0) is not None:
            return  # not asked for, or already answered
        html = await db(frames.state_frame)(
            reply_id, event["content"], event["thinking"], event["committed"]
        )
        self._shown[reply_id] = event["seq"]
        self._heard_from(reply_id)
        if html:
            await self.send(html)
        for held in self._held.pop(reply_id, []):
            await self.generation_delta(held)

    async def generation_finished(self, event: dict[str, Any]) -> None:
        reply_id = event["message_id"]
        self._shown.pop(reply_id, None)
        self._held.pop(reply_id, None)
        self._heard_at.pop(reply_id, None)
        # Without HTML when the generation could not save the reply, or this socket found it
        # lost: the database says how it ended.
        html = event.get("html") or await db(frames.finished_frame)(reply_id)
        if html:
            await self.send(html)

    async def conversation_renamed(self, event: dict[str, Any]) -> None:
        html = await db(frames.renamed_frame)(event["conversation_id"])
        if html:
            await self.send(html)

    # --- a reply already streaming when this socket joined --------------------------------

    async def _send_snapshot(self) -> None:
        """The page's messages replaced with the database's; running replies asked for their
        text so far."""
        snapshot, streaming = await _snapshot(self.conversation)
        await self.send(snapshot)
        for reply_id in streaming:
            await self._request_state(reply_id)

    async def _request_state(self, reply_id: int) -> None:
        self._shown[reply_id] = None
        self._asked_at[reply_id] = asyncio.get_running_loop().time()
        await self.channel_layer.group_send(
            control_group(self.conversation.pk),
            {"type": "generation.sync", "message_id": reply_id, "reply_to": self.channel_name},
        )
        self._ensure_watchdog()

    def _heard_from(self, reply_id: int) -> None:
        self._heard_at[reply_id] = asyncio.get_running_loop().time()

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch_for_lost_replies())

    async def _watch_for_lost_replies(self) -> None:
        """A reply whose worker died sends nothing more. Once its lease runs out, show it as
        interrupted instead of leaving the page waiting for ever. A reply heard from within
        the last half lease has a live worker: only silent ones cost a trip to the database
        (with 100 pages open, that was 10 trips a second for replies plainly alive)."""
        half_lease = settings.CHAT_STREAM_LEASE_SECONDS / 2
        interval = min(SYNC_RETRY_SECONDS, half_lease)
        last_check = asyncio.get_running_loop().time()
        while self._shown:
            await asyncio.sleep(interval)
            now = asyncio.get_running_loop().time()
            for reply_id, shown in list(self._shown.items()):
                # No state yet: the request may have gone nowhere; ask again.
                if shown is None and now - self._asked_at.get(reply_id, now) >= SYNC_RETRY_SECONDS:
                    await self._request_state(reply_id)
            if now - last_check < half_lease:
                continue
            last_check = now
            for reply_id in list(self._shown):
                heard_at = self._heard_at.get(reply_id)
                if heard_at is not None and now - heard_at < half_lease:
                    continue
                status = await _status_after_sweep(self.conversation.pk, reply_id)
                if status != Message.Status.STREAMING and reply_id in self._shown:
                    await self.generation_finished({"message_id": reply_id})


@db
def _snapshot(conversation: Conversation) -> tuple[str, list[int]]:
    lost_replies_sweep(conversation_id=conversation.pk)
    streaming = list(
        Message.objects.filter(
            conversation_id=conversation.pk, status=Message.Status.STREAMING
        ).values_list("id", flat=True)
    )
    return frames.snapshot_frame(conversation), streaming


@db
def _status_after_sweep(conversation_id: int, reply_id: int) -> str | None:
    lost_replies_sweep(conversation_id=conversation_id)
    return Message.objects.filter(pk=reply_id).values_list("status", flat=True).first()
