"""Transcripts out of the database: Markdown, JSON, plain text and printable HTML.

Each format is a small function over the same data, ``Transcript``. JSON is the backup format
(see docs/export.md for its schema); importing.py reads it back.
"""

from __future__ import annotations

import base64
import io
import json
import re
import textwrap
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from conversations.models import Conversation, Message, MessageImage
from conversations.rendering import code_stylesheet, render_markdown

SCHEMA = "chatsite.conversation-export/v1"
FILENAME_LENGTH = 60
TEXT_WIDTH = 78

STATUS_NOTES = {
    Message.Status.STOPPED: "Stopped before the end.",
    Message.Status.ERROR: "Failed",
    Message.Status.INTERRUPTED: "Interrupted",
    Message.Status.STREAMING: "Still being written when exported.",
}


@dataclass(frozen=True)
class Transcript:
    conversation: Conversation
    messages: list[Message]
    exported_at: datetime


def conversations_for_export(queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """Everything a transcript shows, in a fixed number of queries per batch."""
    return queryset.select_related("system_prompt_version").prefetch_related(
        Prefetch("messages", queryset=Message.objects.prefetch_related("images"))
    )


def in_batches(queryset: QuerySet[Conversation], size: int = 50) -> Iterator[Conversation]:
    """Every conversation of ``queryset``, read ``size`` at a time with their messages and
    images, so memory holds one batch whatever the total (keyset pagination on the id)."""
    last = 0
    while True:
        batch = list(conversations_for_export(queryset.filter(pk__gt=last).order_by("pk"))[:size])
        if not batch:
            return
        yield from batch
        last = batch[-1].pk
        for conversation in batch:
            _forget_prefetched(conversation)


def _forget_prefetched(conversation: Conversation) -> None:
    """Prefetching links a conversation to its messages and back, and messages to their images
    and back; an image's file object links back to the image. Such cycles outlive their batch
    until a full garbage collection, which a big process runs rarely: memory would grow with
    every batch. Cutting the links lets each batch be freed as soon as the next one is read."""
    for message in getattr(conversation, "_prefetched_objects_cache", {}).get("messages", []):
        for image in getattr(message, "_prefetched_objects_cache", {}).get("images", []):
            # The file's name, as loaded from the database; Django wraps it again if asked.
            vars(image)["file"] = image.file.name
        vars(message).pop("_prefetched_objects_cache", None)
    vars(conversation).pop("_prefetched_objects_cache", None)


def transcript_of(conversation: Conversation, *, exported_at: datetime | None = None) -> Transcript:
    messages = conversation.messages.all()
    if "messages" not in getattr(conversation, "_prefetched_objects_cache", {}):
        messages = messages.prefetch_related("images")
    return Transcript(conversation, list(messages), exported_at or timezone.now())


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def filename_for(conversation: Conversation, extension: str) -> str:
    """A file name from the title: slugged (no quotes, slashes or newlines), bounded."""
    stem = slugify(conversation.title, allow_unicode=True)[:FILENAME_LENGTH].strip("-_")
    return f"{stem or 'conversation'}-{conversation.pk}.{extension}"


def _stats_line(message: Message) -> str:
    parts = []
    if message.eval_count:
        parts.append(f"{message.eval_count} tokens")
    if message.tokens_per_second:
        parts.append(f"{message.tokens_per_second:.1f} tokens/s")
    if message.done_reason:
        parts.append(f"done: {message.done_reason}")
    return " · ".join(parts)


def _status_note(message: Message) -> str:
    note = STATUS_NOTES.get(Message.Status(message.status), "")
    if message.error:
        note = f"{note}: {message.error}" if note else message.error
    return note


def _image_label(image: MessageImage) -> str:
    kind = image.content_type.split("/")[-1].upper()
    return f"{image.original_name or 'image'} ({kind}, {image.width}×{image.height})"


# --- Markdown --------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def inert_html(text: str) -> str:
    """Markdown that no viewer can turn into live HTML: a ``<`` that would open a tag is
    written as ``&lt;`` (which renders as ``<``), except inside code, where it is already text."""
    lines, fence = [], ""
    for line in text.split("\n"):
        opening = _FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = ""
            lines.append(line)
            continue
        if opening:
            fence = opening.group(1)
            lines.append(line)
            continue
        # Outside code spans only: the odd pieces of a split on backticks are code.
        pieces = line.split("`")
        for index in range(0, len(pieces), 2):
            pieces[index] = _TAG_START.sub("&lt;", pieces[index])
        lines.append("`".join(pieces))
    return "\n".join(lines)


def to_markdown(transcript: Transcript) -> str:
    conversation = transcript.conversation
    title = " ".join(conversation.title.split())
    lines = [f"# {title}", ""]
    lines += [f"- **Model:** {conversation.model_name}"]
    if conversation.system_prompt_name:
        version = conversation.system_prompt_version
        suffix = f" (version {version.number})" if version else ""
        lines.append(f"- **System prompt:** {conversation.system_prompt_name}{suffix}")
    lines += [
        f"- **Created:** {iso(conversation.created_at)}",
        f"- **Exported:** {iso(transcript.exported_at)}",
        "",
    ]
    if conversation.system_prompt_text:
        quoted = "\n".join(
            f"> {line}".rstrip() for line in conversation.system_prompt_text.splitlines()
        )
        lines += ["> **System prompt**", ">", quoted, ""]
    for message in transcript.messages:
        who = message.role.capitalize()
        model = f" · {message.model_name}" if message.role == Message.Role.ASSISTANT else ""
        lines += ["---", "", f"### {who}{model} · {iso(message.created_at)}", ""]
        if message.thinking:
            lines += [
                "<details><summary>Thinking</summary>",
                "",
                inert_html(message.thinking.strip()),
                "",
                "</details>",
                "",
            ]
        if message.content:
            lines += [inert_html(message.content.rstrip()), ""]
        for image in message.images.all():
            lines += [f"*Image: {_image_label(image)}*", ""]
        note = _status_note(message)
        if note:
            lines += [f"**⚠ {note}**", ""]
        stats = _stats_line(message)
        if stats:
            lines += [f"<sub>{stats}</sub>", ""]
    return "\n".join(lines).rstrip() + "\n"


# --- JSON ------------------------------------------------------------------------------------


def _image_json(image: MessageImage) -> dict[str, Any]:
    with image.file.open("rb") as file:
        data = base64.b64encode(file.read()).decode("ascii")
    return {
        "name": image.original_name,
        "content_type": image.content_type,
        "width": image.width,
        "height": image.height,
        "size": image.size,
        "data": data,
    }


def to_json_document(transcript: Transcript) -> dict[str, Any]:
    conversation = transcript.conversation
    version = conversation.system_prompt_version
    return {
        "schema": SCHEMA,
        "exported_at": iso(transcript.exported_at),
        "conversation": {
            "title": conversation.title,
            "model": conversation.model_name,
            "created_at": iso(conversation.created_at),
            "updated_at": iso(conversation.updated_at),
            "pinned": conversation.pinned,
            "archived": conversation.archived,
            "options": conversation.options,
            "system_prompt": {
                "name": conversation.system_prompt_name,
                "version": version.number if version else None,
                "text": conversation.system_prompt_text,
            },
            "messages": [
                {
                    "role": message.role,
                    "content": message.content,
                    "thinking": message.thinking,
                    "status": message.status,
                    "error": message.error,
                    "model": message.model_name,
                    "created_at": iso(message.created_at),
                    "history_dropped": message.history_dropped,
                    "stats": message.stats(),
                    "images": [_image_json(image) for image in message.images.all()],
                }
                for message in transcript.messages
            ],
        },
    }


def to_json(transcript: Transcript) -> str:
    return json.dumps(to_json_document(transcript), ensure_ascii=False, indent=2) + "\n"


# --- plain text ------------------------------------------------------------------------------


def _wrapped(text: str, indent: str = "  ") -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(
            paragraph,
            TEXT_WIDTH,
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=True,
            replace_whitespace=False,
        ) or [""]
    return lines


def to_text(transcript: Transcript) -> str:
    conversation = transcript.conversation
    title = " ".join(conversation.title.split())
    lines = [title, "=" * min(len(title), TEXT_WIDTH), f"Model: {conversation.model_name}"]
    if conversation.system_prompt_name:
        lines.append(f"System prompt: {conversation.system_prompt_name}")
    lines += [
        f"Created: {iso(conversation.created_at)}",
        f"Exported: {iso(transcript.exported_at)}",
        "",
    ]
    if conversation.system_prompt_text:
        lines += ["SYSTEM PROMPT:", *_wrapped(conversation.system_prompt_text), ""]
    for message in transcript.messages:
        role = message.role.upper()
        model = f", {message.model_name}" if message.role == Message.Role.ASSISTANT else ""
        lines.append(f"{role} ({iso(message.created_at)}{model}):")
        if message.thinking:
            lines += ["  [thinking]", *_wrapped(message.thinking, "    "), "  [/thinking]"]
        if message.content:
            lines += _wrapped(message.content)
        for image in message.images.all():
            lines.append(f"  [image: {_image_label(image)}]")
        label = STATUS_NOTES.get(Message.Status(message.status), "")
        if label:
            lines.append(f"  [{label.rstrip('.').upper()}]")
        if message.error:
            lines += _wrapped(message.error)
        stats = _stats_line(message)
        if stats:
            lines.append(f"  ({stats})")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- HTML ------------------------------------------------------------------------------------


def to_html(transcript: Transcript) -> str:
    """One standalone, printable page: inline CSS, no scripts, images inline."""
    entries = []
    for message in transcript.messages:
        entries.append(
            {
                "message": message,
                "body": render_markdown(message.content)
                if message.role == Message.Role.ASSISTANT
                else None,
                "note": _status_note(message),
                "stats": _stats_line(message),
                "images": [
                    {
                        "label": _image_label(image),
                        "src": f"data:{image.content_type};base64," + _image_json(image)["data"],
                    }
                    for image in message.images.all()
                ],
            }
        )
    return render_to_string(
        "conversations/export.html",
        {
            "transcript": transcript,
            "conversation": transcript.conversation,
            "entries": entries,
            "code_css": code_stylesheet(),
            "exported_at": iso(transcript.exported_at),
            "created_at": iso(transcript.conversation.created_at),
        },
    )


@dataclass(frozen=True)
class Format:
    extension: str
    content_type: str
    render: Callable[[Transcript], str]


FORMATS: dict[str, Format] = {
    "md": Format("md", "text/markdown; charset=utf-8", to_markdown),
    "json": Format("json", "application/json; charset=utf-8", to_json),
    "txt": Format("txt", "text/plain; charset=utf-8", to_text),
    "html": Format("html", "text/html; charset=utf-8", to_html),
}


def export_entries(
    conversations: Iterable[Conversation], formats: list[str]
) -> Iterator[tuple[str, bytes]]:
    """(file name, content) for each conversation and format, one conversation at a time."""
    for conversation in conversations:
        transcript = transcript_of(conversation)
        for name in formats:
            chosen = FORMATS[name]
            yield filename_for(conversation, chosen.extension), chosen.render(transcript).encode()


class _Sink(io.RawIOBase):
    """An unseekable file that hands over what was written to it: zipfile then writes data
    descriptors, so a zip can stream without ever being whole in memory."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def zip_stream(entries: Iterable[tuple[str, bytes]]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
            yield sink.take()
    yield sink.take()
