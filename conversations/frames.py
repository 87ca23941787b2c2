"""The HTML fragments the conversation socket sends, rendered from templates/conversations/
frames.html. Functions that read the database are synchronous; the consumer wraps them."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import prefetch_related_objects
from django.dispatch import receiver
from django.template.loader import get_template, render_to_string
from django.test.signals import setting_changed
from django.utils.safestring import mark_safe

from conversations.models import Conversation, Message
from conversations.selectors import conversation_state

if TYPE_CHECKING:
    from django.template.backends.base import _EngineTemplate

FRAMES = "conversations/frames.html"


def render_frame(name: str, context: dict[str, Any]) -> str:
    if settings.DEBUG:  # a template edited while the development server runs shows at once
        return render_to_string(f"{FRAMES}#{name}", context)
    return _frame_template(name).render(context)


@cache
def _frame_template(name: str) -> _EngineTemplate:
    # Looked up once: a reply renders a delta for every frame, and the lookup cost a third of
    # the rendering of one.
    return get_template(f"{FRAMES}#{name}")


@receiver(setting_changed)
def _forget_frame_templates(*, setting: str, **kwargs: Any) -> None:
    if setting == "TEMPLATES":  # as Django's own engines do, for tests that change them
        _frame_template.cache_clear()
        _composer_reset.cache_clear()


def error_frame(text: str) -> str:
    return render_frame("error", {"chat_error": text})


def composer_reset_frame() -> str:
    if settings.DEBUG:
        return render_frame("composer_reset", {})
    return _composer_reset()


@cache
def _composer_reset() -> str:
    # The same for every send: rendered once, not on the way to every first token.
    return render_frame("composer_reset", {})


def delta_frame(event: dict[str, Any]) -> str:
    context = dict(event)
    # A string: an int would go through number formatting, a fifth of the frame's cost.
    context["message_id"] = str(event["message_id"])
    # The generation rendered these with render_markdown (sanitized) before publishing them.
    context["new_blocks"] = mark_safe(event.get("new_blocks", ""))  # noqa: S308
    context["tail"] = mark_safe(event.get("tail", ""))  # noqa: S308
    if "thinking_all" in event:
        # The thinking block appears with its first text, and closes when the answer starts.
        context["thinking_started"] = True
        context["message"] = Message(
            id=event["message_id"],
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            thinking=event["thinking_all"],
            content="…" if event.get("answering") else "",
        )
    return render_frame("delta", context)


def snapshot_frame(conversation: Conversation) -> str:
    """Everything below the header as the database has it now: what a socket sends when it
    (re)connects, because the page may have missed frames before that."""
    return render_frame("snapshot", conversation_state(conversation))


def turn_started_frame(new_messages: Sequence[Message], removed_ids: list[int]) -> str:
    """The start of a turn, from its messages as just saved (the turn's own objects, in order):
    on the way to the first token, reading them back cost a query and a quarter of the trip."""
    # Only a user's message shows images; a reply starts with none.
    prefetch_related_objects([m for m in new_messages if m.role == Message.Role.USER], "images")
    streaming = [m.pk for m in new_messages if m.role == Message.Role.ASSISTANT]
    context = {
        "new_messages": new_messages,
        "removed_ids": removed_ids,
        # The Stop button names the reply it stops.
        "streaming_reply_id": streaming[-1] if streaming else None,
    }
    return render_frame("turn_started", context)


def turn_started_frame_from_db(
    conversation_id: int, message_ids: list[int], removed_ids: list[int]
) -> str:
    """The start of a turn for a socket that was not sent it rendered."""
    new_messages = Message.objects.filter(
        conversation_id=conversation_id, id__in=message_ids
    ).order_by("created_at", "id")
    return turn_started_frame(list(new_messages), removed_ids)


def state_frame(message_id: int, content: str, thinking: str, committed: int) -> str | None:
    """The reply as it is now, from the generation's memory (fresher than the checkpoint), split
    into finished blocks and open tail where the generation splits it, so later deltas fit."""
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        return None
    if message.is_streaming:
        message.content, message.thinking = content, thinking
        message.stream_committed = committed  # type: ignore[attr-defined]
    return render_frame("message", {"message": message, "busy": message.is_streaming})


def finished_frame(message_id: int) -> str | None:
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        return None
    last_user = (
        Message.objects.filter(
            conversation_id=message.conversation_id, role=Message.Role.USER, id__lt=message.pk
        )
        .order_by("-created_at", "-id")
        .first()
    )
    return render_frame(
        "finished",
        {
            "message": message,
            "last_user": last_user,
            "last_user_id": last_user.pk if last_user else None,
            "last_reply_id": message.pk,
            "chat_error": message.error if message.is_failed else "",
        },
    )


def renamed_frame(conversation_id: int) -> str | None:
    conversation = (
        Conversation.objects.filter(pk=conversation_id)
        .only("id", "title", "pinned", "archived")
        .first()
    )
    if conversation is None:
        return None
    return render_frame("renamed", {"conversation": conversation})
