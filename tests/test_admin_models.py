"""The admin's model pages against the fake Ollama: the list with the server's state, sync, pull
(progress, errors, cancel), load/unload, delete from the server, and the options form."""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from conversations.fake_ollama import FakeOllamaServer
from conversations.models import Conversation, LanguageModel, ModelPull
from conversations.ollama_options import validate_options
from conversations.prompting import reply_request
from conversations.roles import CHAT_ADMINS
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = "/admin/conversations/languagemodel/"


@pytest.fixture(autouse=True)
def use_fake(settings, fake_ollama: FakeOllamaServer) -> None:  # type: ignore[no-untyped-def]
    settings.OLLAMA_BASE_URL = fake_ollama.url


def text_of(response: Any) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def sync(client: Client) -> Any:
    return client.post(f"{MODELS}sync/", follow=True)


# --- the list and sync -------------------------------------------------------------------------


def test_sync_from_the_admin_adds_then_changes_nothing(chat_admin: Client) -> None:
    first = sync(chat_admin)
    assert any("10 added" in m for m in messages_of(first)), messages_of(first)
    assert LanguageModel.objects.filter(name="qwen3:latest", installed=True).exists()
    again = sync(chat_admin)
    assert any("0 added; 0 updated; 0 no longer" in m for m in messages_of(again))


def test_the_list_shows_what_the_server_says_about_each_model(
    chat_admin: Client, fake_ollama: FakeOllamaServer
) -> None:
    sync(chat_admin)
    qwen = LanguageModel.objects.get(name="qwen3:latest")
    chat_admin.post(f"{MODELS}{qwen.pk}/load/")
    page = text_of(chat_admin.get(MODELS))
    assert "completion, tools, thinking" in page
    assert "4.9 GB" in page  # 5,225,388,164 bytes
    assert "8.2B · Q4_K_M" in page
    # Loaded for the server's default five minutes: the list says until when.
    expires = timezone.localtime(timezone.now() + timedelta(minutes=5))
    assert re.search(r"Loaded, unloads at \d\d:\d\d", page)
    assert f"{expires:%H}:" in page
    assert page.count("Loaded, unloads at") == 1


def test_the_list_still_opens_when_ollama_is_down(chat_admin: Client, settings) -> None:  # type: ignore[no-untyped-def]
    LanguageModel.objects.create(name="llama3.2:latest", enabled=True)
    settings.OLLAMA_BASE_URL = "http://127.0.0.1:9"
    response = chat_admin.get(MODELS)
    assert response.status_code == 200
    assert any("Could not ask what is loaded" in m for m in messages_of(response))
    sync_response = sync(chat_admin)
    assert any("Sync failed: Ollama is not reachable" in m for m in messages_of(sync_response))


# --- load, unload, delete ----------------------------------------------------------------------


def test_load_and_unload_send_the_right_keep_alive(
    chat_admin: Client, fake_ollama: FakeOllamaServer
) -> None:
    model = LanguageModel.objects.create(name="llama3.2:latest", enabled=True, keep_alive="10m")
    chat_admin.post(f"{MODELS}{model.pk}/load/")
    chat_admin.post(f"{MODELS}{model.pk}/unload/")
    chat_admin.post(
        MODELS, {"action": "preload_selected", "_selected_action": [model.pk]}, follow=True
    )
    bodies = [r.body for r in fake_ollama.requests_to("/api/chat")]
    assert bodies == [
        {"model": "llama3.2:latest", "messages": [], "keep_alive": "10m"},
        {"model": "llama3.2:latest", "messages": [], "keep_alive": 0},
        {"model": "llama3.2:latest", "messages": [], "keep_alive": "10m"},
    ]
    assert "llama3.2:latest" in fake_ollama.loaded


