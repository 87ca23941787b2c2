"""Serve the project's fake Ollama (see conversations/fake_ollama) until stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from conversations.fake_ollama import FakeModel, FakeOllamaServer, default_catalogue

# A clock model's reply reads like prose: paragraphs of this many words.
CLOCK_PARAGRAPH_TOKENS = 40


def clock_token(number: int) -> str:
    """Content token ``number`` of a clock model: ``t`` and the moment it is sent, in
    microseconds of the machine's monotonic clock, which every process on it shares."""
    separator = "" if number == 0 else "\n\n" if number % CLOCK_PARAGRAPH_TOKENS == 0 else " "
    return f"{separator}t{time.monotonic_ns() // 1000}"


def clock_model(spec: str) -> FakeModel:
    """``NAME:TOKENS_PER_SECOND:REPLY_TOKENS`` (0 tokens/s: as fast as possible)."""
    try:
        name, rate, length = spec.rsplit(":", 2)
        model = FakeModel(name, tokens_per_second=float(rate), reply_tokens=int(length))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{spec!r} is not NAME:TOKENS_PER_SECOND:REPLY_TOKENS"
        ) from None
    model.token_at_send = clock_token
    return model


class Command(BaseCommand):
    help = "Serve a fake Ollama server on loopback for tests and demos, until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=11434, help="0: a free port.")
        parser.add_argument(
            "--tokens-per-second",
            type=float,
            default=None,
            help="Speed of every model's replies (0: as fast as possible).",
        )
        parser.add_argument(
            "--reply-tokens",
            type=int,
            default=None,
            help="Length of every model's replies in tokens (default: their natural length).",
        )
        parser.add_argument(
            "--clock-model",
            type=clock_model,
            action="append",
            default=[],
            metavar="NAME:TOKENS_PER_SECOND:REPLY_TOKENS",
            help=(
                "Add a model for benchmarks whose every token is the moment it was sent "
                "(t + microseconds of the monotonic clock). Repeat for several."
            ),
        )
        parser.add_argument("--log", type=Path, default=None, help="Append each request, as JSON.")

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        tokens_per_second: float | None,
        reply_tokens: int | None,
        clock_model: list[FakeModel],
        log: Path | None,
        **options: Any,
    ) -> None:
        models = default_catalogue()
        for model in models:
            if tokens_per_second is not None and model.name != "fast:latest":
                model.tokens_per_second = tokens_per_second
            if reply_tokens is not None:
                model.reply_tokens = reply_tokens
        server = FakeOllamaServer(host, port, [*models, *clock_model], log_path=log)

        def announce() -> None:
            self.stdout.write(
                f"Fake Ollama listening on {server.url} with "
                f"{', '.join(m.name for m in server.models.values())}. Stop it with Ctrl+C."
            )
            self.stdout.flush()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(server.serve_forever(on_ready=announce))
