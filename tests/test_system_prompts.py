"""System prompts keep every edit as a version; a conversation keeps the text it started with."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from conversations.models import LanguageModel, SystemPrompt
from conversations.services import conversation_start, system_prompt_in_force, system_prompt_save

pytestmark = pytest.mark.django_db


def prompt(name: str, text: str, **fields: object) -> SystemPrompt:
    saved = SystemPrompt(name=name, text=text, **fields)
    system_prompt_save(prompt=saved, edited_by=None)
    return saved


def test_each_change_of_text_is_kept_as_a_new_version(user: User) -> None:
    helpful = prompt("Helpful", "Be helpful.")
    helpful.text = "Be helpful and brief."
    system_prompt_save(prompt=helpful, edited_by=user)

    versions = list(helpful.versions.order_by("number").values_list("number", "text", "created_by"))
    assert versions == [(1, "Be helpful.", None), (2, "Be helpful and brief.", user.pk)]


def test_saving_without_changing_the_text_adds_no_version() -> None:
    helpful = prompt("Helpful", "Be helpful.")
    helpful.enabled = False
    system_prompt_save(prompt=helpful, edited_by=None)
    assert helpful.versions.count() == 1


def test_a_conversation_keeps_the_text_and_version_it_started_with(
    user: User, language_model: LanguageModel
) -> None:
    helpful = prompt("Helpful", "Be helpful.", is_default=True)
    conversation = conversation_start(owner=user, model=language_model)

    helpful.text = "Be rude."
    system_prompt_save(prompt=helpful, edited_by=None)
    conversation.refresh_from_db()

    assert conversation.system_prompt_text == "Be helpful."
    assert conversation.system_prompt_name == "Helpful"
    assert conversation.system_prompt_version is not None
    assert conversation.system_prompt_version.number == 1
    assert conversation.model_name == "llama3.2:latest"


def test_a_locked_prompt_applies_whatever_the_user_chooses(language_model: LanguageModel) -> None:
    chosen = prompt("Pirate", "Talk like a pirate.")
    locked = prompt("Policy", "Follow the policy.", default_for_model=language_model, locked=True)
    assert system_prompt_in_force(model=language_model, chosen=chosen) == locked


def test_the_users_choice_beats_the_defaults(language_model: LanguageModel) -> None:
    prompt("Global", "Global default.", is_default=True)
    prompt("Model", "Model default.", default_for_model=language_model)
    chosen = prompt("Pirate", "Talk like a pirate.")
    assert system_prompt_in_force(model=language_model, chosen=chosen) == chosen


def test_a_prompt_not_offered_to_users_cannot_be_chosen(language_model: LanguageModel) -> None:
    default = prompt("Global", "Global default.", is_default=True)
    hidden = prompt("Hidden", "Internal only.", user_selectable=False)
    assert system_prompt_in_force(model=language_model, chosen=hidden) == default


def test_the_models_default_beats_the_global_default(language_model: LanguageModel) -> None:
    prompt("Global", "Global default.", is_default=True)
    model_default = prompt("Model", "Model default.", default_for_model=language_model)
    assert system_prompt_in_force(model=language_model) == model_default


def test_disabled_prompts_never_apply(language_model: LanguageModel) -> None:
    prompt(
        "Policy", "Follow the policy.", default_for_model=language_model, locked=True, enabled=False
    )
    prompt("Global", "Global default.", is_default=True, enabled=False)
    assert system_prompt_in_force(model=language_model) is None


def test_without_any_prompt_a_conversation_has_none(
    user: User, language_model: LanguageModel
) -> None:
    conversation = conversation_start(owner=user, model=language_model)
    assert conversation.system_prompt_text == ""
    assert conversation.system_prompt_version is None


def test_editing_a_prompt_in_the_admin_records_a_version_by_that_admin(
    client: Client, language_model: LanguageModel
) -> None:
    admin = User.objects.create_superuser("root", password="x")
    client.force_login(admin)
    helpful = prompt("Helpful", "Be helpful.")
    form = {
        "name": "Helpful",
        "text": "Be very helpful.",
        "enabled": "on",
        "user_selectable": "on",
        "default_for_model": "",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "1",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
    }
    response = client.post(f"/admin/conversations/systemprompt/{helpful.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]

    latest = helpful.latest_version()
    assert latest is not None
    assert (latest.number, latest.text, latest.created_by) == (2, "Be very helpful.", admin)
