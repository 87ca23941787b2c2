"""Export figures: memory while streaming the zip of many conversations, and the time to export
one long conversation as Markdown."""

from __future__ import annotations

import gc
import os
import time
from typing import Any

from django.contrib.auth.models import User
from django.test import RequestFactory

from conversations.export import to_markdown, transcript_of
from conversations.models import Conversation, Message
from conversations.views import export_all

REPLY = "A reply with **Markdown**, a list:\n\n- one\n- two\n\n```python\nprint('hi')\n```\n" * 4


def _make_conversations(owner: User, count: int, messages_each: int) -> None:
    conversations = Conversation.objects.bulk_create(
        Conversation(owner=owner, title=f"Conversation {n}", model_name="llama3.2:latest")
        for n in range(count)
    )
    Message.objects.bulk_create(
        Message(
            conversation=c,
            role="user" if m % 2 == 0 else "assistant",
            content="A question?" if m % 2 == 0 else REPLY,
            eval_count=120,
            eval_duration=2_000_000_000,
        )
        for c in conversations
        for m in range(messages_each)
    )


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1_048_576


def _zip_growth(owner: User) -> tuple[float, int, float]:
    """(growth of resident memory in MiB while streaming, bytes streamed, seconds) for the zip
    of all of ``owner``'s conversations in Markdown, through the view."""
    request = RequestFactory().get("/export/?format=md")
    request.user = owner
    gc.collect()
    before = highest = _resident_mib()
    started = time.perf_counter()
    response = export_all(request)
    streamed = 0
    for count, chunk in enumerate(response.streaming_content):  # type: ignore[arg-type]
        streamed += len(chunk)
        if count % 25 == 0:
            highest = max(highest, _resident_mib())
    seconds = time.perf_counter() - started
    return max(highest, _resident_mib()) - before, streamed, seconds


def run(*, quick: bool) -> dict[str, Any]:
    small_count, large_count = (100, 500) if quick else (200, 2000)
    small = User.objects.create_user("bench-small")
    large = User.objects.create_user("bench-large")
    _make_conversations(small, small_count, 4)
    _make_conversations(large, large_count, 4)
    small_growth, _, _ = _zip_growth(small)
    large_growth, large_bytes, large_seconds = _zip_growth(large)

    long_conversation = Conversation.objects.create(
        owner=small, title="Long", model_name="llama3.2:latest"
    )
    Message.objects.bulk_create(
        Message(
            conversation=long_conversation,
            role="user" if m % 2 == 0 else "assistant",
            content="A question?" if m % 2 == 0 else REPLY,
        )
        for m in range(2000)
    )
    started = time.perf_counter()
    markdown = to_markdown(transcript_of(long_conversation))
    markdown_seconds = time.perf_counter() - started

    return {
        "zip_conversations": large_count,
        "zip_streamed_mib": round(large_bytes / 1_048_576, 1),
        "zip_seconds": round(large_seconds, 2),
        f"zip_rss_growth_mib_{small_count}": round(small_growth, 1),
        f"zip_rss_growth_mib_{large_count}": round(large_growth, 1),
        "markdown_2000_messages_ms": round(markdown_seconds * 1000, 1),
        "markdown_2000_messages_kib": round(len(markdown.encode()) / 1024),
    }
