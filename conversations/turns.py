"""The database side of a turn: the user's message and the reply that will stream into it.

Everything here is synchronous and transactional; generation.py streams the reply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.utils import timezone

from conversations.compiled import CompiledQuery, CompiledUpdate
from conversations.message_ids import message_ids_reserve
from conversations.models import Conversation, LanguageModel, Message, MessageImage
from conversations.prompting import HistoryMessage, conversation_history
from conversations.services import message_image_attach

INTERRUPTED_MESSAGE = (
    "The server stopped while this reply was being written; the text so far is kept. "
    "Press Regenerate to try again."
)
PROVISIONAL_TITLE_LENGTH = 50


class TurnRefused(Exception):
    """The turn cannot start; the message says why, in words for the user."""


def refusal_text(refusal: TurnRefused | ValidationError) -> str:
    """Why a turn did not start (refused, or an unacceptable image), in words for the user."""
    if isinstance(refusal, ValidationError):
        return " ".join(refusal.messages)
    return str(refusal)


@dataclass(frozen=True)
class Turn:
    reply: Message
    user_message: Message | None = None
    # Messages the page must drop: those the turn deleted, and an edited message, which the
    # page shows again (changed) in its new place.
    removed_ids: list[int] = field(default_factory=list)

    @property
    def messages(self) -> list[Message]:
        """The messages the turn shows, in order: the user's, if it has one, and the reply."""
        return [m for m in (self.user_message, self.reply) if m is not None]

    @property
    def message_ids(self) -> list[int]:
        return [m.pk for m in self.messages]


def new_lease() -> datetime:
    return timezone.now() + timedelta(seconds=settings.CHAT_STREAM_LEASE_SECONDS)


def provisional_title(content: str) -> str:
    """The first words of the first message, until a generated title replaces it."""
    flat = " ".join(content.split())
    if len(flat) <= PROVISIONAL_TITLE_LENGTH:
        return flat or "New conversation"
    return flat[: PROVISIONAL_TITLE_LENGTH - 1].rsplit(" ", 1)[0] + "…"


def lost_replies_sweep(*, conversation_id: int | None = None) -> list[int]:
    """Mark streaming replies whose writer is gone (lease ran out) as interrupted."""
    lost = Message.objects.filter(
        status=Message.Status.STREAMING, lease_expires_at__lt=timezone.now()
    )
    if conversation_id is not None:
        lost = lost.filter(conversation_id=conversation_id)
    ids = list(lost.values_list("id", flat=True))
    if ids:
        Message.objects.filter(id__in=ids, status=Message.Status.STREAMING).update(
            status=Message.Status.INTERRUPTED, error=INTERRUPTED_MESSAGE, lease_expires_at=None
        )
    return ids


def reply_fail(reply_id: int, error: str) -> None:
    Message.objects.filter(pk=reply_id, status=Message.Status.STREAMING).update(
        status=Message.Status.ERROR, error=error, lease_expires_at=None
    )


def _usable_model(conversation: Conversation) -> LanguageModel:
    model = conversation.model
    if model is None or not model.enabled:
        raise TurnRefused(
            f"The model {conversation.model_name} is no longer offered here: start a new "
            "conversation with another model."
        )
    if not model.installed:
        raise TurnRefused(
            f"The model {model.label} is not installed on the Ollama server any more: ask an "
            "admin to pull it again, or start a new conversation with another model."
        )
    return model


# Called under the turn's lock, once the history the reply answers is known and before the
# reply is saved: the model can start on its first token while the turn is written.
Ask = Callable[[Conversation, list[HistoryMessage]], None]
# Called under the turn's lock with the turn as it will be saved (its ids reserved), before its
# rows are written: the turn's start can be shown meanwhile. If the writing then fails, the
# turn is not saved, and whoever was shown it must be told.
Show = Callable[[Turn], None]


# The conversation with its model, read again under the lock (an admin may have disabled the
# model since). of=self: PostgreSQL cannot lock the nullable side of the join to the model.
_LOCKED_CONVERSATION = CompiledQuery(
    lambda pk: (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("model")
        .filter(pk=pk)
        .order_by()
    )
)

# The conversation's time (it moves up the list) and, with a first message, its title.
_CONVERSATION_UPDATE = CompiledUpdate(Conversation)


def _lock_idle(conversation: Conversation) -> tuple[Conversation, list[HistoryMessage]]:
    """Lock the conversation row, read its messages and check no reply is being written: one
    at a time."""
    found = _LOCKED_CONVERSATION.instances(conversation.pk)
    if not found:
        raise Conversation.DoesNotExist(f"Conversation {conversation.pk} does not exist.")
    locked = found[0]
    history = conversation_history(locked)
    # A reply whose writer is gone (its lease ran out) is marked interrupted first: it must not
    # hold the conversation up.
    if any(m.status == Message.Status.STREAMING for m in history):
        lost_replies_sweep(conversation_id=locked.pk)
        history = conversation_history(locked)
        if any(m.status == Message.Status.STREAMING for m in history):
            raise TurnRefused("A reply is still being written: wait for it, or press Stop.")
    return locked, history