def test_keep_alive_in_seconds_goes_as_a_number(
    chat_admin: Client, fake_ollama: FakeOllamaServer
) -> None:
    model = LanguageModel.objects.create(name="llama3.2:latest", enabled=True, keep_alive="-1")
    chat_admin.post(f"{MODELS}{model.pk}/load/")
    assert fake_ollama.requests_to("/api/chat")[0].body == {
        "model": "llama3.2:latest",
        "messages": [],
        "keep_alive": -1,
    }
    assert "kept until unloaded" in text_of(chat_admin.get(MODELS))


def test_deleting_from_the_server_says_how_many_conversations_use_it(
    chat_admin: Client, fake_ollama: FakeOllamaServer
) -> None:
    sync(chat_admin)
    llama = LanguageModel.objects.get(name="llama3.2:latest")
    owner = make_user("ann")
    for title in ("one", "two"):
        Conversation.objects.create(owner=owner, title=title, model=llama, model_name=llama.name)

    confirm = text_of(chat_admin.get(f"{MODELS}{llama.pk}/delete-from-server/"))
    assert "2 conversations use it" in confirm
    assert "llama3.2:latest" in fake_ollama.models  # nothing happens on GET

    chat_admin.post(f"{MODELS}{llama.pk}/delete-from-server/")
    assert "llama3.2:latest" not in fake_ollama.models
    llama.refresh_from_db()
    assert (llama.installed, llama.enabled, llama.is_default) == (False, False, False)
    assert Conversation.objects.filter(model=llama).count() == 2
    # Their owner still opens them.
    viewer = Client()
    viewer.force_login(owner)
    first = Conversation.objects.get(title="one")
    page = viewer.get(f"/conversations/{first.pk}/")
    assert page.status_code == 200 and "one" in text_of(page)


# --- pull --------------------------------------------------------------------------------------


def wait_for_pull(pull_id: int, timeout: float = 10.0) -> ModelPull:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pull = ModelPull.objects.get(pk=pull_id)
        if pull.status != ModelPull.Status.RUNNING:
            return pull
        time.sleep(0.05)
    raise AssertionError(f"pull {pull_id} still running after {timeout} s")


def start_pull(client: Client, name: str) -> int:
    response = client.post(f"{MODELS}pull/", {"name": name})
    assert response.status_code == 302, response.content.decode()[:1000]
    match = re.search(r"/pull/(\d+)/$", response["Location"])
    assert match, response["Location"]
    return int(match.group(1))


def test_a_pull_shows_progress_and_ends_synced(
    chat_admin: Client, fake_ollama: FakeOllamaServer
) -> None:
    sync(chat_admin)  # not a fresh install: a pulled model arrives disabled
    fake_ollama.pull_step_seconds = 0.15
    pull_id = start_pull(chat_admin, "gemma3:1b")
    progress_page = f"{MODELS}pull/{pull_id}/"

    seen: set[int] = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        fragment = chat_admin.get(progress_page, headers={"HX-Request": "true"}).content.decode()
        percent = int(re.search(r'data-testid="pull-percent">(\d+)%', fragment).group(1))  # type: ignore[union-attr]
        seen.add(percent)
        if 'data-status="succeeded"' in fragment:
            break
        assert 'hx-trigger="every 1s"' in fragment  # the page keeps polling while it runs
        time.sleep(0.1)
    assert any(0 < p < 100 for p in seen), seen
    assert 100 in seen

    pull = ModelPull.objects.get(pk=pull_id)
    assert pull.status == ModelPull.Status.SUCCEEDED
    assert len(pull.layers) == 3
    assert all(layer["completed"] == layer["total"] for layer in pull.layers.values())
    assert pull.total_bytes == 815_319_791 + 12_403 + 485
    assert pull.sync_summary.startswith("1 added; 0 updated")
    gemma = LanguageModel.objects.get(name="gemma3:1b")
    assert gemma.installed and gemma.context_length == 32_768 and not gemma.enabled
    # A reload after the end shows the outcome, and stops polling.
    done = chat_admin.get(progress_page).content.decode()
    assert "Done: gemma3:1b is on the server" in done
    assert "every 1s" not in done


