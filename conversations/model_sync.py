"""Bring the model list in line with what the Ollama server has (/api/tags + /api/show)."""

from __future__ import annotations

from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from conversations.models import LanguageModel
from conversations.ollama import LocalModel, OllamaClient, ShowResult


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{len(self.added)} added",
            f"{len(self.updated)} updated",
            f"{len(self.missing)} no longer on the server",
        ]
        if self.enabled:
            parts.append(f"enabled for a first start: {', '.join(self.enabled)}")
        return "; ".join(parts)


async def models_sync(*, client: OllamaClient) -> SyncReport:
    """Add the server's models (disabled, except on a fresh install), refresh their details and
    capabilities, and mark models the server no longer has as not installed (never deleted:
    conversations keep their history). Running it twice changes nothing the second time.

    Raises OllamaError when the server cannot be asked."""
    local = await client.tags()
    shown = {model.name: await client.show(model.name) for model in local}
    return await sync_to_async(_apply)(local, shown)


def _apply(local: list[LocalModel], shown: dict[str, ShowResult]) -> SyncReport:
    report = SyncReport()
    now = timezone.now()
    with transaction.atomic():
        existing = {m.name.lower(): m for m in LanguageModel.objects.select_for_update()}
        fresh_install = not existing
        for position, model in enumerate(local):
            show = shown[model.name]
            capabilities = list(show.capabilities or model.capabilities)
            values = {
                "capabilities": capabilities,
                "context_length": show.context_length or model.context_length,
                "installed": True,
                "size": model.size,
                "family": model.details.family,
                "parameter_size": model.details.parameter_size,
                "quantization_level": model.details.quantization_level,
            }
            row = existing.pop(model.name.lower(), None)
            if row is None:
                can_chat = LanguageModel.Capability.COMPLETION.value in capabilities
                row = LanguageModel(name=model.name, position=position, **values)
                row.enabled = fresh_install and can_chat
                row.synced_at = now
                row.save()
                report.added.append(row.name)
                if row.enabled:
                    report.enabled.append(row.name)
                continue
            if any(getattr(row, key) != value for key, value in values.items()):
                for key, value in values.items():
                    setattr(row, key, value)
                report.updated.append(row.name)
            row.synced_at = now
            row.save()
        for row in existing.values():
            if row.installed:
                row.installed = False
                row.save(update_fields=["installed", "updated_at"])
                report.missing.append(row.name)
        if fresh_install and report.enabled:
            first = LanguageModel.objects.get(name=report.enabled[0])
            first.is_default = True
            first.save(update_fields=["is_default", "updated_at"])
    return report
