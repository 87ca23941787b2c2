"""The sidebar and the conversation page: paging, grouping, search, the conversation actions,
and the query counts that keep long histories fast."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.models import Conversation, LanguageModel, Message
from conversations.sidebar import PAGE_SIZE, sidebar_page, sidebar_search
from tests.conftest import many_conversations, png


def all_pages(owner: User, *, archived: bool = False) -> list[tuple[str, bool, str]]:
    shown, cursor, group = [], "", ""
    while True:
        page = sidebar_page(owner, cursor=cursor, archived=archived, previous_group=group)
        shown += [(e.conversation.title, e.starts_group, e.group) for e in page.entries]
        if not page.next_cursor:
            return shown
        cursor, group = page.next_cursor, page.last_group


def test_pages_list_every_conversation_once_pinned_first_then_newest_first(
    user: User, other_user: User, language_model: LanguageModel
) -> None:
    many_conversations(user, language_model, 130)
    many_conversations(other_user, language_model, 5)
    Conversation.objects.filter(title__in=["Chat 99", "Chat 7"]).update(pinned=True)
    Conversation.objects.filter(owner=user, title="Chat 3").update(archived=True)

    shown = all_pages(user)
    titles = [title for title, _, _ in shown]
    assert len(titles) == len(set(titles)) == 129  # the archived one is not listed
    assert titles[:2] == ["Chat 7", "Chat 99"]
    assert titles[2:5] == ["Chat 1", "Chat 0", "Chat 2"]  # the same moment: newest id first
    headings = [group for _, starts, group in shown if starts]
    assert headings == ["Pinned", "Today", "Yesterday", "Previous 7 days"]
    assert all_pages(user, archived=True) == [("Chat 3", True, "Today")]


def test_a_malformed_cursor_starts_again_from_the_top(user: User, conversation: Conversation):  # type: ignore[no-untyped-def]
    page = sidebar_page(user, cursor="not.a.cursor")
    assert [e.conversation for e in page.entries] == [conversation]


def test_search_looks_in_titles_and_messages_of_ones_own_conversations_only(
    user: User, other_user: User, language_model: LanguageModel
) -> None:
    mine = Conversation.objects.create(owner=user, title="Trip", model_name="x")
    Message.objects.create(conversation=mine, role="assistant", content="Lisbon has trams")
    Conversation.objects.create(owner=user, title="Lisbon budget", model_name="x", archived=True)
    theirs = Conversation.objects.create(owner=other_user, title="Lisbon secret", model_name="x")
    Message.objects.create(conversation=theirs, role="user", content="Lisbon")

    found = sidebar_search(user, "lisbon")
    assert {c.title for c in found} == {"Trip", "Lisbon budget"}
    assert [c.title for c in sidebar_search(user, "lisbon TRAMS")] == ["Trip"]
    assert sidebar_search(user, "   ") == []


def test_the_search_view_answers_as_the_user_types(client: Client, user: User) -> None:
    Conversation.objects.create(owner=user, title="Quarterly <b>report</b>", model_name="x")
    client.force_login(user)
    html = client.get("/conversations/search/", {"q": "report"}).content.decode()
    assert html.count('data-testid="conversation-item"') == 1
    assert "Quarterly &lt;b&gt;report&lt;/b&gt;" in html
    empty = client.get("/conversations/search/", {"q": "nothing"}).content.decode()
    assert 'data-testid="search-empty"' in empty


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/conversations/{id}/pin/"),
        ("post", "/conversations/{id}/archive/"),
        ("post", "/conversations/{id}/delete/"),
        ("post", "/conversations/{id}/rename/"),
        ("post", "/conversations/{id}/settings/"),
        ("post", "/conversations/{id}/send/"),
        ("get", "/conversations/{id}/messages/?before=1"),
        ("get", "/conversations/{id}/images/{image}/"),
    ],
)
def test_another_users_conversation_answers_404_to_every_action(
    client: Client, other_user: User, conversation: Conversation, method: str, path: str
) -> None:
    message = Message.objects.create(conversation=conversation, role="user", content="hi")
    image = message.images.create(file="x.png", content_type="image/png", size=1, width=1, height=1)
    client.force_login(other_user)
    url = path.format(id=conversation.pk, image=image.pk)
    fields = {"title": "Mine now", "pinned": "1", "archived": "1", "temperature": "1"}
    response = getattr(client, method)(url, {**fields, "content": "Hijack"})
    assert response.status_code == 404
    conversation.refresh_from_db()
    assert (conversation.title, conversation.pinned, conversation.archived) == (
        "Trip to Lisbon",
        False,
        False,
    )
    assert conversation.options == {}
    assert list(conversation.messages.values_list("content", flat=True)) == ["hi"]


def test_pin_archive_rename_and_delete_change_the_conversation(
    client: Client, user: User, conversation: Conversation
) -> None:
    client.force_login(user)
    base = f"/conversations/{conversation.pk}"
    headers = {"HX-Request": "true"}
    response = client.post(f"{base}/pin/", {"pinned": "1"}, headers=headers)
    assert response.status_code == 200
    assert 'hx-swap-oob="innerHTML"' in response.content.decode()  # the sidebar is redrawn
    client.post(f"{base}/archive/", {"archived": "1"}, headers=headers)
    client.post(f"{base}/rename/", {"title": "  New\n title "}, headers=headers)
    conversation.refresh_from_db()
    assert (conversation.pinned, conversation.archived, conversation.title) == (
        True,
        True,
        "New title",
    )
    response = client.post(f"{base}/delete/", headers=headers)
    assert response["HX-Redirect"] == "/"
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


def test_an_attached_image_is_served_to_its_owner_with_its_type(
    client: Client, user: User, conversation: Conversation
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from conversations.services import message_image_attach

    message = Message.objects.create(conversation=conversation, role="user", content="look")
    image = message_image_attach(
        message=message, upload=SimpleUploadedFile("dot.png", png(), content_type="image/png")
    )
    client.force_login(user)
    response = client.get(f"/conversations/{conversation.pk}/images/{image.pk}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.getvalue() == png()


def add_messages(conversation: Conversation, count: int) -> None:
    start = timezone.now() - timedelta(days=1)
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            role="user" if number % 2 == 0 else "assistant",
            content=f"Message **{number}**",
            created_at=start + timedelta(seconds=number),
        )
        for number in range(count)
    )


def page_queries(client: Client, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response.content.decode()


def test_a_2000_message_conversation_opens_with_as_many_queries_as_a_20_message_one(
    client: Client, user: User, language_model: LanguageModel
) -> None:
    short = Conversation.objects.create(owner=user, model=language_model, model_name="x")
    long = Conversation.objects.create(owner=user, model=language_model, model_name="x")
    add_messages(short, 20)
    add_messages(long, 2000)
    client.force_login(user)
    page_queries(client, f"/conversations/{short.pk}/")  # the session is warm

    short_count, short_html = page_queries(client, f"/conversations/{short.pk}/")
    long_count, long_html = page_queries(client, f"/conversations/{long.pk}/")
    assert short_count == long_count
    assert long_html.count('data-testid="message"') == 50  # the newest page only
    assert "Message <strong>1999</strong>" in long_html
    assert 'data-testid="load-older"' in long_html and 'data-testid="load-older"' not in short_html

    oldest = re.search(r"before=(\d+)", long_html)[1]  # type: ignore[index]
    count, older = page_queries(client, f"/conversations/{long.pk}/messages/?before={oldest}")
    assert older.count('data-testid="message"') == 50
    assert "Message <strong>1949</strong>" in older and "Message <strong>1950</strong>" not in older
    assert count <= short_count


def test_the_sidebar_costs_the_same_queries_for_5000_conversations_as_for_5(
    client: Client, user: User, other_user: User, language_model: LanguageModel
) -> None:
    many_conversations(user, language_model, 5)
    many_conversations(other_user, language_model, 5000)
    client.force_login(user)
    client.get("/")
    few, _ = page_queries(client, "/")
    client.force_login(other_user)
    client.get("/")
    lots, html = page_queries(client, "/")
    assert few == lots
    assert html.count('data-testid="conversation-item"') == PAGE_SIZE


def test_the_settings_panel_keeps_options_within_bounds_and_blank_means_the_default(
    client: Client, user: User, conversation: Conversation
) -> None:
    client.force_login(user)
    url = f"/conversations/{conversation.pk}/settings/"
    page = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert 'placeholder="0.8"' in page and 'placeholder="8192"' in page  # the defaults

    response = client.post(url, {"temperature": "0.3", "num_ctx": "4096"})
    assert response.status_code == 200 and "Saved" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.options == {"temperature": 0.3, "num_ctx": 4096}

    for bad in ({"temperature": "5"}, {"num_ctx": "10"}, {"num_ctx": "999999999"}):
        response = client.post(url, {"temperature": "", "num_ctx": "", **bad})
        assert response.status_code == 400
        assert 'class="form-error"' in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.options == {"temperature": 0.3, "num_ctx": 4096}

    client.post(url, {"temperature": "", "num_ctx": "2048"})
    conversation.refresh_from_db()
    assert conversation.options == {"num_ctx": 2048}


def test_a_message_with_images_is_refused_in_words_for_a_model_without_vision(
    client: Client, user: User, other_user: User, conversation: Conversation
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = f"/conversations/{conversation.pk}/send/"
    upload = SimpleUploadedFile("dot.png", png(), content_type="image/png")
    client.force_login(other_user)
    assert client.post(url, {"content": "look", "images": upload}).status_code == 404
    client.force_login(user)
    upload.seek(0)
    response = client.post(url, {"content": "look", "images": upload})
    assert response.status_code == 400
    assert "cannot see images" in response.content.decode()
    empty = client.post(url, {"content": "  "})
    assert empty.status_code == 400 and "Write a message first." in empty.content.decode()
    assert not conversation.messages.exists()
