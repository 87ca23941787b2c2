"""Ollama's request checks, with its exact status codes and error strings (OLLAMA_API.md §9)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from conversations.ollama_options import OPTION_SPECS


class RequestRejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode_body(body: bytes) -> dict[str, Any]:
    """Go's decoder: only the first JSON value counts; errors in Go's words."""
    text = body.decode("utf-8", errors="replace")
    if not text.strip():
        raise RequestRejected(400, "missing request body")
    try:
        value, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except json.JSONDecodeError as exc:
        rest = text.lstrip()
        if exc.pos >= len(rest) or exc.msg.startswith("Unterminated"):
            raise RequestRejected(400, "unexpected EOF") from None
        where = (
            "looking for beginning of object key string"
            if exc.msg.startswith("Expecting property name")
            else "looking for beginning of value"
        )
        raise RequestRejected(400, f"invalid character {rest[exc.pos]!r} {where}") from None
    if not isinstance(value, dict):
        raise RequestRejected(
            400, f"json: cannot unmarshal {_json_kind(value)} into Go value of type api.Request"
        )
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_GO_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "model": (str, "string"),
    "name": (str, "string"),
    "prompt": (str, "string"),
    "system": (str, "string"),
    "suffix": (str, "string"),
    "template": (str, "string"),
    "messages": (list, "[]api.Message"),
    "images": (list, "[]api.ImageData"),
    "tools": (list, "api.Tools"),
    "stream": (bool, "bool"),
    "raw": (bool, "bool"),
    "logprobs": (bool, "bool"),
    "truncate": (bool, "bool"),
    "shift": (bool, "bool"),
    "insecure": (bool, "bool"),
    "verbose": (bool, "bool"),
    "options": (dict, "map[string]interface {}"),
    "top_logprobs": (int, "int"),
}


def check_field_types(request: Mapping[str, Any], struct: str) -> None:
    for name, value in request.items():
        if value is None or name not in _GO_TYPES:
            continue
        kind, go_type = _GO_TYPES[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise RequestRejected(
                400,
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                f"{struct}.{name} of type {go_type}",
            )
    for message in request.get("messages") or []:
        if not isinstance(message, dict):
            raise RequestRejected(
                400,
                f"json: cannot unmarshal {_json_kind(message)} into Go struct field "
                f"{struct}.messages of type api.Message",
            )
        for name in ("role", "content", "thinking"):
            if message.get(name) is not None and not isinstance(message[name], str):
                raise RequestRejected(
                    400,
                    f"json: cannot unmarshal {_json_kind(message[name])} into Go struct field "
                    f"Message.messages.{name} of type string",
                )


_NAME_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_MODEL_NAME = re.compile(
    rf"^({_NAME_PART}/){{0,2}}{_NAME_PART}(:[A-Za-z0-9_][A-Za-z0-9._-]{{0,79}})?$"
)


def is_valid_name(name: str) -> bool:
    return bool(_MODEL_NAME.match(name)) and len(name) <= 350


def normalize_name(name: str) -> str:
    """``llama3.2`` and ``registry.ollama.ai/library/Llama3.2:latest`` name the same model."""
    name = name.strip().lower()
    for prefix in ("registry.ollama.ai/library/", "registry.ollama.ai/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def full_name(name: str) -> str:
    """The internal name Ollama puts in some messages: registry.ollama.ai/library/m:tag."""
    short = normalize_name(name)
    return short if "/" in short else f"registry.ollama.ai/library/{short}"


THINK_LEVELS = ("high", "medium", "low", "max")


def check_think(think: Any) -> None:
    if think is None or isinstance(think, bool):
        return
    if isinstance(think, str):
        if think not in THINK_LEVELS:
            raise RequestRejected(
                400,
                f'invalid think value: "{think}" (must be "high", "medium", "low", "max", '
                "true, or false)",
            )
        return
    raise RequestRejected(
        400, 'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
}


def parse_keep_alive(value: Any) -> float | None:
    """Seconds (negative: for ever), or None when absent. Raises with Go's messages."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        go_type = (
            "bool"
            if isinstance(value, bool)
            else ("map[string]interface {}" if isinstance(value, dict) else "[]interface {}")
        )
        raise RequestRejected(400, f"Unsupported type: '{go_type}'")
    if not isinstance(value, str):
        return float(value)
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    if body and body.replace(".", "", 1).isdigit():
        raise RequestRejected(400, f'time: missing unit in duration "{value}"')
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(body):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise RequestRejected(400, f'time: invalid duration "{value}"')
    return sign * seconds


_GO_KIND_WORDS = {"int": "integer", "float": "float32", "bool": "boolean"}


def check_options(options: Mapping[str, Any] | None) -> None:
    """Type checks run when the model is scheduled; failures are HTTP 500 (§6)."""
    for name, value in (options or {}).items():
        spec = OPTION_SPECS.get(name)
        if spec is None or value is None:
            continue  # unknown names are ignored, nulls skipped
        if spec.kind == "strings":
            if not isinstance(value, list):
                raise RequestRejected(500, f'option "{name}" must be of type array')
            if not all(isinstance(item, str) for item in value):
                raise RequestRejected(500, f'option "{name}" must be of an array of strings')
            continue
        ok = (
            isinstance(value, bool)
            if spec.kind == "bool"
            else (isinstance(value, int | float) and not isinstance(value, bool))
        )
        if not ok:
            raise RequestRejected(
                500, f'option "{name}" must be of type {_GO_KIND_WORDS[spec.kind]}'
            )


def check_format(format_value: Any) -> None:
    if format_value in (None, "", "json") or isinstance(format_value, dict):
        return
    encoded = json.dumps(format_value)
    raise RequestRejected(
        500, f'invalid format: {json.dumps(encoded)}; expected "json" or a valid JSON Schema object'
    )


_BASE64 = re.compile(r"[A-Za-z0-9+/]")


def check_images(images: list[Any]) -> None:
    for image in images:
        if not isinstance(image, str):
            raise RequestRejected(
                400,
                f"json: cannot unmarshal {_json_kind(image)} into Go struct field "
                "Message.messages.images of type api.ImageData",
            )
        text = image.replace("\n", "").replace("\r", "")
        for index, char in enumerate(text):
            if char == "=" and index >= len(text) - 2 and len(text) % 4 == 0:
                continue
            if not _BASE64.match(char):
                raise RequestRejected(400, f"illegal base64 data at input byte {index}")
        if len(text) % 4:
            raise RequestRejected(
                400, f"illegal base64 data at input byte {len(text) - len(text) % 4}"
            )
