"""Talking to Ollama: the client, its typed results and its errors."""

from __future__ import annotations

from conversations.ollama.client import OllamaClient
from conversations.ollama.errors import (
    BadRequest,
    MalformedResponse,
    ModelNotFound,
    OllamaError,
    OllamaResponseError,
    OllamaServerError,
    OllamaUnreachable,
    ServerBusy,
    StreamError,
    StreamInterrupted,
    StreamStalled,
)
from conversations.ollama.shared import close_client, get_client
from conversations.ollama.types import (
    ChatChunk,
    ChatMessage,
    GenerateResult,
    LocalModel,
    Metrics,
    ModelDetails,
    PullProgress,
    RunningModel,
    ShowResult,
    ToolCall,
)

__all__ = [
    "BadRequest",
    "ChatChunk",
    "ChatMessage",
    "GenerateResult",
    "LocalModel",
    "MalformedResponse",
    "Metrics",
    "ModelDetails",
    "ModelNotFound",
    "OllamaClient",
    "OllamaError",
    "OllamaResponseError",
    "OllamaServerError",
    "OllamaUnreachable",
    "PullProgress",
    "RunningModel",
    "ServerBusy",
    "ShowResult",
    "StreamError",
    "StreamInterrupted",
    "StreamStalled",
    "ToolCall",
    "close_client",
    "get_client",
]
