"""Transcripts back into the database, from the JSON export (one file, or a zip of them).

Everything is checked before anything is written, and everything is written in one
transaction: a file is imported whole or not at all.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from django.db import transaction

from conversations.attachments import inspect_image
from conversations.export import SCHEMA
from conversations.models import Conversation, LanguageModel, Message
from conversations.ollama_options import validate_options
from conversations.services import message_image_attach

MAX_ZIP_MEMBERS = 10_000
STAT_FIELDS = (
    "prompt_eval_count", "eval_count", "total_duration", "load_duration",
    "prompt_eval_duration", "eval_duration",
)  # fmt: skip


class ImportRefused(Exception):
    """The file cannot be imported; the message says what is wrong with it."""


@dataclass
class _Image:
    name: str
    data: bytes


@dataclass
class _Message:
    fields: dict[str, Any]
    images: list[_Image] = field(default_factory=list)


@dataclass
class _Conversation:
    fields: dict[str, Any]
    messages: list[_Message]


def import_upload(*, owner: User, upload: UploadedFile[bytes]) -> list[Conversation]:
    limit = settings.CHAT_MAX_IMPORT_BYTES
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise ImportRefused(f"The file is larger than the limit of {limit / 1_048_576:.0f} MB.")
    documents = _documents(data, upload.name or "upload")
    parsed = [_parse(name, document) for name, document in documents]
    with transaction.atomic():
        return [_create(owner, conversation) for conversation in parsed]


def _documents(data: bytes, name: str) -> list[tuple[str, Any]]:
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".json")]
            if not members:
                raise ImportRefused("The zip holds no .json export.")
            if len(members) > MAX_ZIP_MEMBERS:
                raise ImportRefused(f"The zip holds more than {MAX_ZIP_MEMBERS} exports.")
            # A zip bomb expands far beyond its size: refuse before reading.
            if sum(m.file_size for m in members) > 4 * settings.CHAT_MAX_IMPORT_BYTES:
                raise ImportRefused("The zip expands to more than the import limit allows.")
            return [(m.filename, _json(archive.read(m), m.filename)) for m in members]
    return [(name, _json(data, name))]


def _json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ImportRefused(f"{name} is not a JSON export: {error}") from None


def _require(condition: bool, name: str, problem: str) -> None:
    if not condition:
        raise ImportRefused(f"{name}: {problem}")


def _text(value: Any, name: str, what: str, *, limit: int | None = None) -> str:
    value = "" if value is None else value
    _require(isinstance(value, str), name, f"{what} must be text")
    _require(limit is None or len(value) <= limit, name, f"{what} is longer than {limit}")
    return str(value)


def _moment(value: Any, name: str, what: str) -> datetime:
    _require(isinstance(value, str), name, f"{what} must be an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ImportRefused(f"{name}: {what} is not an ISO 8601 time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse(name: str, document: Any) -> _Conversation:
    _require(isinstance(document, dict), name, "the file is not an export object")
    _require(
        document.get("schema") == SCHEMA,
        name,
        f"unknown schema {document.get('schema')!r} (expected {SCHEMA!r})",
    )
    data = document.get("conversation")
    _require(isinstance(data, dict), name, "'conversation' is missing")
    options = data.get("options") or {}
    try:
        validate_options(options)
    except ValidationError as error:
        raise ImportRefused(f"{name}: options: {' '.join(error.messages)}") from None
    prompt = data.get("system_prompt") or {}
    _require(isinstance(prompt, dict), name, "'system_prompt' must be an object")
    messages = data.get("messages")
    _require(isinstance(messages, list), name, "'messages' must be a list")
    conversation = {
        "title": _text(data.get("title"), name, "the title", limit=200) or "Imported conversation",
        "model_name": _text(data.get("model"), name, "the model", limit=200),
        "created_at": _moment(data.get("created_at"), name, "created_at"),
        "updated_at": _moment(data.get("updated_at") or data.get("created_at"), name, "updated_at"),
        "pinned": bool(data.get("pinned")),
        "archived": bool(data.get("archived")),
        "options": options,
        "system_prompt_name": _text(prompt.get("name"), name, "the system prompt name", limit=100),
        "system_prompt_text": _text(prompt.get("text"), name, "the system prompt"),
    }
    return _Conversation(
        conversation,
        [_parse_message(f"{name}, message {n}", m) for n, m in enumerate(messages, start=1)],
    )


def _parse_message(name: str, data: Any) -> _Message:
    _require(isinstance(data, dict), name, "must be an object")
    role = data.get("role")
    _require(role in Message.Role.values, name, f"unknown role {role!r}")
    status = data.get("status") or Message.Status.COMPLETE
    _require(status in Message.Status.values, name, f"unknown status {status!r}")
    if status == Message.Status.STREAMING:
        status = Message.Status.INTERRUPTED  # nothing is writing it here
    stats = data.get("stats") or {}
    _require(isinstance(stats, dict), name, "'stats' must be an object")
    fields: dict[str, Any] = {
        "role": role,
        "status": status,
        "content": _text(data.get("content"), name, "the content"),
        "thinking": _text(data.get("thinking"), name, "the thinking"),
        "error": _text(data.get("error"), name, "the error"),
        "model_name": _text(data.get("model"), name, "the model", limit=200),
        "created_at": _moment(data.get("created_at"), name, "created_at"),
        "done_reason": _text(stats.get("done_reason"), name, "done_reason", limit=40),
    }
    for stat in STAT_FIELDS:
        value = stats.get(stat)
        _require(
            value is None
            or (isinstance(value, int) and not isinstance(value, bool) and value >= 0),
            name,
            f"{stat} must be a whole number",
        )
        fields[stat] = value
    dropped = data.get("history_dropped") or 0
    _require(isinstance(dropped, int) and dropped >= 0, name, "history_dropped must be a count")
    fields["history_dropped"] = dropped
    images = data.get("images") or []
    _require(isinstance(images, list), name, "'images' must be a list")
    return _Message(
        fields, [_parse_image(f"{name}, image {n}", i) for n, i in enumerate(images, 1)]
    )


def _parse_image(name: str, data: Any) -> _Image:
    _require(isinstance(data, dict), name, "must be an object")
    try:
        raw = base64.b64decode(_text(data.get("data"), name, "the data"), validate=True)
    except binascii.Error:
        raise ImportRefused(f"{name}: the data is not base64") from None
    upload = SimpleUploadedFile(
        _text(data.get("name"), name, "the name", limit=200) or "image", raw
    )
    try:
        inspect_image(upload)
    except ValidationError as error:
        raise ImportRefused(f"{name}: {' '.join(error.messages)}") from None
    return _Image(upload.name or "image", raw)


def _create(owner: User, parsed: _Conversation) -> Conversation:
    model_name = parsed.fields["model_name"]
    model = LanguageModel.objects.filter(name__iexact=model_name).first() if model_name else None
    conversation = Conversation.objects.create(owner=owner, model=model, **parsed.fields)
    for item in parsed.messages:
        message = Message.objects.create(conversation=conversation, **item.fields)
        for image in item.images:
            message_image_attach(message=message, upload=SimpleUploadedFile(image.name, image.data))
    return conversation
