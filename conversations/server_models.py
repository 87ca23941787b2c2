"""What admins do to models on the Ollama server itself: see what is loaded, load, unload,
delete. Each call opens its own short-lived client: these run from the admin's synchronous
views, outside any long-lived event loop."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from asgiref.sync import async_to_sync
from django.utils.dateparse import parse_datetime

from conversations.model_sync import SyncReport, models_sync
from conversations.models import LanguageModel
from conversations.ollama import ModelNotFound, OllamaClient
from conversations.ollama.shared import client_from_settings

T = TypeVar("T")


@dataclass(frozen=True)
class Loaded:
    """A model in Ollama's memory now (/api/ps) and when Ollama will unload it."""

    name: str
    expires_at: datetime | None
    size_vram: int | None


def _call(work: Callable[[OllamaClient], Awaitable[T]]) -> T:
    async def run() -> T:
        async with client_from_settings() as client:
            return await work(client)

    return async_to_sync(run)()


def loaded_models() -> dict[str, Loaded]:
    """By lower-cased name (Ollama matches names without regard to case).

    Raises OllamaError when the server cannot be asked."""

    async def ps(client: OllamaClient) -> dict[str, Loaded]:
        return {
            running.name.lower(): Loaded(
                running.name,
                parse_datetime(running.expires_at) if running.expires_at else None,
                running.size_vram,
            )
            for running in await client.ps()
        }

    return _call(ps)


def model_load(model: LanguageModel) -> None:
    """Load into memory now, for as long as the model's keep_alive says (the server's default
    when it has none)."""

    async def load(client: OllamaClient) -> None:
        await client.load(model.name, keep_alive=model.keep_alive_for_request())

    _call(load)


def model_unload(model: LanguageModel) -> None:
    """Free its memory now (``keep_alive: 0``)."""

    async def unload(client: OllamaClient) -> None:
        await client.unload(model.name)

    _call(unload)


def model_delete_from_server(model: LanguageModel) -> None:
    """Delete the weights from the Ollama server. The row stays, marked not installed and no
    longer offered: conversations with it keep their history."""

    async def delete(client: OllamaClient) -> None:
        # Gone already is the outcome the admin asked for.
        with contextlib.suppress(ModelNotFound):
            await client.delete(model.name)

    _call(delete)
    model.installed = False
    model.enabled = False
    model.is_default = False
    model.save(update_fields=["installed", "enabled", "is_default", "updated_at"])


def models_sync_now() -> SyncReport:
    async def sync(client: OllamaClient) -> SyncReport:
        return await models_sync(client=client)

    return _call(sync)
