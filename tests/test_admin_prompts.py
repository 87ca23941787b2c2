"""System prompts in the admin: versions with diffs and restore, snapshots that edits leave
alone, the preview against the fake Ollama, and locked prompts reaching Ollama."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import AsyncClient, Client

from conversations.fake_ollama import FakeOllamaServer
from conversations.fake_ollama.replies import expected_reply
from conversations.models import LanguageModel, SystemPrompt
from conversations.prompting import reply_request
from conversations.services import conversation_start, system_prompt_save
from tests.conftest import make_chat_admin, make_user

pytestmark = pytest.mark.django_db(transaction=True)

PROMPTS = "/admin/conversations/systemprompt/"


def prompt_form(**values: str) -> dict[str, str]:
    form = {"name": "Helpful", "text": "Be helpful.", "enabled": "on", "user_selectable": "on"}
    form.update(values)
    return {key: value for key, value in form.items() if value}


def test_each_admin_edit_is_a_version_and_conversations_keep_their_snapshot(
    chat_admin: Client, user: User, language_model: LanguageModel
) -> None:
    response = chat_admin.post(f"{PROMPTS}add/", prompt_form(is_default="on"))
    assert response.status_code == 302
    prompt = SystemPrompt.objects.get(name="Helpful")
    started = conversation_start(owner=user, model=language_model)

    chat_admin.post(
        f"{PROMPTS}{prompt.pk}/change/",
        prompt_form(is_default="on", text="Be helpful.\nAnswer in French."),
    )
    assert list(prompt.versions.values_list("number", "text")) == [
        (2, "Be helpful.\nAnswer in French."),
        (1, "Be helpful."),
    ]
    assert prompt.versions.get(number=2).created_by.username == "curator"  # type: ignore[union-attr]
    started.refresh_from_db()
    assert started.system_prompt_text == "Be helpful."
    assert started.system_prompt_version.number == 1  # type: ignore[union-attr]
    reply = started.messages.create(role="assistant", status="streaming")
    assert reply_request(started, reply).messages[0].content == "Be helpful."
    later = conversation_start(owner=user, model=language_model)
    assert later.system_prompt_text == "Be helpful.\nAnswer in French."


def test_the_versions_page_shows_each_change_and_restores_an_old_text(
    chat_admin: Client,
) -> None:
    prompt = SystemPrompt.objects.create(name="Tone", text="Be brief.\nBe kind.")
    system_prompt_save(prompt=prompt, edited_by=None)
    prompt.text = "Be brief.\nBe <b>bold</b>."
    system_prompt_save(prompt=prompt, edited_by=None)

    page = chat_admin.get(f"{PROMPTS}{prompt.pk}/versions/").content.decode()
    assert "Version 2 (in force)" in page
    assert '<span class="removed">- Be kind.</span>' in page
    # Prompt text is shown as text, never as markup.
    assert '<span class="added">+ Be &lt;b&gt;bold&lt;/b&gt;.</span>' in page
    assert '<span class="context">  Be brief.</span>' in page

    response = chat_admin.post(f"{PROMPTS}{prompt.pk}/versions/1/restore/", follow=True)
    assert "it is now version 3" in html.unescape(response.content.decode())
    prompt.refresh_from_db()
    assert prompt.text == "Be brief.\nBe kind."
    assert list(prompt.versions.values_list("number", flat=True)) == [3, 2, 1]
    assert prompt.versions.get(number=3).created_by.username == "curator"  # type: ignore[union-attr]


def test_only_staff_who_may_change_prompts_can_restore_or_edit(client: Client) -> None:
    prompt = SystemPrompt.objects.create(name="Tone", text="One.")
    system_prompt_save(prompt=prompt, edited_by=None)
    prompt.text = "Two."
    system_prompt_save(prompt=prompt, edited_by=None)
    reader = make_user("reader", is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_systemprompt"))
    client.force_login(reader)
    page = client.get(f"{PROMPTS}{prompt.pk}/versions/").content.decode()
    assert "Version 2" in page and "Restore this text" not in page
    assert client.post(f"{PROMPTS}{prompt.pk}/versions/1/restore/").status_code == 403
    response = client.post(f"{PROMPTS}{prompt.pk}/change/", prompt_form(text="Three."))
    assert response.status_code == 403
    prompt.refresh_from_db()
    assert prompt.text == "Two." and prompt.versions.count() == 2


def test_a_locked_prompt_needs_a_model(chat_admin: Client) -> None:
    response = chat_admin.post(f"{PROMPTS}add/", prompt_form(locked="on"))
    assert "A locked prompt must name the model it applies to." in response.content.decode()
    assert not SystemPrompt.objects.exists()


# --- preview -----------------------------------------------------------------------------------


@pytest.fixture
def async_admin(fake_ollama: FakeOllamaServer, settings) -> AsyncClient:  # type: ignore[no-untyped-def]
    settings.OLLAMA_BASE_URL = fake_ollama.url
    client = AsyncClient()
    client.force_login(make_chat_admin())
    return client


async def read_lines(response: object) -> list[dict[str, object]]:
    body = b"".join([part async for part in response.streaming_content])  # type: ignore[attr-defined]
    return [json.loads(line) for line in body.decode().splitlines()]


async def test_the_preview_streams_the_answer_to_the_unsaved_text(
    async_admin: AsyncClient, fake_ollama: FakeOllamaServer
) -> None:
    model = await LanguageModel.objects.acreate(
        name="llama3.2:latest", enabled=True, default_options={"temperature": 0.2}
    )
    response = await async_admin.post(
        f"{PROMPTS}preview/",
        {"text": "Talk like a pirate.", "model": model.pk, "message": "Hello there"},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    lines = await read_lines(response)
    assert lines[-1] == {"done": True}
    answer = "".join(str(line["content"]) for line in lines[:-1])
    assert len(lines) > 3  # it came in pieces
    sent = fake_ollama.requests_to("/api/chat")[0].body
    assert sent is not None
    assert sent["messages"] == [
        {"role": "system", "content": "Talk like a pirate."},
        {"role": "user", "content": "Hello there"},
    ]
    assert sent["options"] == {"temperature": 0.2}
    assert answer == expected_reply("llama3.2:latest", sent["messages"])
    assert not await SystemPrompt.objects.aexists()  # nothing saved


async def test_the_preview_reports_ollamas_error_in_words(
    async_admin: AsyncClient, fake_ollama: FakeOllamaServer
) -> None:
    model = await LanguageModel.objects.acreate(name="gone:latest", enabled=True)
    response = await async_admin.post(
        f"{PROMPTS}preview/", {"text": "x", "model": model.pk, "message": "Hi"}
    )
    lines = await read_lines(response)
    assert lines == [
        {
            "error": "Model 'gone:latest' is not installed on the Ollama server: an admin can "
            "install it with `ollama pull gone:latest`, or pick another model."
        }
    ]
    missing = await async_admin.post(
        f"{PROMPTS}preview/", {"text": "x", "model": 9999, "message": "Hi"}
    )
    assert missing.status_code == 400
    assert missing.content.decode() == "Pick a model the Ollama server has."


def test_the_preview_is_for_prompt_editors_only(client: Client, user: User) -> None:
    client.force_login(user)
    response = client.post(f"{PROMPTS}preview/", {"text": "x", "model": 1, "message": "Hi"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    staff = make_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.post(f"{PROMPTS}preview/", {"message": "Hi"}).status_code == 403


def test_the_change_page_offers_the_preview_with_installed_models(
    chat_admin: Client, language_model: LanguageModel
) -> None:
    LanguageModel.objects.create(name="gone:latest", installed=False)
    page = chat_admin.get(f"{PROMPTS}add/").content.decode()
    assert 'data-testid="prompt-preview-run"' in page
    options = re.findall(r'<option value="(\d+)"', page.split('id="preview-model"')[1])
    assert options == [str(language_model.pk)]
