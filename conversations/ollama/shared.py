"""The process's Ollama client: one per event loop, closed when the server shuts down."""

from __future__ import annotations

import asyncio
import logging
import weakref

from django.conf import settings

from conversations.ollama.client import OllamaClient

logger = logging.getLogger(__name__)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OllamaClient] = (
    weakref.WeakKeyDictionary()
)


def client_from_settings() -> OllamaClient:
    return OllamaClient(
        settings.OLLAMA_BASE_URL,
        connect_timeout=settings.OLLAMA_CONNECT_TIMEOUT,
        stall_timeout=settings.OLLAMA_STALL_TIMEOUT,
    )


def get_client() -> OllamaClient:
    """The running loop's long-lived client (an httpx pool belongs to one event loop)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = client_from_settings()
    return client


async def close_client() -> None:
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
        logger.info("Closed the connection pool to Ollama at %s", client.base_url)
