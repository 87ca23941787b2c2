"""Run a system prompt that may not be saved yet against a model, for an admin to read the
answer before making the prompt live. Streamed as newline-delimited JSON: ``{"content": …}``
pieces, then ``{"done": true}`` or ``{"error": …}``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from conversations.models import LanguageModel
from conversations.ollama import ChatMessage, OllamaError
from conversations.ollama.shared import client_from_settings


def _line(**values: object) -> bytes:
    return (json.dumps(values) + "\n").encode()


async def preview_stream(model: LanguageModel, system: str, message: str) -> AsyncIterator[bytes]:
    messages = [ChatMessage("system", system)] if system.strip() else []
    messages.append(ChatMessage("user", message))
    try:
        async with client_from_settings() as client:
            async for chunk in client.chat_stream(
                model=model.name,
                messages=messages,
                options=model.default_options or None,
                keep_alive=model.keep_alive_for_request(),
            ):
                if chunk.content:
                    yield _line(content=chunk.content)
    except OllamaError as error:
        yield _line(error=str(error))
        return
    yield _line(done=True)
