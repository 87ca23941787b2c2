"""Read-only queries the pages share."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from conversations.models import Conversation, LanguageModel, Message, SystemPrompt


def models_on_offer() -> QuerySet[LanguageModel]:
    # A model deleted from the Ollama server (or gone at the last sync) cannot answer.
    return LanguageModel.objects.filter(enabled=True, installed=True)


def models_with_locked_prompts() -> list[LanguageModel]:
    """The models on offer, each with ``locked_prompt_name``: the prompt it always uses, if any."""
    models = list(models_on_offer())
    locked = dict(
        SystemPrompt.objects.filter(
            enabled=True, locked=True, default_for_model__in=[m.pk for m in models]
        ).values_list("default_for_model_id", "name")
    )
    for model in models:
        model.locked_prompt_name = locked.get(model.pk, "")  # type: ignore[attr-defined]
    return models


def prompts_on_offer() -> QuerySet[SystemPrompt]:
    return SystemPrompt.objects.filter(enabled=True, user_selectable=True)


MESSAGE_PAGE_SIZE = 50


def _page_before(conversation: Conversation, before: Message | None) -> dict[str, Any]:
    """Up to a page of the conversation's messages, oldest first, ending just before ``before``
    (or with the newest); whether older ones exist, and where the next page up starts. Two
    queries, however long the chat."""
    messages = conversation.messages.order_by("-created_at", "-id")
    if before is not None:
        messages = messages.filter(
            Q(created_at__lt=before.created_at) | Q(created_at=before.created_at, id__lt=before.pk)
        )
    page = list(messages.prefetch_related("images")[: MESSAGE_PAGE_SIZE + 1])
    shown = page[:MESSAGE_PAGE_SIZE][::-1]
    return {
        "messages": shown,
        "has_older": len(page) > MESSAGE_PAGE_SIZE,
        "oldest_id": shown[0].pk if shown else None,
    }


def conversation_state(conversation: Conversation) -> dict[str, Any]:
    """What the conversation page shows below its header: the newest messages, which of them
    carry the regenerate and edit actions, whether a reply is streaming, and the last error."""
    page = _page_before(conversation, None)
    messages: list[Message] = page["messages"]
    last_user = next((m for m in reversed(messages) if m.role == Message.Role.USER), None)
    last = messages[-1] if messages else None
    last_reply = last if last is not None and last.role == Message.Role.ASSISTANT else None
    # One reply at a time: a streaming reply is the newest message.
    streaming = last if last is not None and last.is_streaming else None
    return {
        **page,
        "last_user_id": last_user.pk if last_user else None,
        "last_reply_id": last_reply.pk if last_reply else None,
        "busy": streaming is not None,
        "streaming_reply_id": streaming.pk if streaming else None,
        "chat_error": last_reply.error if last_reply and last_reply.is_failed else "",
    }


def older_messages(conversation: Conversation, before_id: int) -> dict[str, Any]:
    """The page before a message the user scrolled up to; actions never show on older pages."""
    before = conversation.messages.filter(pk=before_id).only("id", "created_at").first()
    if before is None:
        return {"messages": [], "has_older": False, "oldest_id": None}
    return _page_before(conversation, before)
