"""A system prompt's versions as an admin reads them: each one with what changed from the one
before, line by line."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from conversations.models import SystemPrompt, SystemPromptVersion

LineKind = Literal["added", "removed", "context", "hunk"]


@dataclass(frozen=True)
class DiffLine:
    kind: LineKind
    text: str


@dataclass(frozen=True)
class VersionChange:
    version: SystemPromptVersion
    lines: list[DiffLine]


def _diff(before: str, after: str) -> list[DiffLine]:
    kinds: dict[str, LineKind] = {"+": "added", "-": "removed", " ": "context", "@": "hunk"}
    unified = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=2)
    # The first two lines are the ---/+++ file headers.
    return [DiffLine(kinds[line[0]], line[1:]) for line in list(unified)[2:] if line]


def version_history(prompt: SystemPrompt) -> list[VersionChange]:
    """Newest first (the one in force); the first version's diff is its whole text. One query."""
    versions = list(prompt.versions.select_related("created_by").order_by("number"))
    changes: list[VersionChange] = []
    before = ""
    for version in versions:
        changes.append(VersionChange(version, _diff(before, version.text)))
        before = version.text
    return changes[::-1]
