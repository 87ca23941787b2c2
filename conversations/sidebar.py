"""The sidebar: a user's conversations, pinned first, then by last activity, grouped by day and
read a page at a time (keyset paging, so page 100 costs what page 1 costs); and search."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from conversations.models import Conversation, Message
from conversations.ownership import conversations_of

PAGE_SIZE = 50
SEARCH_LIMIT = 50
SEARCH_MAX_CHARS = 200
# What a list entry shows and how it is ordered and grouped.
LISTED_FIELDS = ("id", "title", "pinned", "archived", "updated_at")

PINNED = "Pinned"
TODAY = "Today"
YESTERDAY = "Yesterday"
PREVIOUS_7_DAYS = "Previous 7 days"
PREVIOUS_30_DAYS = "Previous 30 days"
OLDER = "Older"


@dataclass(frozen=True)
class SidebarEntry:
    conversation: Conversation
    group: str
    # Whether a group heading goes before this entry (the first of its group on screen).
    starts_group: bool


@dataclass(frozen=True)
class SidebarPage:
    entries: list[SidebarEntry]
    # Where the next page starts, or "" when this is the last one.
    next_cursor: str
    last_group: str


def day_group(conversation: Conversation, today: dt.date) -> str:
    if conversation.pinned and not conversation.archived:
        return PINNED
    day = timezone.localdate(conversation.updated_at)
    age = (today - day).days
    if age <= 0:
        return TODAY
    if age == 1:
        return YESTERDAY
    if age <= 7:
        return PREVIOUS_7_DAYS
    if age <= 30:
        return PREVIOUS_30_DAYS
    return OLDER


def sidebar_listing(
    user: AbstractBaseUser | AnonymousUser, *, archived: bool
) -> QuerySet[Conversation]:
    listing = conversations_of(user).filter(archived=archived)
    if archived:
        # The archive ignores pins: it is a list of the past, newest first.
        return listing.order_by("-updated_at", "-id")
    return listing.order_by("-pinned", "-updated_at", "-id")


def encode_cursor(conversation: Conversation) -> str:
    stamp = int(conversation.updated_at.timestamp() * 1_000_000)
    return f"{int(conversation.pinned)}.{stamp}.{conversation.pk}"


def decode_cursor(cursor: str) -> tuple[bool, dt.datetime, int] | None:
    try:
        pinned, stamp, pk = (int(part) for part in cursor.split("."))
        moment = dt.datetime.fromtimestamp(stamp / 1_000_000, tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return bool(pinned), moment, pk


def _after(
    listing: QuerySet[Conversation], cursor: tuple[bool, dt.datetime, int], *, archived: bool
) -> QuerySet[Conversation]:
    pinned, moment, pk = cursor
    later_in_order = Q(updated_at__lt=moment) | Q(updated_at=moment, id__lt=pk)
    if archived:
        return listing.filter(later_in_order)
    if pinned:
        return listing.filter(Q(pinned=False) | (Q(pinned=True) & later_in_order))
    return listing.filter(Q(pinned=False) & later_in_order)


def sidebar_page(
    user: AbstractBaseUser | AnonymousUser,
    *,
    cursor: str = "",
    archived: bool = False,
    previous_group: str = "",
) -> SidebarPage:
    listing = sidebar_listing(user, archived=archived)
    position = decode_cursor(cursor) if cursor else None
    if position is not None:
        listing = _after(listing, position, archived=archived)
    rows = list(listing.only(*LISTED_FIELDS)[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    today = timezone.localdate()
    entries: list[SidebarEntry] = []
    group = previous_group
    for conversation in rows:
        its_group = day_group(conversation, today)
        entries.append(SidebarEntry(conversation, its_group, starts_group=its_group != group))
        group = its_group
    return SidebarPage(
        entries=entries,
        next_cursor=encode_cursor(rows[-1]) if more else "",
        last_group=group,
    )


def sidebar_search(user: AbstractBaseUser | AnonymousUser, query: str) -> list[Conversation]:
    """Conversations whose title or any message contains the words typed, newest first;
    archived ones included (they are marked in the results)."""
    words = query.split()[:8]
    if not words:
        return []
    found = conversations_of(user)
    for word in words:
        in_messages = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=word)
        found = found.filter(Q(title__icontains=word) | Exists(in_messages))
    return list(found.order_by("-updated_at", "-id").only(*LISTED_FIELDS)[:SEARCH_LIMIT])
