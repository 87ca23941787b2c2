"""Read-only queries the pages share."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from conversations.models import Conversation, LanguageModel, Message, SystemPrompt
from conversations.ownership import conversations_of

SIDEBAR_PAGE_SIZE = 50


def sidebar_conversations(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Conversation]:
    return (
        conversations_of(user)
        .filter(archived=False)
        .only("id", "title", "pinned", "updated_at")[:SIDEBAR_PAGE_SIZE]
    )


def models_on_offer() -> QuerySet[LanguageModel]:
    return LanguageModel.objects.filter(enabled=True)


def prompts_on_offer() -> QuerySet[SystemPrompt]:
    return SystemPrompt.objects.filter(enabled=True, user_selectable=True)


def conversation_state(conversation: Conversation) -> dict[str, Any]:
    """What the conversation page shows below its header: the messages, which of them carry the
    regenerate and edit actions, whether a reply is streaming, and the last error."""
    messages = list(conversation.messages.prefetch_related("images"))
    last_user = next((m for m in reversed(messages) if m.role == Message.Role.USER), None)
    last = messages[-1] if messages else None
    last_reply = last if last is not None and last.role == Message.Role.ASSISTANT else None
    streaming = next((m for m in messages if m.is_streaming), None)
    return {
        "messages": messages,
        "last_user_id": last_user.pk if last_user else None,
        "last_reply_id": last_reply.pk if last_reply else None,
        "busy": streaming is not None,
        "streaming_reply_id": streaming.pk if streaming else None,
        "chat_error": last_reply.error if last_reply and last_reply.is_failed else "",
    }