def test_pulling_an_unknown_model_says_so_in_words(chat_admin: Client) -> None:
    pull = wait_for_pull(start_pull(chat_admin, "no-such-model:7b"))
    assert pull.status == ModelPull.Status.FAILED
    assert "registry has no model called “no-such-model:7b”" in pull.error
    assert "file does not exist" in pull.error
    page = chat_admin.get(f"{MODELS}pull/{pull.pk}/").content.decode()
    assert 'data-testid="pull-error"' in page and "no-such-model:7b" in page


def test_pulling_with_ollama_down_says_so(chat_admin: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OLLAMA_BASE_URL = "http://127.0.0.1:9"
    pull = wait_for_pull(start_pull(chat_admin, "gemma3:1b"))
    assert pull.status == ModelPull.Status.FAILED
    assert pull.error.startswith("Ollama is not reachable at http://127.0.0.1:9")


def test_cancel_stops_the_pull(chat_admin: Client, fake_ollama: FakeOllamaServer) -> None:
    fake_ollama.pull_step_seconds = 0.3
    pull_id = start_pull(chat_admin, "phi4-mini:latest")
    assert fake_ollama.wait_for(lambda: bool(fake_ollama.requests_to("/api/pull")))
    time.sleep(0.7)
    chat_admin.post(f"{MODELS}pull/{pull_id}/cancel/")
    pull = wait_for_pull(pull_id, timeout=5)
    assert pull.status == ModelPull.Status.CANCELLED
    request = fake_ollama.requests_to("/api/pull")[0]
    assert fake_ollama.wait_for(lambda: request.disconnected)
    assert not request.finished
    assert "phi4-mini:latest" not in fake_ollama.models
    assert not LanguageModel.objects.filter(name="phi4-mini:latest").exists()


def test_a_pull_whose_worker_died_shows_as_interrupted_and_can_be_cleared(
    chat_admin: Client,
) -> None:
    pull = ModelPull.objects.create(
        name="gemma3:1b", heartbeat_at=timezone.now() - timedelta(minutes=2)
    )
    page = chat_admin.get(f"{MODELS}pull/{pull.pk}/").content.decode()
    assert "Interrupted: the server restarted" in page
    chat_admin.post(f"{MODELS}pull/{pull.pk}/cancel/")
    pull.refresh_from_db()
    assert pull.status == ModelPull.Status.CANCELLED


def test_pulling_the_same_model_twice_follows_the_running_pull(
    chat_admin: Client, fake_ollama: FakeOllamaServer
) -> None:
    fake_ollama.pull_step_seconds = 0.2
    first = start_pull(chat_admin, "gemma3:1b")
    second = start_pull(chat_admin, "gemma3:1b")
    assert first == second
    wait_for_pull(first)


# --- the options form --------------------------------------------------------------------------


def model_form(model: LanguageModel, **changes: str) -> dict[str, str]:
    form = {
        "name": model.name,
        "display_name": model.display_name,
        "enabled": "on",
        "position": "0",
        "keep_alive": "",
        "user_temperature": "on",
        "user_temperature_min": "0",
        "user_temperature_max": "2",
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def test_default_options_are_typed_fields(chat_admin: Client) -> None:
    model = LanguageModel.objects.create(name="llama3.2:latest", enabled=True)
    response = chat_admin.post(
        f"{MODELS}{model.pk}/change/",
        model_form(
            model,
            option_temperature="0.4",
            option_top_k="20",
            option_stop="###\nUser:",
            option_use_mmap="false",
            option_num_ctx="4096",
            keep_alive="5m",
        ),
    )
    assert response.status_code == 302, text_of(response)[:3000]
    model.refresh_from_db()
    assert model.default_options == {
        "temperature": 0.4,
        "top_k": 20,
        "stop": ["###", "User:"],
        "use_mmap": False,
        "num_ctx": 4096,
    }
    assert model.keep_alive == "5m"
    # The form shows them back as they were saved.
    page = chat_admin.get(f"{MODELS}{model.pk}/change/").content.decode()
    assert 'name="option_top_k" value="20"' in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("option_top_k", "many", "Enter a whole number."),
        ("option_temperature", "warm", "Enter a number."),
        ("option_top_p", "1.5", "Ensure this value is less than or equal to 1"),
        ("option_num_ctx", "0", "Ensure this value is greater than or equal to 1"),
        ("keep_alive", "5 minutes", "Keep-alive must be a number of seconds"),
        ("user_temperature_min", "-1", "The minimum for 'temperature' must be at least 0"),
        ("user_temperature_min", "1.5", "the minimum is above the maximum"),
    ],
)
def test_wrong_options_are_refused_with_a_message(
    chat_admin: Client, field: str, value: str, message: str
) -> None:
    model = LanguageModel.objects.create(name="llama3.2:latest", enabled=True)
    response = chat_admin.post(
        f"{MODELS}{model.pk}/change/",
        model_form(model, **{field: value, "user_temperature_max": "1"}),
    )
    assert response.status_code == 200
    assert message in html.unescape(response.content.decode())
    model.refresh_from_db()
    assert model.default_options == {}


