"""A short title for a conversation, asked of the model after its first reply."""

from __future__ import annotations

import logging
import re

from channels.layers import BaseChannelLayer

from conversations.db import db
from conversations.groups import stream_group
from conversations.models import Conversation, Message
from conversations.ollama import OllamaClient, OllamaError
from conversations.turns import provisional_title

logger = logging.getLogger(__name__)

TITLE_MAX_LENGTH = 60
# A title is not worth waiting for longer than this (the model may be busy or stuck).
TITLE_TIMEOUT_SECONDS = 120
TITLE_PROMPT = (
    "Write a title of at most six words for a conversation that starts with the message "
    "below. Answer with the title only, no quotes, no punctuation at the end.\n\n"
    "Message: {message}"
)


def clean_title(text: str) -> str:
    """Plain text of bounded length from whatever the model answered."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = re.sub(r"^\s*(title\s*:)\s*", "", line, flags=re.IGNORECASE)
    line = re.sub(r"[#*_`>\[\]]+", "", line)
    line = " ".join(line.split()).strip(" \"'“”‘’.:;-")
    if len(line) > TITLE_MAX_LENGTH:
        line = line[: TITLE_MAX_LENGTH - 1].rsplit(" ", 1)[0].rstrip(" ,;:-") + "…"
    return line


@db
def _first_exchange(conversation_id: int) -> tuple[Conversation, str] | None:
    """The conversation and its first message, if it has had exactly one exchange and still
    has the provisional title (the user has not renamed it)."""
    conversation = Conversation.objects.select_related("model").filter(pk=conversation_id).first()
    if conversation is None or conversation.model is None:
        return None
    messages = list(conversation.messages.only("role", "content")[:3])
    if [m.role for m in messages] != [Message.Role.USER, Message.Role.ASSISTANT]:
        return None
    first = messages[0].content
    if conversation.title != provisional_title(first):
        return None
    return conversation, first


@db
def _set_title(conversation_id: int, *, expected: str, title: str) -> bool:
    # Only if nobody renamed it in the meantime.
    return bool(Conversation.objects.filter(pk=conversation_id, title=expected).update(title=title))


async def title_after_first_reply(
    *, conversation_id: int, client: OllamaClient, layer: BaseChannelLayer
) -> None:
    try:
        found = await _first_exchange(conversation_id)
        if found is None:
            return
        conversation, first_message = found
        model = conversation.model
        assert model is not None  # noqa: S101 - checked by _first_exchange
        result = await client.generate(
            model=model.name,
            prompt=TITLE_PROMPT.format(message=first_message[:2000]),
            think=False if model.supports_thinking else None,
            options={"num_predict": 24, "temperature": 0.2},
            keep_alive=model.keep_alive_for_request(),
            read_timeout=TITLE_TIMEOUT_SECONDS,
        )
        title = clean_title(result.response)
        if title and await _set_title(conversation_id, expected=conversation.title, title=title):
            await layer.group_send(
                stream_group(conversation_id),
                {"type": "conversation.renamed", "conversation_id": conversation_id},
            )
    except OllamaError as error:
        logger.info("No title for conversation %s: %s", conversation_id, error)
    except Exception:
        logger.exception("No title for conversation %s", conversation_id)
