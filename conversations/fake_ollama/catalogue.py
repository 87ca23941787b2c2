"""The fake's models: each one scripted to exercise one path of a client."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from conversations.fake_ollama.wire import now_utc

Behaviour = Literal[
    "normal",  # a deterministic reply (see replies.expected_reply)
    "thinking",  # thinks first (message.thinking), then answers
    "vision",  # describes the images it received
    "error",  # sends an {"error": ...} line after a few tokens
    "cut",  # drops the connection after a few tokens
    "stall",  # stops sending after a few tokens, keeping the connection open
    "busy",  # answers 503, as when Ollama's queue is full
    "embedding",  # an embedding-only model: chat is refused
]


@dataclass
class FakeModel:
    name: str
    behaviour: Behaviour = "normal"
    capabilities: tuple[str, ...] = ("completion", "tools")
    # 0 means as fast as possible.
    tokens_per_second: float = 100.0
    # Seconds before the first chunk (a model being loaded, a long prompt).
    first_token_delay: float = 0.0
    # None: the natural length of the reply; a number: exactly that many tokens.
    reply_tokens: int | None = None
    # For "error", "cut" and "stall": how many tokens come first.
    fail_after_tokens: int = 5
    # For benchmarks: streamed content token n is made by this as it is sent (say, the time),
    # so a client can tell how long each token took to reach it.
    token_at_send: Callable[[int], str] | None = None
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    size: int = 2_019_393_189
    context_length: int = 131_072
    embedding_length: int = 3072
    modified_at: datetime = field(default_factory=now_utc)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()


_THINKING = ("completion", "tools", "thinking")
_VISION = ("completion", "vision")


def default_catalogue() -> list[FakeModel]:
    """A fresh set of models, newest first (as /api/tags sorts them)."""
    start = now_utc()
    models = [
        FakeModel("llama3.2:latest"),
        FakeModel(
            "qwen3:latest",
            "thinking",
            _THINKING,
            family="qwen3",
            parameter_size="8.2B",
            size=5_225_388_164,
            context_length=40_960,
            embedding_length=4096,
        ),
        FakeModel(
            "llava:latest",
            "vision",
            _VISION,
            parameter_size="7B",
            size=4_733_363_377,
            context_length=32_768,
            embedding_length=4096,
        ),
        FakeModel("slow:latest", first_token_delay=3.0),
        FakeModel("fast:latest", tokens_per_second=0, reply_tokens=200),
        FakeModel("broken:latest", "error"),
        FakeModel("cutoff:latest", "cut"),
        FakeModel("stall:latest", "stall"),
        FakeModel("busy:latest", "busy"),
        FakeModel(
            "nomic-embed-text:latest",
            "embedding",
            ("embedding",),
            family="nomic-bert",
            parameter_size="137M",
            quantization_level="F16",
            size=274_302_450,
            context_length=2048,
            embedding_length=768,
        ),
    ]
    for age, model in enumerate(models):
        model.modified_at = start - timedelta(hours=age)
    return models


# Names the fake "registry" can pull, beyond what it starts with.
PULLABLE = {
    "gemma3:1b": FakeModel(
        "gemma3:1b",
        family="gemma3",
        parameter_size="999.89M",
        size=815_319_791,
        context_length=32_768,
        embedding_length=1152,
    ),
    "phi4-mini:latest": FakeModel(
        "phi4-mini:latest",
        family="phi3",
        parameter_size="3.8B",
        size=2_491_876_774,
        embedding_length=3072,
    ),
}
