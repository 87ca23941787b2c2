"""Import or update the model list from Ollama (/api/tags + /api/show)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from conversations.ollama import OllamaError
from conversations.server_models import models_sync_now


class Command(BaseCommand):
    help = "Import or update the model list from the Ollama server at OLLAMA_HOST."

    def handle(self, *args: Any, **options: Any) -> None:
        # The same sync as the admin's "Sync from Ollama" button.
        try:
            report = models_sync_now()
        except OllamaError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Synced models from Ollama: {report.summary()}.")
