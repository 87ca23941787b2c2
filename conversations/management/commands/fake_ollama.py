"""Serve the project's fake Ollama (see conversations/fake_ollama) until stopped."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from conversations.fake_ollama import FakeOllamaServer, default_catalogue


class Command(BaseCommand):
    help = "Serve a fake Ollama server on loopback for tests and demos, until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=11434)
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
        parser.add_argument("--log", type=Path, default=None, help="Append each request, as JSON.")

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        tokens_per_second: float | None,
        reply_tokens: int | None,
        log: Path | None,
        **options: Any,
    ) -> None:
        models = default_catalogue()
        for model in models:
            if tokens_per_second is not None and model.name != "fast:latest":
                model.tokens_per_second = tokens_per_second
            if reply_tokens is not None:
                model.reply_tokens = reply_tokens
        server = FakeOllamaServer(host, port, models, log_path=log)

        def announce() -> None:
            self.stdout.write(
                f"Fake Ollama listening on {server.url} with "
                f"{', '.join(m.name for m in models)}. Stop it with Ctrl+C."
            )
            self.stdout.flush()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(server.serve_forever(on_ready=announce))
