"""The one place that decides whose objects a user may reach: their own, and nobody else's.

Every view and consumer fetches conversations through these helpers, so another user's id
answers 404 exactly as a missing one does.
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.shortcuts import aget_object_or_404, get_object_or_404

from conversations.models import Conversation


def conversations_of(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Conversation]:
    if not user.is_authenticated:
        return Conversation.objects.none()
    return Conversation.objects.filter(owner_id=user.pk)


def get_conversation_for_user(
    user: AbstractBaseUser | AnonymousUser, conversation_id: int
) -> Conversation:
    return get_object_or_404(conversations_of(user).select_related("model"), pk=conversation_id)


async def aget_conversation_for_user(
    user: AbstractBaseUser | AnonymousUser, conversation_id: int
) -> Conversation:
    return await aget_object_or_404(
        conversations_of(user).select_related("model"), pk=conversation_id
    )