def _new_reply(conversation: Conversation, model: LanguageModel) -> Message:
    return Message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model_name=model.name,
        lease_expires_at=new_lease(),
    )


def _start_reply(
    conversation: Conversation,
    model: LanguageModel,
    *,
    after: Message | None = None,
    reply: Message | None = None,
) -> Message:
    """Save the streaming reply (``reply``, or a new one), and ``after`` (a message not saved
    yet, which comes before it) in the same statement where the database returns the new
    rows' ids, or takes the ids they were given."""
    reply = reply or _new_reply(conversation, model)
    new = [m for m in (after, reply) if m is not None]
    given_ids = all(m.pk is not None for m in new)
    if len(new) > 1 and (given_ids or connection.features.can_return_rows_from_bulk_insert):
        Message.objects.bulk_create(new)
    else:
        for message in new:
            message.save(force_insert=True)
    return reply


def turn_send(
    *,
    conversation: Conversation,
    content: str,
    images: Sequence[UploadedFile[bytes]] = (),
    ask: Ask | None = None,
    show: Show | None = None,
) -> Turn:
    """Save the user's message and an empty streaming reply, so a reload at any moment shows
    the truth. Raises TurnRefused, or ValidationError for an unacceptable image. A text send
    is shown (``show``) before it is written, where the database can give its ids first."""
    with transaction.atomic():
        locked, history = _lock_idle(conversation)
        model = _usable_model(locked)
        if images and not model.supports_vision:
            raise TurnRefused(f"{model.label} cannot see images: send text only.")
        if len(images) > settings.CHAT_MAX_IMAGES_PER_MESSAGE:
            raise TurnRefused(
                f"Attach at most {settings.CHAT_MAX_IMAGES_PER_MESSAGE} images to a message."
            )
        user_message = Message(conversation=locked, role=Message.Role.USER, content=content)
        attached: list[MessageImage] = []
        if images:  # stored before the model is sent them
            user_message.save()
            attached = [message_image_attach(message=user_message, upload=u) for u in images]
        if ask is not None:
            new_message = HistoryMessage(
                user_message.pk, user_message.role, content, user_message.status, attached
            )
            ask(locked, [*history, new_message])
        reply = _new_reply(locked, model)
        if show is not None and not images and (ids := message_ids_reserve(2)) is not None:
            user_message.pk, reply.pk = ids
            user_message.images_known(attached)
            show(Turn(reply=reply, user_message=user_message))
        _start_reply(locked, model, after=None if images else user_message, reply=reply)
        user_message.images_known(attached)  # once saved, for a turn not shown first
        locked.updated_at = timezone.now()
        changes: dict[str, object] = {"updated_at": locked.updated_at}
        if not history:
            locked.title = changes["title"] = provisional_title(content)
        _CONVERSATION_UPDATE.run(locked.pk, changes)
    return Turn(reply=reply, user_message=user_message)


def turn_regenerate(*, conversation: Conversation, ask: Ask | None = None) -> Turn:
    """Replace the last reply with a new one. The old reply is deleted, not kept as a version."""
    with transaction.atomic():
        locked, history = _lock_idle(conversation)
        model = _usable_model(locked)
        if not history or history[-1].role != Message.Role.ASSISTANT:
            raise TurnRefused("There is no reply to regenerate.")
        last_id = _saved_id(history.pop())
        if ask is not None:
            ask(locked, history)
        Message.objects.filter(pk=last_id).delete()
        return Turn(reply=_start_reply(locked, model), removed_ids=[last_id])


def turn_edit(*, conversation: Conversation, content: str, ask: Ask | None = None) -> Turn:
    """Change the last user message and answer it again; what followed it is replaced."""
    with transaction.atomic():
        locked, history = _lock_idle(conversation)
        model = _usable_model(locked)
        position = next(
            (i for i in reversed(range(len(history))) if history[i].role == Message.Role.USER),
            None,
        )
        if position is None:
            raise TurnRefused("There is no message to edit.")
        last_user = history[position]
        last_user_id = _saved_id(last_user)
        if ask is not None:
            ask(locked, [*history[:position], last_user._replace(content=content)])
        following = locked.messages.filter(id__gt=last_user_id)
        removed = list(following.values_list("id", flat=True))
        following.delete()
        user_message = Message.objects.get(pk=last_user_id)
        user_message.content = content
        user_message.save(update_fields=["content", "updated_at"])
        return Turn(
            reply=_start_reply(locked, model),
            user_message=user_message,
            removed_ids=[*removed, last_user_id],
        )


def _saved_id(message: HistoryMessage) -> int:
    assert message.id is not None  # noqa: S101 - read from the database, so saved
    return message.id


def check_content(content: str) -> str:
    text = content.strip()
    if not text:
        raise ValidationError("Write a message first.")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ValidationError(
            f"The message is {len(text):,} characters long; the limit is "
            f"{settings.CHAT_MAX_MESSAGE_CHARS:,}."
        )
    return text
