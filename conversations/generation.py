"""A reply being generated: read from Ollama, published to every socket, saved to the database.

A generation is an asyncio task of the worker that started it, not of any socket: closing a tab
does not stop it. It publishes batched deltas to the conversation's group, answers sync requests
from sockets that join mid-reply with its state so far, obeys stop requests from any socket (on
any worker, through the channel layer), checkpoints the reply about once a second with a lease
that says its writer is alive, and writes the outcome once at the end.

Every frame is rendered here, once, whoever watches: a delta carries its HTML fragment, and so
does the end of the reply. Sockets only forward them.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer
from django.db.models import Q

from conversations import frames
from conversations.checkpoints import (
    CHECKPOINT_SECONDS,
    Checkpoint,
    checkpoints_join,
    checkpoints_leave,
    lease_renewal_seconds,
)
from conversations.compiled import CompiledUpdate
from conversations.db import db
from conversations.groups import control_group, stream_group
from conversations.models import Message
from conversations.ollama import OllamaClient, OllamaError, get_client
from conversations.prompting import ReplyRequest
from conversations.reply_reading import ReplyReading
from conversations.streaming_markdown import StreamingMarkdown
from conversations.titles import title_after_first_reply

logger = logging.getLogger(__name__)

# Chunks arriving within this window go out as one frame; the first chunk goes at once.
BATCH_SECONDS = 0.03
# How long a reply waits for its stop-and-sync listener to return when asked (and again after
# cancelling it) before it sends its end anyway.
LISTENER_EXIT_SECONDS = 2.0
__all__ = ["BATCH_SECONDS", "CHECKPOINT_SECONDS", "Generation"]


class Generation:
    def __init__(
        self,
        *,
        conversation_id: int,
        reply_id: int,
        request: ReplyRequest,
        reading: ReplyReading,
        client: OllamaClient,
        layer: BaseChannelLayer,
    ) -> None:
        self.conversation_id = conversation_id
        self.reply_id = reply_id
        self.request = request
        self.client = client
        self.layer = layer
        # Everything received so far (the reading), and the part of it already published (seq
        # deltas so far).
        self.reading = reading
        self.published_content = ""
        self.published_thinking = ""
        self.seq = 0
        self.markdown = StreamingMarkdown()
        self.stop_requested = False
        self.row_lost = False
        # Whether its row is written (False: its turn was shown but never saved, and it
        # writes and publishes nothing more). A turn shown before it is written starts its reply
        # first: until the row is there, nothing is sent to the database under its id (on
        # SQLite a turn that fails gives its ids to the next one).
        self.row_written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        # Nothing is published before the turn is announced: a delta must not reach a page
        # before the reply it belongs to.
        self._announced = asyncio.Event()
        self._closing = False
        self._control = ""
        # How many pieces of each the last checkpoint wrote, and when; what the pending one
        # will have written.
        self._saved = self._due = (0, 0)
        self._saved_at = time.monotonic()
        # Its running task, once launched.
        self.task: asyncio.Task[None] | None = None
        # Shows the reply's first text to the page that asked for it, at once, as that page
        # was shown the turn's start (turn_start.py); every other delta, and every other page,
        # goes through the conversation's group.
        self.first_text_to: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    # --- the life of a reply -----------------------------------------------------------------

    async def subscribe(self) -> None:
        """Listen for stop and sync requests. Done before the turn is announced, so a socket
        that hears of the reply can already reach its generation."""
        self._control = await self.layer.new_channel()
        await self.layer.group_add(control_group(self.conversation_id), self._control)

    def announced(self) -> None:
        """The turn has been announced to the conversation's sockets: publish from now on."""
        self._announced.set()

    async def run(self) -> None:
        control = self._control
        listener = asyncio.create_task(self._listen(control))
        checkpoints_join(self)
        publisher = asyncio.create_task(self._publish())
        status, error = Message.Status.COMPLETE, ""
        shutting_down = False
        try:
            await self.reading.task
        except asyncio.CancelledError:
            if self.stop_requested or self.row_lost:
                status = Message.Status.STOPPED
            else:  # this task itself was cancelled: the worker is shutting down
                shutting_down = True
                self.reading.stop()
                status, error = Message.Status.INTERRUPTED, _SHUTDOWN_MESSAGE
        except OllamaError as exc:
            status, error = Message.Status.ERROR, str(exc)
            logger.info("Reply %s failed: %s (%s)", self.reply_id, exc, exc.detail)
        except Exception:
            logger.exception("Reply %s failed unexpectedly", self.reply_id)
            status, error = Message.Status.ERROR, "Something went wrong on the server."
        finally:
            checkpoints_leave(self)
            await self._stop_listening(listener)
            self._closing = True
            self.reading.arrived.set()
            with suppress(asyncio.CancelledError):
                await publisher
            await self._quietly(
                self.layer.group_discard(control_group(self.conversation_id), control)
            )
        if not await self.row_written:
            return
        finished: dict[str, Any] = {"type": "generation.finished", "message_id": self.reply_id}
        try:
            saved, finished["html"] = await self._save_outcome(status, error)
        finally:
            # Even when saving failed, sockets re-read the reply instead of waiting for ever.
            await self._announced.wait()
            await self._quietly(self.layer.group_send(stream_group(self.conversation_id), finished))
        if saved and status == Message.Status.COMPLETE and self.request.answers_first_message:
            # The user never waits for the title: it arrives later, pushed to the sidebar. Only
            # a first reply can earn one; the others skip asking the database.
            _spawn(
                title_after_first_reply(
                    conversation_id=self.conversation_id, client=self.client, layer=self.layer
                ),
                name=f"title-{self.conversation_id}",
            )
        if shutting_down:
            raise asyncio.CancelledError

    async def _quietly(self, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception:
            logger.warning("Reply %s: channel layer call failed", self.reply_id, exc_info=True)

    def stop(self) -> None:
        self.stop_requested = True
        self.reading.stop()

    def discard(self) -> None:
        """Stop a reply whose turn was shown before it was written, and then not written: it
        has no row, and on SQLite its id goes to the next turn, so nothing more is saved or
        published under that id."""
        if not self.row_written.done():
            self.row_written.set_result(False)
        self.stop()

    @property
    def discarded(self) -> bool:
        return self.row_written.done() and not self.row_written.result()

    # --- publishing --------------------------------------------------------------------------

    async def _publish(self) -> None:
        await self._announced.wait()
        while True:
            await self.reading.arrived.wait()
            self.reading.arrived.clear()
            await self._flush()
            if self._closing:
                return
            await asyncio.sleep(BATCH_SECONDS)

    async def _flush(self) -> None:
        if self.discarded:
            return
        event = self._next_delta()
        if event is None:
            return
        if (page := self.first_text_to) is not None:
            self.first_text_to = None
            try:
                await page(event)
            except Exception:  # the page gets it through the group, as the others do
                logger.exception("Could not show the first text of reply %s", self.reply_id)
        # A lost delta costs viewers some text until the final frame, never the saved reply.
        await self._quietly(self.layer.group_send(stream_group(self.conversation_id), event))

    def first_delta(self) -> dict[str, Any] | None:
        """The reply's first delta, if its text has arrived before the turn is announced: it
        then goes out with the announcement, and not as an event of its own, which took every
        socket another wake of its receive loop (about a third of a millisecond at one reply,
        timed in the worker). Only before ``announced``: the publisher starts after it."""
        if self._announced.is_set() or self.seq:
            return None
        return self._next_delta()

    def _next_delta(self) -> dict[str, Any] | None:
        """What arrived since the last delta, as the next delta event (rendered); None if
        nothing did."""
        content = "".join(self.reading.content)
        thinking = "".join(self.reading.thinking)
        content_delta = content[len(self.published_content) :]
        thinking_delta = thinking[len(self.published_thinking) :]
        if not content_delta and not thinking_delta:
            return None
        self.seq += 1
        delta: dict[str, Any] = {
            "message_id": self.reply_id,
            "thinking": thinking_delta,
            "first": self.seq == 1,
            "content_changed": bool(content_delta),
        }
        if content_delta:
            # Only the open block is rendered again; finished ones went out once already.
            step = self.markdown.advance(content)
            delta.update(new_blocks=step.new_blocks, tail=step.tail)
        thinking_started = bool(thinking_delta) and not self.published_thinking
        answer_started = bool(content_delta) and not self.published_content
        if thinking and (thinking_started or answer_started):
            # The thinking block appears whole, open; it closes when the answer starts.
            delta.update(thinking_all=thinking, answering=bool(content))
        self.published_content, self.published_thinking = content, thinking
        return {
            "type": "generation.delta",
            "message_id": self.reply_id,
            "seq": self.seq,
            "html": frames.delta_frame(delta),
        }

    async def _stop_listening(self, listener: asyncio.Task[None]) -> None:
        """Ask the listener to return rather than cancel it. Cancelling a receive during
        channels_redis's blocking pop can lose a message that Redis pops for the closing
        connection, and that pop takes messages for every socket of this worker: a page
        missed a reply's last frame that way. Cancelled only if it does not return in time;
        and a layer that swallows the cancel (redis-py 8.1 did) does not hold the reply up."""
        stop = {"type": "generation.listener.stop", "message_id": self.reply_id}
        await self._quietly(self.layer.send(self._control, stop))
        ended, running = await asyncio.wait([listener], timeout=LISTENER_EXIT_SECONDS)
        if running:
            listener.cancel()
            ended, running = await asyncio.wait([listener], timeout=LISTENER_EXIT_SECONDS)
        if running:
            logger.warning("Reply %s: its listener did not stop when cancelled", self.reply_id)
        for task in ended:
            if not task.cancelled() and task.exception() is not None:
                logger.warning(
                    "Reply %s: its listener ended with an error",
                    self.reply_id,
                    exc_info=task.exception(),
                )

    async def _listen(self, control: str) -> None:
        while True:
            try:
                message: dict[str, Any] = await self.layer.receive(control)
            except Exception:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # being cancelled: a layer may turn that into another error
                # The channel layer (Redis) hiccuped: keep listening, or Stop would be lost.
                logger.warning("Reply %s: receive failed", self.reply_id, exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message.get("message_id") != self.reply_id:
                continue  # meant for another reply of this conversation (a late frame)
            kind = message.get("type")
            if kind == "generation.listener.stop":
                return
            if kind == "generation.stop":
                self.stop()
            elif kind == "generation.sync":
                await self._quietly(
                    self.layer.send(
                        message["reply_to"],
                        {
                            "type": "generation.state",
                            "message_id": self.reply_id,
                            "seq": self.seq,
                            "content": self.published_content,
                            "thinking": self.published_thinking,
                            "committed": self.markdown.committed,
                        },
                    )
                )

    # --- saving ------------------------------------------------------------------------------

    def checkpoint_due(self, now: float) -> Checkpoint | None:
        """The text so far, once a second at most; or, while nothing arrives (a model loading),
        just often enough to renew the lease."""
        if not (self.row_written.done() and self.row_written.result()):
            return None
        waited = now - self._saved_at
        self._due = (len(self.reading.content), len(self.reading.thinking))
        if waited < CHECKPOINT_SECONDS:
            return None
        if self._due == self._saved and waited < lease_renewal_seconds():
            return None
        return Checkpoint(
            self.reply_id, "".join(self.reading.content), "".join(self.reading.thinking)
        )

    def checkpoint_saved(self, checkpoint: Checkpoint, now: float) -> None:
        self._saved, self._saved_at = self._due, now

    def checkpoint_lost(self) -> None:
        # Deleted with its conversation, or swept: nobody needs the rest of it.
        self.row_lost = True
        self.stop()

    async def _save_outcome(self, status: str, error: str) -> tuple[bool, str | None]:
        """Whether the outcome was saved, and the reply's final frame if it was."""
        final = self.reading.final
        fields: dict[str, Any] = {
            "content": "".join(self.reading.content),
            "thinking": "".join(self.reading.thinking),
            "status": status,
            "error": error,
            "lease_expires_at": None,
            "history_dropped": self.request.history_dropped,
        }
        if final is not None:
            metrics = final.metrics
            fields.update(
                done_reason=final.done_reason or "",
                prompt_eval_count=metrics.prompt_eval_count,
                eval_count=metrics.eval_count,
                total_duration=metrics.total_duration,
                load_duration=metrics.load_duration,
                prompt_eval_duration=metrics.prompt_eval_duration,
                eval_duration=metrics.eval_duration,
            )
        for attempt in range(3):
            try:
                return await _finish(self.reply_id, fields)
            except Exception:
                logger.warning(
                    "Reply %s: saving failed (try %s)", self.reply_id, attempt + 1, exc_info=True
                )
                await asyncio.sleep(1 + attempt)
        logger.error("Reply %s could not be saved; the lease sweep will mark it", self.reply_id)
        return False, None


_SHUTDOWN_MESSAGE = (
    "The server was restarted while this reply was being written; the text so far is kept. "
    "Press Regenerate to try again."
)


@db
def _finish(reply_id: int, fields: dict[str, Any]) -> tuple[bool, str | None]:
    """Save the outcome and render the reply's final frame, in one trip to the database
    thread."""
    if not _OUTCOME.run(reply_id, fields):
        return False, None
    return True, frames.finished_frame(reply_id)


# A reply's outcome, once: only a reply still streaming (not one swept as lost meanwhile).
_OUTCOME = CompiledUpdate(Message, where=Q(status=Message.Status.STREAMING))


# --- starting and stopping ---------------------------------------------------------------------


async def generation_prepare(
    *,
    conversation_id: int,
    reply_id: int,
    request: ReplyRequest,
    reading: ReplyReading | None = None,
    row_written: bool = True,
) -> Generation:
    """A generation listening for stop and sync requests, not yet running: ``generation_launch``
    it, announce the turn, then tell it so (``announced``). It takes over ``reading``, the
    request already asked of Ollama, or asks it now. Without ``row_written``, its reply's row
    is still being written: resolve ``row_written`` once it is (or ``discard`` it)."""
    try:
        layer: BaseChannelLayer | None = get_channel_layer()
        if layer is None:
            raise RuntimeError("CHANNEL_LAYERS is not configured")
        client = get_client()
        reading = reading or ReplyReading(client, request)
        generation = Generation(
            conversation_id=conversation_id,
            reply_id=reply_id,
            request=request,
            reading=reading,
            client=client,
            layer=layer,
        )
        if row_written:
            generation.row_written.set_result(True)
        await generation.subscribe()
    except BaseException:
        if reading is not None:
            reading.stop()  # nobody could stop it
        raise
    return generation


def generation_launch(generation: Generation) -> None:
    """Run on this worker's event loop; the task outlives whoever launched it. It reads what
    Ollama was asked, and publishes once ``announced``."""
    generation.task = _spawn(generation.run(), name=f"reply-{generation.reply_id}")


_tasks: set[asyncio.Task[None]] = set()


def _spawn(work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
    """A task that belongs to the worker, not to whoever started it. It runs in a fresh
    context: it must not inherit a request's asgiref executor, which is gone once that request
    ends while the work goes on. The worker keeps a reference until it is done."""
    task = asyncio.create_task(work, name=name, context=contextvars.Context())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


async def generations_interrupt() -> None:
    """At shutdown: end every reply of this worker, saving it as interrupted."""
    # A reply that finishes meanwhile may start a title task: repeat until none is left.
    while _tasks:
        tasks = list(_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