def test_unknown_option_names_and_wrong_types_are_refused_by_the_model() -> None:
    for options, message in [
        ({"temprature": 0.5}, "'temprature' is not an Ollama option"),
        ({"mirostat": 1}, "removed from Ollama in v0.7.0"),
        ({"num_ctx": "4096"}, "'num_ctx' must be a whole number"),
        ({"use_mmap": 1}, "'use_mmap' must be true or false"),
        ({"stop": "###"}, "'stop' must be a list of strings"),
    ]:
        with pytest.raises(ValidationError, match=re.escape(message)):
            validate_options(options)
    model = LanguageModel(name="x", default_options={"temprature": 0.5})
    with pytest.raises(ValidationError, match="not an Ollama option"):
        model.full_clean()


def test_only_one_model_is_the_default(chat_admin: Client) -> None:
    LanguageModel.objects.create(name="llama3.2:latest", enabled=True, is_default=True)
    other = LanguageModel.objects.create(name="qwen3:latest", enabled=True)
    response = chat_admin.post(f"{MODELS}{other.pk}/change/", model_form(other, is_default="on"))
    assert "Another model is the default already." in response.content.decode()
    assert LanguageModel.objects.filter(is_default=True).count() == 1


# --- who may do what ---------------------------------------------------------------------------


def test_the_chat_admins_group_ships_with_the_right_permissions() -> None:
    codenames = set(
        Group.objects.get(name=CHAT_ADMINS).permissions.values_list("codename", flat=True)
    )
    assert {
        "change_languagemodel",
        "manage_ollama_server",
        "change_systemprompt",
        "view_conversation",
        "view_usage",
    } <= codenames
    assert "change_conversation" not in codenames and "change_user" not in codenames


def test_staff_without_the_permissions_cannot_change_models(
    client: Client, fake_ollama: FakeOllamaServer
) -> None:
    model = LanguageModel.objects.create(name="llama3.2:latest", enabled=True)
    viewer = make_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_languagemodel"))
    client.force_login(viewer)
    assert client.get(MODELS).status_code == 200  # may look
    for url in ("sync/", "pull/", f"{model.pk}/load/", f"{model.pk}/unload/"):
        assert client.post(f"{MODELS}{url}", {"name": "gemma3:1b"}).status_code == 403, url
    assert client.get(f"{MODELS}{model.pk}/delete-from-server/").status_code == 403
    response = client.post(f"{MODELS}{model.pk}/change/", model_form(model, enabled=""))
    assert response.status_code == 403
    model.refresh_from_db()
    assert model.enabled
    # The list asked what is loaded; nothing else reached the server.
    assert {(r.method, r.path) for r in fake_ollama.requests} == {("GET", "/api/ps")}
    assert not ModelPull.objects.exists()


