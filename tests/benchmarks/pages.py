"""Figure 5, pages: server time and query count to open a conversation of 20 and of 2,000
messages, and the sidebar of a user with 5,000 conversations (against one with 5). Served in
this process by Django's test client, which times the view and everything around it but no
network."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.models import Conversation, LanguageModel, Message
from tests.conftest import many_conversations

REPLY = "A reply with **Markdown**, a list:\n\n- one\n- two\n\n```python\nprint('hi')\n```\n"
TIMES = 7


def _conversation(owner: User, model: LanguageModel, messages: int) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, model=model, model_name=model.name)
    start = timezone.now() - timedelta(days=30)
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            role="user" if n % 2 == 0 else "assistant",
            content=f"Question {n}?" if n % 2 == 0 else REPLY,
            created_at=start + timedelta(seconds=n),
        )
        for n in range(messages)
    )
    return conversation


def _served(client: Client, url: str) -> tuple[float, int]:
    """Median milliseconds over a few requests (after one to warm up), and queries per request."""
    client.get(url)
    times = []
    for _ in range(TIMES):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
    return round(statistics.median(times) * 1000, 1), len(queries)


def run() -> dict[str, Any]:
    model = LanguageModel.objects.create(name="pages:latest", enabled=True, is_default=True)
    reader = User.objects.create_user("pages-reader")
    few, many = User.objects.create_user("pages-few"), User.objects.create_user("pages-many")
    short, long = _conversation(reader, model, 20), _conversation(reader, model, 2000)
    many_conversations(few, model, 5)
    many_conversations(many, model, 5000)
    client = Client(HTTP_HOST="localhost")  # an allowed host; the test runner is not here
    figures: dict[str, Any] = {}
    client.force_login(reader)
    for name, conversation in (("20", short), ("2000", long)):
        ms, queries = _served(client, f"/conversations/{conversation.pk}/")
        figures[f"conversation_{name}_messages"] = {"ms": ms, "queries": queries}
    for name, user in (("5", few), ("5000", many)):
        client.force_login(user)
        ms, queries = _served(client, "/conversations/sidebar/")
        figures[f"sidebar_{name}_conversations"] = {"ms": ms, "queries": queries}
    return figures
