"""Conversations and usage in the admin: metadata only unless the operator allows transcripts,
read-only, sanitized; usage figures in a constant number of queries; nothing for non-staff."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from conversations.models import Conversation, LanguageModel, Message, ModelPull, SystemPrompt
from conversations.usage import usage_report
from tests.conftest import make_user

CONVERSATIONS = "/admin/conversations/conversation/"
SECRET = "the merger with Initech closes on Friday"
XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


def chat(owner: User, model: LanguageModel, title: str, replies: int = 1) -> Conversation:
    conversation = Conversation.objects.create(
        owner=owner, title=title, model=model, model_name=model.name
    )
    for _ in range(replies):
        conversation.messages.create(role="user", content=f"About {SECRET}?")
        conversation.messages.create(
            role="assistant",
            content=f"**Yes**: {XSS}",
            model_name=model.name,
            prompt_eval_count=30,
            eval_count=70,
            eval_duration=2_000_000_000,
        )
    return conversation


@pytest.fixture
def chats(user: User, other_user: User, language_model: LanguageModel) -> list[Conversation]:
    qwen = LanguageModel.objects.create(name="qwen3:latest", enabled=True)
    return [
        chat(user, language_model, f"Secret plan {XSS}", replies=2),
        chat(other_user, qwen, "Other stuff"),
    ]


def test_without_permission_to_read_admins_see_metadata_only(
    chat_admin: Client, chats: list[Conversation], settings
) -> None:  # type: ignore[no-untyped-def]
    settings.ADMIN_CAN_READ_TRANSCRIPTS = False
    listing = chat_admin.get(CONVERSATIONS).content.decode()
    assert "admins see metadata only" in listing
    row = next(r for r in listing.split("<tr") if f">Conversation {chats[0].pk}</a>" in r)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    # After the selection box: owner, model, messages, tokens.
    assert cells[1:5] == ["alice", "llama3.2:latest", "4", "200"]
    page = chat_admin.get(f"{CONVERSATIONS}{chats[0].pk}/change/").content.decode()
    for content in (listing, page):
        assert SECRET not in content and "Secret plan" not in content
        assert "**Yes**" not in content and "<strong>Yes" not in content
    assert "admins see metadata only" in page
    # Searching cannot reach into what users wrote either.
    found = chat_admin.get(CONVERSATIONS, {"q": "Initech"}).content.decode()
    assert "0 conversations" in found or "0 results" in found


def test_filters_by_model_owner_and_date(
    chat_admin: Client, chats: list[Conversation], other_user: User
) -> None:
    Conversation.objects.filter(pk=chats[1].pk).update(
        updated_at=timezone.now() - timedelta(days=40)
    )
    by_owner = chat_admin.get(CONVERSATIONS, {"owner__id__exact": other_user.pk}).content.decode()
    assert (
        f"Conversation {chats[1].pk}<" in by_owner
        and f"Conversation {chats[0].pk}<" not in by_owner
    )
    model = chats[0].model
    assert model is not None
    by_model = chat_admin.get(CONVERSATIONS, {"model__id__exact": model.pk}).content.decode()
    assert (
        f"Conversation {chats[0].pk}<" in by_model
        and f"Conversation {chats[1].pk}<" not in by_model
    )
    since = (timezone.now() - timedelta(days=7)).isoformat()
    recent = chat_admin.get(CONVERSATIONS, {"updated_at__gte": since}).content.decode()
    assert f"Conversation {chats[0].pk}<" in recent and f"Conversation {chats[1].pk}<" not in recent


def test_with_permission_the_transcript_is_shown_read_only_and_sanitized(
    chat_admin: Client, chats: list[Conversation], settings
) -> None:  # type: ignore[no-untyped-def]
    settings.ADMIN_CAN_READ_TRANSCRIPTS = True
    page = chat_admin.get(f"{CONVERSATIONS}{chats[0].pk}/change/").content.decode()
    assert SECRET in page
    assert "<strong>Yes</strong>" in page  # the reply's Markdown, rendered as in the chat
    # The markup in it arrives as text, never as elements.
    assert not re.search(r"<img[^>]*onerror", page) and "<script>window" not in page
    assert "&lt;img src=x onerror=" in page
    assert "admins see metadata only" not in page
    listing = chat_admin.get(CONVERSATIONS).content.decode()
    assert "Secret plan &lt;img" in listing  # titles show, escaped
    response = chat_admin.post(f"{CONVERSATIONS}{chats[0].pk}/change/", {"title": "Changed"})
    assert response.status_code == 403
    chats[0].refresh_from_db()
    assert chats[0].title.startswith("Secret plan")


def test_usage_per_model_user_and_day(chat_admin: Client, chats: list[Conversation]) -> None:
    old = chats[1].messages.create(
        role="user", content="long ago", created_at=timezone.now() - timedelta(days=20)
    )
    report = usage_report(7)
    by_model = {row.label: row for row in report.per_model}
    assert (by_model["llama3.2:latest"].messages, by_model["llama3.2:latest"].tokens) == (4, 200)
    assert by_model["llama3.2:latest"].tokens_per_second == pytest.approx(35.0)  # 140 / 4 s
    assert (by_model["qwen3:latest"].messages, by_model["qwen3:latest"].tokens) == (2, 100)
    assert {row.label: row.messages for row in report.per_user} == {"alice": 4, "bob": 2}
    assert len(report.per_day) == 7 and report.per_day[-1].messages == 6
    assert report.per_day[-1].share == 100
    month = usage_report(30)
    assert month.total_messages == 7 and old.created_at.date() >= month.since

    page = chat_admin.get(f"{CONVERSATIONS}usage/", {"days": 30}).content.decode()
    assert "Usage, last 30 days" in page and "35.0" in page and "alice" in page
    assert SECRET not in page


def test_usage_costs_the_same_queries_for_any_volume(
    chat_admin: Client, user: User, language_model: LanguageModel
) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert chat_admin.get(f"{CONVERSATIONS}usage/").status_code == 200
        return len(captured)

    chat(user, language_model, "one")
    few = queries()
    for index in range(30):
        owner = make_user(f"user{index}")
        chat(owner, LanguageModel.objects.create(name=f"m{index}:latest"), "x", replies=3)
    assert queries() == few


def test_usage_needs_its_permission(client: Client, db: None) -> None:
    staff = make_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.get(f"{CONVERSATIONS}usage/").status_code == 403


def admin_paths(resolver: URLResolver | None = None, prefix: str = "/admin/") -> list[str]:
    """Every admin URL, with 1 for each argument."""
    if resolver is None:
        resolver = next(
            p
            for p in get_resolver().url_patterns
            if isinstance(p, URLResolver) and p.namespace == "admin"
        )
    paths = []
    for pattern in resolver.url_patterns:
        route = re.sub(r"<[^>]+>", "1", str(pattern.pattern)).lstrip("^").rstrip("$")
        if isinstance(pattern, URLResolver):
            paths += admin_paths(pattern, prefix + route)
        elif isinstance(pattern, URLPattern):
            paths.append(prefix + route)
    return paths


@pytest.mark.django_db
def test_a_user_who_is_not_staff_gets_nothing_from_any_admin_url(
    client: Client, user: User, language_model: LanguageModel
) -> None:
    chat(user, language_model, "mine")
    SystemPrompt.objects.create(name="p", text="t")
    ModelPull.objects.create(name="gemma3:1b")
    client.force_login(user)
    paths = [p for p in admin_paths() if "login" not in p and "logout" not in p]
    assert len(paths) > 40
    assert f"{CONVERSATIONS}usage/" in paths
    assert "/admin/conversations/languagemodel/pull/1/cancel/" in paths
    for path in paths:
        for response in (client.get(path), client.post(path, {"name": "x", "text": "x"})):
            assert response.status_code in (302, 404), (path, response.status_code)
            if response.status_code == 302:
                assert response["Location"].startswith("/admin/login/"), path
    assert not Message.objects.filter(content="x").exists()
    assert ModelPull.objects.count() == 1