def test_a_user_who_is_not_staff_gets_nothing(client: Client, user: User) -> None:
    model = LanguageModel.objects.create(name="llama3.2:latest", enabled=True)
    client.force_login(user)
    for url in ("", "sync/", "pull/", f"{model.pk}/change/", f"{model.pk}/load/"):
        response = client.post(f"{MODELS}{url}")
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url


# --- what users may change ---------------------------------------------------------------------


def test_users_may_change_only_what_the_admin_allows_within_its_bounds(
    chat_admin: Client, user: User
) -> None:
    model = LanguageModel.objects.create(name="llama3.2:latest", enabled=True)
    response = chat_admin.post(
        f"{MODELS}{model.pk}/change/",
        model_form(
            model,
            user_temperature="",
            user_top_k="on",
            user_top_k_min="10",
            user_top_k_max="50",
            option_top_k="20",
        ),
    )
    assert response.status_code == 302, text_of(response)[:2000]
    model.refresh_from_db()
    assert model.user_options == {"top_k": {"min": 10, "max": 50}}

    conversation = Conversation.objects.create(
        owner=user, model=model, model_name=model.name, options={"temperature": 1.9}
    )
    owner = Client()
    owner.force_login(user)
    page = owner.get(f"/conversations/{conversation.pk}/").content.decode()
    settings_form = page.split('data-testid="settings-form"')[1].split("</form>")[0]
    assert 'name="top_k"' in settings_form and 'min="10" max="50"' in settings_form
    assert 'name="temperature"' not in settings_form
    assert "Model default: 20." in settings_form

    url = f"/conversations/{conversation.pk}/settings/"
    refused = owner.post(url, {"top_k": "60"}, headers={"HX-Request": "true"})
    assert refused.status_code == 400
    assert "Ensure this value is less than or equal to 50." in refused.content.decode()
    assert owner.post(url, {"top_k": "30", "temperature": "1.5"}).status_code == 200
    conversation.refresh_from_db()
    assert conversation.options == {"temperature": 1.9, "top_k": 30}

    # What Ollama is asked with: the allowed override only; the old temperature no longer counts.
    reply = conversation.messages.create(role="assistant", status="streaming")
    options = reply_request(conversation, reply).options
    assert options["top_k"] == 30 and "temperature" not in options

    # An admin who narrows the bounds later narrows existing conversations too.
    model.user_options = {"top_k": {"min": 10, "max": 25}}
    model.save()
    conversation.refresh_from_db()
    assert reply_request(conversation, reply).options["top_k"] == 25


def test_a_disabled_model_leaves_the_pickers_but_its_conversations_still_open(
    chat_admin: Client, user: User
) -> None:
    llama = LanguageModel.objects.create(name="llama3.2:latest", enabled=True, is_default=True)
    qwen = LanguageModel.objects.create(name="qwen3:latest", display_name="Qwen 3", enabled=True)
    LanguageModel.objects.create(name="gone:latest", enabled=True, installed=False)
    conversation = Conversation.objects.create(
        owner=user, title="With Qwen", model=qwen, model_name=qwen.name
    )
    form = {
        "form-TOTAL_FORMS": "2",
        "form-INITIAL_FORMS": "2",
        "form-0-id": str(llama.pk),
        "form-0-enabled": "on",
        "form-1-id": str(qwen.pk),
        "_save": "Save",
    }
    response = chat_admin.post(f"{MODELS}?o=1", form)
    assert response.status_code == 302, text_of(response)[:2000]
    qwen.refresh_from_db()
    assert not qwen.enabled

    owner = Client()
    owner.force_login(user)
    home = owner.get("/").content.decode()
    picker = home.split('data-testid="model-select"')[1].split("</select>")[0]
    assert "llama3.2:latest" in picker or "llama3.2" in picker
    assert "Qwen 3" not in picker and "gone:latest" not in picker
    page = owner.get(f"/conversations/{conversation.pk}/")
    assert page.status_code == 200 and "With Qwen" in text_of(page)
