"""What Ollama receives for a reply: system prompt, history that fits the context, options.

Token counts are estimated (about four characters a token): the app has no tokenizer for every
model, and an estimate that errs on the long side keeps the latest message from being cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.db.models import QuerySet

from conversations.compiled import CompiledQuery
from conversations.models import Conversation, LanguageModel, Message, MessageImage, SystemPrompt
from conversations.ollama import ChatMessage
from conversations.ollama.types import KeepAlive
from conversations.user_options import allowed_overrides

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4  # the role markers a chat template adds around each message
TOKENS_PER_IMAGE = 768


@dataclass(frozen=True)
class ReplyRequest:
    model: str
    messages: list[ChatMessage]
    options: dict[str, Any]
    keep_alive: KeepAlive | None
    think: bool | None
    history_dropped: int

    @property
    def answers_first_message(self) -> bool:
        """Whether this reply is the conversation's first (so it may earn a generated title):
        no earlier reply in the history, and nothing dropped from it."""
        return self.history_dropped == 0 and all(m.role != "assistant" for m in self.messages)


def estimate_tokens(message: ChatMessage) -> int:
    text = len(message.content) // CHARS_PER_TOKEN + 1
    return text + TOKENS_PER_MESSAGE + TOKENS_PER_IMAGE * len(message.images)


def context_budget(model: LanguageModel, options: dict[str, Any]) -> int:
    """The context size we plan for and send as ``num_ctx``: the admin's or user's setting,
    else the model's own length capped by CHAT_DEFAULT_NUM_CTX (a model's maximum context can
    be far more than the machine's memory allows)."""
    explicit = options.get("num_ctx")
    if isinstance(explicit, int | float) and explicit > 0:
        return int(explicit)
    return min(model.context_length or settings.CHAT_DEFAULT_NUM_CTX, settings.CHAT_DEFAULT_NUM_CTX)


# Whether a prompt is locked to the model, asked for every reply; rarely one is.
_LOCKED_PROMPT_ID = CompiledQuery(
    lambda model_id: SystemPrompt.objects.filter(
        enabled=True, locked=True, default_for_model_id=model_id
    ).values_list("id", flat=True)[:1]
)


def _history_values(conversation_id: int) -> QuerySet[Message, tuple[int, str, str, str]]:
    """A conversation's messages in order, as the values of ``HistoryMessage``."""
    return Message.objects.filter(conversation_id=conversation_id).values_list(
        "id", "role", "content", "status"
    )


# The history as a turn reads it, on the way to every first token.
_HISTORY = CompiledQuery(_history_values)


def system_prompt_text(conversation: Conversation, model: LanguageModel) -> str:
    """A prompt locked to the model applies to every conversation with it, even one started
    before the lock; otherwise the conversation keeps the text it started with."""
    found = _LOCKED_PROMPT_ID.rows(model.pk)
    locked = (
        SystemPrompt.objects.prefetch_related("versions")
        .filter(pk=found[0][0], enabled=True, locked=True)
        .first()
        if found
        else None
    )
    if locked is not None:
        version = locked.latest_version()
        return version.text if version else locked.text
    return conversation.system_prompt_text


class HistoryMessage(NamedTuple):
    """A saved message as a turn reads it: enough to see the conversation's state, and to send
    the message to the model. (A tuple: a long history is thousands of them, on the way to a
    first token.)"""

    id: int | None  # None: the message being sent, not saved yet
    role: str
    content: str
    status: str
    images: Sequence[MessageImage] = ()


def conversation_history(
    conversation: Conversation, *, before_id: int | None = None
) -> list[HistoryMessage]:
    """The conversation's messages in order (those before message ``before_id``). A long
    conversation is read whole on the way to every first token: plain values in one query, and
    images (a query more) only for a model that is sent them."""
    model = conversation.model
    vision = model is not None and model.supports_vision
    if vision:
        messages = Message.objects.filter(conversation_id=conversation.pk)
        if before_id is not None:
            messages = messages.filter(id__lt=before_id)
        return [
            HistoryMessage(m.pk, m.role, m.content, m.status, list(m.images.all()))
            for m in messages.only(
                "id", "conversation_id", "role", "content", "status"
            ).prefetch_related("images")
        ]
    if before_id is None:  # a turn's: on the way to every first token
        return [HistoryMessage(*row) for row in _HISTORY.rows(conversation.pk)]
    earlier = _history_values(conversation.pk).filter(id__lt=before_id)
    return [HistoryMessage(*row) for row in earlier]


def _as_chat_message(message: HistoryMessage) -> ChatMessage:
    # Earlier thinking is left out: models do not need their old reasoning back.
    if message.role == Message.Role.ASSISTANT:
        return ChatMessage("assistant", message.content)
    pictures: list[bytes] = []
    for image in message.images:
        with image.file.open("rb") as file:
            pictures.append(file.read())
    return ChatMessage("user", message.content, images=pictures)


def _belongs_in_history(message: HistoryMessage) -> bool:
    if message.role == Message.Role.USER:
        return True
    # A reply that failed before saying anything has nothing for the model to read.
    return message.role == Message.Role.ASSISTANT and bool(message.content)


def reply_request(conversation: Conversation, reply: Message) -> ReplyRequest:
    """The /api/chat request that produces ``reply`` (the saved streaming assistant message)."""
    return history_request(conversation, conversation_history(conversation, before_id=reply.pk))


def history_request(conversation: Conversation, history: Sequence[HistoryMessage]) -> ReplyRequest:
    """The /api/chat request that answers ``history`` (the conversation's messages up to the
    one to answer, as a turn read and changed them)."""
    model = conversation.model
    if model is None:
        raise ValueError("the conversation has no model")
    turns = [_as_chat_message(m) for m in history if _belongs_in_history(m)]

    # The user's settings count only as far as the model still allows them today.
    overrides = allowed_overrides(conversation.options, model.user_bounds())
    options = {**(model.default_options or {}), **overrides}
    budget = context_budget(model, options)
    options["num_ctx"] = budget
    num_predict = options.get("num_predict")
    reserve = (
        int(num_predict)
        if isinstance(num_predict, int | float) and num_predict > 0
        else min(2048, budget // 4)
    )

    system = system_prompt_text(conversation, model)
    system_messages = [ChatMessage("system", system)] if system else []
    sizes = [estimate_tokens(m) for m in turns]
    total = sum(estimate_tokens(m) for m in system_messages) + sum(sizes)
    dropped = 0
    # Drop the oldest turns until the rest fits; never the system prompt or the latest message.
    while len(turns) - dropped > 1 and total > budget - reserve:
        total -= sizes[dropped]
        dropped += 1
        # Keep the history starting with the user's side of a turn.
        while len(turns) - dropped > 1 and turns[dropped].role == "assistant":
            total -= sizes[dropped]
            dropped += 1
    turns = turns[dropped:]

    return ReplyRequest(
        model=model.name,
        messages=system_messages + turns,
        options=options,
        keep_alive=model.keep_alive_for_request(),
        think=True if model.supports_thinking else None,
        history_dropped=dropped,
    )
