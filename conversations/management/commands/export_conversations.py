"""Export transcripts to a file (one conversation) or a zip (several)."""

from __future__ import annotations

import sys
from datetime import datetime, time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date

from conversations.export import (
    FORMATS,
    export_entries,
    filename_for,
    in_batches,
    transcript_of,
    zip_stream,
)
from conversations.models import Conversation


class Command(BaseCommand):
    help = "Export conversations as Markdown, JSON, text or HTML: one file, or a zip of several."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=sorted(FORMATS), required=True)
        parser.add_argument("--user", help="Only this user's conversations (username).")
        parser.add_argument("--since", help="Only conversations active on or after YYYY-MM-DD.")
        parser.add_argument(
            "--output",
            type=Path,
            help="File to write (.zip for several conversations); default: a name in this folder.",
        )

    def handle(
        self,
        *args: Any,
        format: str,
        user: str | None,
        since: str | None,
        output: Path | None,
        **options: Any,
    ) -> None:
        conversations = Conversation.objects.order_by("pk")
        if user is not None:
            owner = get_user_model()._default_manager.filter(username=user).first()
            if owner is None:
                raise CommandError(f"No user named {user!r}.")
            conversations = conversations.filter(owner=owner)
        if since is not None:
            day = parse_date(since)
            if day is None:
                raise CommandError(f"--since must be a date like 2026-01-31, got {since!r}.")
            start = timezone.make_aware(datetime.combine(day, time.min))
            conversations = conversations.filter(updated_at__gte=start)
        total = conversations.count()
        if total == 0:
            raise CommandError("No conversation matches: nothing exported.")

        chosen = FORMATS[format]
        if total == 1 and (output is None or output.suffix != ".zip"):
            conversation = conversations.get()
            path = output or Path(filename_for(conversation, chosen.extension))
            path.write_text(chosen.render(transcript_of(conversation)), encoding="utf-8")
        else:
            path = output or Path(f"conversations-{timezone.now():%Y-%m-%d}.zip")
            rows = in_batches(conversations)
            with path.open("wb") as archive:
                for done, chunk in enumerate(zip_stream(export_entries(rows, [format]))):
                    archive.write(chunk)
                    self._progress(min(done, total), total)
            self._progress(total, total, end="\n")
        self.stdout.write(f"Exported {total} conversation{'s' if total != 1 else ''} to {path}.")

    def _progress(self, done: int, total: int, end: str = "") -> None:
        """A bar on a terminal; nothing in a log or a pipe."""
        if not sys.stderr.isatty():
            return
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
        sys.stderr.flush()
