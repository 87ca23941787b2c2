"""Downloading a model onto the Ollama server (/api/pull) in the background.

The admin who starts a pull gets a page that follows it; the pull itself runs in a thread of the
worker that received the request, with its own event loop and Ollama client, and records its
progress in its ModelPull row. The row is what survives a page reload, what any other worker
reads, and how a cancel reaches the thread: the thread checks the row twice a second.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import close_old_connections, transaction
from django.utils import timezone

from conversations.model_sync import models_sync
from conversations.models import ModelPull
from conversations.ollama import OllamaClient, OllamaError, PullProgress, StreamError
from conversations.ollama.shared import client_from_settings

logger = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.5
# Progress lines can come many times a second; the row is written at most this often.
PROGRESS_WRITE_SECONDS = 0.25


def pull_start(name: str, started_by: AbstractBaseUser | AnonymousUser | None) -> ModelPull:
    """Start pulling ``name`` unless a pull of it is running already; return the pull to follow."""
    name = name.strip()
    candidates = ModelPull.objects.filter(name__iexact=name, status=ModelPull.Status.RUNNING)
    running = [p for p in candidates if p.is_running]  # not a pull whose worker died
    if running:
        return running[0]
    user = started_by if isinstance(started_by, User) else None
    pull = ModelPull.objects.create(name=name, started_by=user)
    transaction.on_commit(lambda: _launch(pull.pk))
    return pull


def pull_cancel(pull: ModelPull) -> None:
    """Ask the pull to stop. A pull whose worker is gone (a restart) is marked at once."""
    if pull.is_stale:
        _finish(pull.pk, ModelPull.Status.CANCELLED, error="Cancelled.")
        return
    ModelPull.objects.filter(pk=pull.pk, status=ModelPull.Status.RUNNING).update(
        cancel_requested=True
    )


def _launch(pull_id: int) -> None:
    threading.Thread(
        target=_run_in_thread, args=(pull_id,), name=f"model-pull-{pull_id}", daemon=True
    ).start()


def _run_in_thread(pull_id: int) -> None:
    try:
        asyncio.run(pull_run(pull_id))
    finally:
        close_old_connections()


async def pull_run(pull_id: int, client: OllamaClient | None = None) -> ModelPull:
    """Pull to the end (success, error or cancel) and, on success, sync the model list."""
    if client is None:
        async with client_from_settings() as own_client:
            return await pull_run(pull_id, own_client)
    pull = await ModelPull.objects.aget(pk=pull_id)
    download = asyncio.create_task(_download(pull, client))
    last_heartbeat = time.monotonic()
    while not download.done():
        await asyncio.wait({download}, timeout=CANCEL_CHECK_SECONDS)
        if download.done():
            break
        if await ModelPull.objects.filter(pk=pull_id, cancel_requested=True).aexists():
            download.cancel()
            break
        if time.monotonic() - last_heartbeat >= ModelPull.HEARTBEAT_SECONDS:
            last_heartbeat = time.monotonic()
            await ModelPull.objects.filter(pk=pull_id).aupdate(heartbeat_at=timezone.now())
    try:
        await download
    except asyncio.CancelledError:
        return await sync_to_async(_finish)(
            pull_id, ModelPull.Status.CANCELLED, error="Cancelled: Ollama stopped downloading."
        )
    except OllamaError as error:
        return await sync_to_async(_finish)(
            pull_id, ModelPull.Status.FAILED, error=_in_words(pull.name, error)
        )
    except Exception:
        logger.exception("Pulling %s failed", pull.name)
        return await sync_to_async(_finish)(
            pull_id, ModelPull.Status.FAILED, error="The download failed: see the server's log."
        )
    try:
        summary = (await models_sync(client=client)).summary()
    except OllamaError as error:
        summary = f"Downloaded, but the model list could not be synced: {error}"
    return await sync_to_async(_finish)(pull_id, ModelPull.Status.SUCCEEDED, sync_summary=summary)


async def _download(pull: ModelPull, client: OllamaClient) -> None:
    layers: dict[str, dict[str, Any]] = dict(pull.layers)
    stage = ""
    written = 0.0
    async for progress in client.pull(pull.name):
        stage = progress.status
        _apply(layers, progress)
        if time.monotonic() - written >= PROGRESS_WRITE_SECONDS:
            written = time.monotonic()
            await ModelPull.objects.filter(pk=pull.pk).aupdate(
                stage=stage, layers=layers, heartbeat_at=timezone.now()
            )
    await ModelPull.objects.filter(pk=pull.pk).aupdate(stage=stage, layers=layers)


def _apply(layers: dict[str, dict[str, Any]], progress: PullProgress) -> None:
    if not progress.digest or progress.total is None:
        return
    layer = layers.setdefault(progress.digest, {"total": progress.total, "completed": 0})
    layer["total"] = progress.total
    # Ollama leaves "completed" out until it is above zero.
    layer["completed"] = progress.completed or layer.get("completed") or 0


def _in_words(name: str, error: OllamaError) -> str:
    if isinstance(error, StreamError) and "file does not exist" in error.server_message:
        return (
            f"Ollama's registry has no model called “{name}” (Ollama said: "
            f"{error.server_message}). Check the name and tag on ollama.com/library."
        )
    return str(error)


def _finish(
    pull_id: int, status: ModelPull.Status, *, error: str = "", sync_summary: str = ""
) -> ModelPull:
    ModelPull.objects.filter(pk=pull_id).update(
        status=status, error=error, sync_summary=sync_summary, finished_at=timezone.now()
    )
    return ModelPull.objects.get(pk=pull_id)
