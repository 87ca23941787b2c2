"""Login for everything; each user reaches only their own conversations."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from conversations.models import Conversation, LanguageModel
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    ["/", "/conversations/1/", "/conversations/999999/", "/accounts/password_change/"],
)
def test_anonymous_visitors_are_sent_to_the_login_page(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_the_admin_sends_anonymous_visitors_to_a_login_page(client: Client) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_the_login_page_is_open_to_anonymous_visitors(client: Client) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="password"' in response.content


def test_there_is_no_anonymous_password_reset(client: Client) -> None:
    # No e-mail is configured on an intranet; such a page would only be an open door.
    assert client.get("/accounts/password_reset/").status_code == 404


def test_static_files_are_served_without_login(client: Client) -> None:
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert b"--accent" in b"".join(response.streaming_content)  # type: ignore[attr-defined]


def test_a_user_logs_in_with_the_login_form(client: Client, user: User) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_a_wrong_password_shows_the_form_again_with_a_message(client: Client, user: User) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"do not match" in response.content


def test_logout_takes_a_post_and_ends_the_session(client: Client, user: User) -> None:
    client.force_login(user)
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_the_owner_opens_their_conversation(
    client: Client, user: User, conversation: Conversation
) -> None:
    client.force_login(user)
    response = client.get(reverse("conversation", args=[conversation.pk]))
    assert response.status_code == 200
    assert b'data-testid="conversation-title"' in response.content
    assert b"Trip to Lisbon" in response.content


def test_another_user_gets_404_for_someone_elses_conversation(
    client: Client, other_user: User, conversation: Conversation
) -> None:
    client.force_login(other_user)
    response = client.get(reverse("conversation", args=[conversation.pk]))
    assert response.status_code == 404
    assert b"Trip to Lisbon" not in response.content


def test_a_missing_conversation_is_404_too(client: Client, user: User) -> None:
    client.force_login(user)
    assert client.get(reverse("conversation", args=[424242])).status_code == 404


def test_the_sidebar_lists_only_the_users_own_conversations(
    client: Client, user: User, other_user: User, conversation: Conversation
) -> None:
    Conversation.objects.create(owner=other_user, title="Secret plan of Bob", model_name="x")
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "Trip to Lisbon" in page
    assert "Secret plan of Bob" not in page

    client.force_login(other_user)
    page = client.get("/").content.decode()
    assert "Secret plan of Bob" in page
    assert "Trip to Lisbon" not in page


def test_a_new_user_sees_an_explained_empty_state(client: Client, user: User) -> None:
    client.force_login(user)
    page = client.get("/").content.decode()
    assert 'data-testid="conversation-list-empty"' in page
    assert "No conversations yet" in page
    assert 'data-testid="new-conversation"' in page
    assert 'data-testid="composer"' in page


def test_send_is_offered_only_when_a_model_is(client: Client, user: User) -> None:
    client.force_login(user)
    assert 'data-testid="send" disabled' in client.get("/").content.decode()
    LanguageModel.objects.create(name="llama3.2:latest", enabled=True)
    page = client.get("/").content.decode()
    assert 'data-testid="send" >' in page or 'data-testid="send">' in page


def test_the_model_picker_offers_enabled_models_with_the_default_selected(
    client: Client, user: User
) -> None:
    default = LanguageModel.objects.create(
        name="llama3.2:latest", display_name="Llama 3.2", enabled=True, is_default=True
    )
    LanguageModel.objects.create(
        name="llava:latest", enabled=True, capabilities=["completion", "vision"]
    )
    LanguageModel.objects.create(name="hidden:latest", enabled=False)
    client.force_login(user)
    page = client.get("/").content.decode()
    assert re.search(rf'<option value="{default.pk}" selected[^>]*>Llama 3.2</option>', page)
    assert "llava:latest · vision" in page
    assert "hidden:latest" not in page


def test_without_models_the_page_says_what_to_do(client: Client, user: User) -> None:
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "No models are offered yet." in page
    assert "Ask your team's admin" in page


def test_titles_are_escaped(client: Client, user: User) -> None:
    Conversation.objects.create(owner=user, title="<script>alert(1)</script>", model_name="x")
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_owner_renames_a_conversation(
    client: Client, user: User, conversation: Conversation
) -> None:
    client.force_login(user)
    response = client.post(
        f"/conversations/{conversation.pk}/rename/", {"title": "  Lisbon   in May "}
    )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "Lisbon in May"


def test_nobody_else_can_rename_it(
    client: Client, other_user: User, conversation: Conversation
) -> None:
    client.force_login(other_user)
    response = client.post(f"/conversations/{conversation.pk}/rename/", {"title": "Mine now"})
    assert response.status_code == 404
    conversation.refresh_from_db()
    assert conversation.title == "Trip to Lisbon"
