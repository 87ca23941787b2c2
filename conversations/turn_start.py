"""From a turn to a running reply: ask Ollama, tell the conversation's sockets.

Everything between a user's send and the first token is here, and the path is kept short: the
turn is saved and its announcement rendered in one trip to the database thread, and Ollama is
asked from that trip as soon as the turn knows what to ask (under the turn's lock, before the
reply is written), so the model works on its first token while the turn is written and the
announcement renders. A turn that cannot be saved stops what was asked. The generation
publishes nothing before the announcement is out, so no page gets a delta before the reply it
belongs to. The start runs as a task of the worker: a socket that closes meanwhile stops
nothing half-way.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.db import DatabaseError

from conversations import frames
from conversations.db import db
from conversations.generation import Generation, generation_launch, generation_prepare
from conversations.groups import stream_group
from conversations.models import Conversation, Message
from conversations.ollama import get_client
from conversations.prompting import HistoryMessage, ReplyRequest, history_request, reply_request
from conversations.reply_reading import ReplyReading
from conversations.turns import Turn, reply_fail

logger = logging.getLogger(__name__)

# How long a turn waits, holding its lock, for its request to reach Ollama before it goes on
# writing: enough for a new connection, with TLS, on a local network.
REQUEST_WRITE_WAIT_SECONDS = 0.05
# How long a turn shown before it is written waits, holding its lock, for the asking page to
# be sent its start before it goes on writing.
PAGE_START_WAIT_SECONDS = 0.05
# At shutdown, how long the replies being started get to finish starting.
STARTS_SETTLE_SECONDS = 2.0
TURN_NOT_SAVED = "Your message could not be saved. Try again in a moment."
REPLY_NOT_PREPARED = "The reply could not be prepared."
REPLY_NOT_STARTED = "The reply could not be started. Press Regenerate to try again."


class AskingPage(Protocol):
    """The socket of the page that asked for a turn, as the turn's announcer shows it what it
    waits for: the turn's start, then the reply's first text (the consumer's own handlers of
    those events)."""

    async def turn_started(self, event: dict[str, Any]) -> None: ...

    async def generation_delta(self, event: dict[str, Any]) -> None: ...


class EarlyStart:
    """Asks Ollama from the database thread, as soon as the turn knows what to ask and before
    the reply is saved; starts the reply on the worker's event loop once it is saved, and
    announces it once its announcement is rendered. A turn that is not saved stops what was
    asked; a reply that cannot start is saved as failed, and announced so.

    ``page``, the page that asked, is shown the turn's start while it waits for it, by the
    task that announces the turn, as it announces it; and then the reply's first text, if
    that came after, by the task that publishes it. Through the conversation's group, each
    waited in that page's queue for its socket's task to wake (measured: 0.15 ms on an idle
    worker, 0.65 ms relaying 50 replies)."""

    def __init__(self, conversation_id: int, page: AskingPage | None = None) -> None:
        self.conversation_id = conversation_id
        self.loop = asyncio.get_running_loop()
        self.asked = False
        self._sent = threading.Event()
        self._turn: asyncio.Future[Turn | None] = self.loop.create_future()
        self._saved: asyncio.Future[bool] = self.loop.create_future()
        self._announcement: asyncio.Future[str | None] = self.loop.create_future()
        self._page = page
        # Whether the page that asked was shown the start by the announcer (False: it will
        # not be; it hears of the turn through the group, as every page does).
        self.started: asyncio.Future[bool] = self.loop.create_future()
        self._page_has_start = threading.Event()
        self.shown = False

    def ask(self, conversation: Conversation, history: list[HistoryMessage]) -> None:
        """In the database thread, under the turn's lock: build the request and ask Ollama
        now. A request that cannot be built is left to the start after the turn, which tries
        again; a database error fails the turn (its transaction may be unusable)."""
        try:
            request = history_request(conversation, history)
        except DatabaseError:
            raise
        except Exception:
            logger.exception("Could not prepare a reply in conversation %s", conversation.pk)
            return
        self.asked = True
        self.loop.call_soon_threadsafe(self._begin, request)
        # The event loop and this thread share one interpreter lock, and the loop sends the
        # request in several steps, each waiting for the lock while this thread writes the
        # turn (measured: the request went out only once the writes were done). Wait, without
        # the lock, until the request is written: a fraction of a millisecond; the model's
        # first token takes longer than the writes and the announcement that follow.
        self._sent.wait(REQUEST_WRITE_WAIT_SECONDS)

    def show(self, turn: Turn) -> None:
        """In the database thread, under the turn's lock, before the turn's rows are written:
        start the reply and announce it now. The writes and the commit then happen after the
        first token rather than before it.

        Waits, without the interpreter lock, until the asking page has been sent the start:
        the event loop publishing it and this thread inserting would each wait for the lock
        (measured: the start then went out no sooner than when it was rendered last)."""
        if not self.asked:  # nothing started: the turn is written first, as any other
            return
        self.shown = True
        # Rendered before the loop hears of the turn: what the loop does to start the reply
        # would otherwise share the interpreter lock with the rendering.
        html = _announcement_html(turn)
        self.loop.call_soon_threadsafe(
            _resolve_each, (self._turn, turn), (self._announcement, html)
        )
        self._page_has_start.wait(PAGE_START_WAIT_SECONDS)

    def _page_was_sent_start(self) -> None:
        """On the loop: the asking page has been sent the start (or will not be). The turn
        goes on writing after the loop's next turn: daphne's transport writes what it is given
        then, not at once, and would otherwise wait for the interpreter lock while the turn
        is written (measured: that cost most of what showing the turn first saves)."""
        self.loop.call_soon(self.loop.call_soon, self._page_has_start.set)

    def page_waits_no_more(self) -> None:
        """On the loop: the page that asked no longer waits for the start (it was shown it,
        or its handler went on without): from now on it hears of the turn through the
        group."""
        self._page = None
        _resolve(self.started, False)
        self._page_was_sent_start()

    async def _show_asking_page(self, announcement: dict[str, Any], generation: Generation) -> None:
        page, self._page = self._page, None
        if page is None:
            return
        try:
            await page.turn_started(announcement)
        except Exception:
            # The page gets the start through the group instead, as every other page does.
            logger.exception("Could not show the start of reply %s", announcement["reply_id"])
            _resolve(self.started, False)
            return
        _resolve(self.started, True)
        self._page_was_sent_start()
        if "delta" not in announcement:  # the first text is still to come: it comes the same way
            generation.first_text_to = page.generation_delta

    def saved(self, turn: Turn | None) -> None:
        """In the database thread: the turn is saved (None: it is not, and never will be)."""
        self.loop.call_soon_threadsafe(
            _resolve_each, (self._turn, turn), (self._saved, turn is not None)
        )

    def announce(self, html: str | None) -> None:
        """In the database thread: the announcement is ready (None: sockets render it)."""
        self.loop.call_soon_threadsafe(_resolve, self._announcement, html)

    def _begin(self, request: ReplyRequest) -> None:
        # On the loop, at its next turn: the reading's task sends the request at the one after.
        reading: ReplyReading | None = None
        try:
            reading = ReplyReading(get_client(), request, on_sent=self._sent.set)
        except Exception:
            logger.exception("Could not ask Ollama in conversation %s", self.conversation_id)
            self._sent.set()
        task = self.loop.create_task(self._run(request, reading), context=contextvars.Context())
        _starting.add(task)  # the loop keeps only a weak reference; nobody else awaits it
        task.add_done_callback(_started)

    async def _run(self, request: ReplyRequest, reading: ReplyReading | None) -> None:
        try:
            await self._start(request, reading)
        finally:
            _resolve(self.started, False)  # the asking page waits for nothing more

    async def _start(self, request: ReplyRequest, reading: ReplyReading | None) -> None:
        try:
            turn = await self._turn
        except BaseException:  # cancelled: the worker is stopping
            if reading is not None:
                reading.stop()
            raise
        if turn is None:  # not saved: nobody will ever hear of this reply
            if reading is not None:
                await reading.abandon()
            return
        if reading is None:  # asking failed: start it as a turn saved outside a socket
            _resolve(self.started, False)  # the asking page has nothing to wait for
            if not await self._saved:
                return
            await turn_announce_and_start(self.conversation_id, turn, await self._announcement)
            return
        generation = await _generation_start_or_fail(
            self.conversation_id, turn, request, reading, self._saved if self.shown else None
        )
        if generation is None:
            return
        await _announce(
            self.conversation_id, turn, self._announcement, generation, self._show_asking_page
        )
        if not self.shown:
            return
        try:
            saved = await self._saved
        except BaseException:  # the worker is stopping: let the reply save how it ended
            generation.row_written.set_result(True)
            raise
        if saved:
            generation.row_written.set_result(True)
        else:  # shown, then its rows could not be written
            await _retract(self.conversation_id, turn, generation)


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():  # a start cancelled at shutdown no longer waits
        future.set_result(value)


def _resolve_each(*results: tuple[asyncio.Future[Any], Any]) -> None:
    """Several futures at once: one call from the database thread, one wake of the loop."""
    for future, value in results:
        _resolve(future, value)


_starting: set[asyncio.Task[None]] = set()


def _started(task: asyncio.Task[None]) -> None:
    _starting.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("A reply could not be started", exc_info=error)


async def starts_interrupt() -> None:
    """At shutdown: let the replies being started finish starting (milliseconds), so that they
    are interrupted and saved like the others; stop those that do not in time."""
    if _starting:
        await asyncio.wait(list(_starting), timeout=STARTS_SETTLE_SECONDS)
    for task in list(_starting):
        task.cancel()
    await asyncio.gather(*_starting, return_exceptions=True)


@db
def turn_prepare(
    action: Any, conversation: Conversation, early: EarlyStart, **kwargs: Any
) -> tuple[Turn, str | None]:
    """Save the turn (``action``), asking Ollama (``early``) as soon as the turn knows what to
    ask, and render its announcement: one trip to the database thread. Raises what ``action``
    raises (a refused turn); what was asked for a turn that could not be saved is stopped."""
    try:
        turn: Turn = action(conversation=conversation, ask=early.ask, **kwargs)
    except BaseException:
        early.saved(None)
        raise
    early.saved(turn)
    if early.shown:  # announced already, before its rows were written
        return turn, None
    html = None
    try:
        html = _announcement_html(turn)
    finally:
        early.announce(html)  # whatever happened: a started reply must be announced
    return turn, html


async def turn_announce_and_start(
    conversation_id: int, turn: Turn, announcement_html: str | None = None
) -> None:
    """Start the reply of a saved turn and announce it: for a turn started outside a socket
    (the first message, with images), or whose request could not be built the first time.

    Ollama is asked first; an announcement not rendered yet is rendered while the model works
    on its first token."""
    try:
        request = await db(_reply_request)(conversation_id, turn.reply.pk)
    except Exception:
        logger.exception("Could not prepare reply %s", turn.reply.pk)
        await _start_failed(conversation_id, turn, REPLY_NOT_PREPARED)
        return
    generation = await _generation_start_or_fail(conversation_id, turn, request)
    if generation is None:
        return
    await _announce(
        conversation_id,
        turn,
        db(_announcement_html)(turn) if announcement_html is None else announcement_html,
        generation,
    )


async def _start_failed(conversation_id: int, turn: Turn, error: str) -> None:
    """The reply is saved as failed, with why, and the pages are told: the user's message is
    kept, and the conversation is not held up by a reply that will never stream."""
    await db(reply_fail)(turn.reply.pk, error)
    layer = get_channel_layer()
    try:
        await layer.group_send(stream_group(conversation_id), _announcement(turn, None))
        await layer.group_send(
            stream_group(conversation_id),
            {"type": "generation.finished", "message_id": turn.reply.pk},
        )
    except Exception:
        # The channel layer itself is down: a reload shows the reply as failed.
        logger.exception("Could not tell the pages that reply %s failed", turn.reply.pk)


async def _generation_start_or_fail(
    conversation_id: int,
    turn: Turn,
    request: ReplyRequest,
    reading: ReplyReading | None = None,
    saved: Awaitable[bool] | None = None,
) -> Generation | None:
    """The reply's generation, running; or None when it could not start (a channel layer
    down), the reply then saved as failed and announced so. ``saved``: the turn is still
    being written, and says whether it was."""
    try:
        # Listening before anyone hears of the reply: a stop or sync sent at once is not lost.
        generation = await generation_prepare(
            conversation_id=conversation_id,
            reply_id=turn.reply.pk,
            request=request,
            reading=reading,
            row_written=saved is None,
        )
    except Exception:
        logger.exception("Reply %s could not be started", turn.reply.pk)
        if reading is not None:
            reading.stop()
        if saved is None or await saved:  # no row, no reply to fail
            await _start_failed(conversation_id, turn, REPLY_NOT_STARTED)
        return None
    generation_launch(generation)
    return generation


async def _announce(
    conversation_id: int,
    turn: Turn,
    html: str | None | Awaitable[str | None],
    generation: Generation,
    show_asker: Callable[[dict[str, Any], Generation], Awaitable[None]] | None = None,
) -> None:
    """Announce the turn (its HTML, or what renders it), and let the generation publish: even
    if the announcement failed, or this was cancelled (a worker stopping) while it rendered,
    or the generation would wait for it for ever. The page that asked is shown it first
    (``show_asker``), at once, not through its socket's queue."""
    try:
        if not isinstance(html, str | None):
            html = await html
        announcement = _announcement(turn, html)
        try:
            if (delta := generation.first_delta()) is not None:
                announcement["delta"] = delta
        except Exception:
            # The start goes out without it: pages find the gap and ask for the text so far.
            logger.exception("Could not render the first text of reply %s", turn.reply.pk)
        if show_asker is not None:
            await show_asker(announcement, generation)
        await get_channel_layer().group_send(stream_group(conversation_id), announcement)
    finally:
        generation.announced()


async def _retract(conversation_id: int, turn: Turn, generation: Generation) -> None:
    """A turn was shown before its rows were written, and writing them failed: stop its reply
    (there is no row to save it in), then tell the pages, which show the conversation as the
    database has it again."""
    generation.discard()
    if generation.task is not None:
        await asyncio.wait([generation.task])
    try:
        await get_channel_layer().group_send(
            stream_group(conversation_id),
            {"type": "turn.retracted", "reply_id": turn.reply.pk, "error": TURN_NOT_SAVED},
        )
    except Exception:
        # The channel layer itself is down: a reload shows the conversation as it is.
        logger.exception("Could not tell the pages that reply %s was not saved", turn.reply.pk)


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
