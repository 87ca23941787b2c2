"""Import or update the model list from Ollama (/api/tags + /api/show)."""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from conversations.model_sync import SyncReport, models_sync
from conversations.ollama import OllamaError
from conversations.ollama.shared import client_from_settings


class Command(BaseCommand):
    help = "Import or update the model list from the Ollama server at OLLAMA_HOST."

    def handle(self, *args: Any, **options: Any) -> None:
        async def sync() -> SyncReport:
            async with client_from_settings() as client:
                return await models_sync(client=client)

        try:
            report = asyncio.run(sync())
        except OllamaError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Synced models from Ollama: {report.summary()}.")
