"""`manage.py sync_models` brings the model list in line with the Ollama server."""

from __future__ import annotations

import io
import socket
from typing import Any

import httpx
import pytest
from django.core.management import CommandError, call_command

from conversations.fake_ollama import FakeOllamaServer
from conversations.models import Conversation, LanguageModel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def use_fake(settings, fake_ollama: FakeOllamaServer) -> None:  # type: ignore[no-untyped-def]
    settings.OLLAMA_BASE_URL = fake_ollama.url


def sync() -> str:
    out = io.StringIO()
    call_command("sync_models", stdout=out)
    return out.getvalue()


def test_a_fresh_install_gets_the_servers_chat_models_enabled_and_a_default() -> None:
    output = sync()

    assert "10 added" in output
    qwen = LanguageModel.objects.get(name="qwen3:latest")
    assert qwen.enabled and qwen.installed
    assert qwen.capabilities == ["completion", "tools", "thinking"]
    assert qwen.context_length == 40_960
    assert (qwen.family, qwen.parameter_size, qwen.size) == ("qwen3", "8.2B", 5_225_388_164)
    # An embedding-only model cannot chat, so it is not offered.
    assert not LanguageModel.objects.get(name="nomic-embed-text:latest").enabled
    assert LanguageModel.objects.filter(is_default=True).count() == 1


def without_times(rows: list[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("synced_at", "updated_at")} for r in rows]


def test_syncing_twice_changes_nothing() -> None:
    sync()
    before = list(LanguageModel.objects.values())
    assert "0 added; 0 updated; 0 no longer on the server" in sync()
    after = list(LanguageModel.objects.values())
    assert without_times(after) == without_times(before)


def test_models_added_later_arrive_disabled(fake_ollama: FakeOllamaServer) -> None:
    sync()
    httpx.post(f"{fake_ollama.url}/api/pull", json={"model": "gemma3:1b", "stream": False})
    assert "1 added" in sync()
    assert not LanguageModel.objects.get(name="gemma3:1b").enabled


def test_a_model_gone_from_the_server_is_kept_as_not_installed(
    fake_ollama: FakeOllamaServer, user
) -> None:  # type: ignore[no-untyped-def]
    sync()
    model = LanguageModel.objects.get(name="llama3.2:latest")
    Conversation.objects.create(owner=user, model=model, model_name=model.name, title="Kept")
    httpx.request("DELETE", f"{fake_ollama.url}/api/delete", json={"model": "llama3.2"})

    assert "1 no longer on the server" in sync()
    model.refresh_from_db()
    assert not model.installed
    assert Conversation.objects.get(title="Kept").model == model


def test_changed_capabilities_are_updated(fake_ollama: FakeOllamaServer) -> None:
    sync()
    fake_ollama.model("llava").capabilities = ("completion", "vision", "tools")
    assert "1 updated" in sync()
    assert LanguageModel.objects.get(name="llava:latest").capabilities == [
        "completion",
        "vision",
        "tools",
    ]


def test_a_dead_ollama_stops_the_command_with_a_clear_message(settings) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.OLLAMA_BASE_URL = f"http://127.0.0.1:{port}"
    with pytest.raises(CommandError, match="Ollama is not reachable at http://127.0.0.1:"):
        sync()
    assert LanguageModel.objects.count() == 0
