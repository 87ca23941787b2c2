"""What the fake models say: deterministic, so a test can know the whole reply in advance."""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, UnidentifiedImageError

SAMPLE_MARKDOWN = (
    "Here is what I can do:\n\n"
    "- **bold** and *italic* text\n"
    "- `inline code`\n\n"
    "```python\n"
    "def greet(name):\n"
    '    return f"Hello, {name}!"\n'
    "```\n"
)
FILLER = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
]


def tokenize(text: str) -> list[str]:
    """Pieces that join back into ``text`` exactly: each word with the blanks before it."""
    return re.findall(r"\s*\S+|\s+$", text)


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if str(message.get("role", "")).lower() == "user":
            return str(message.get("content") or "")
    return ""


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 80 else flat[:79] + "…"


def reply_tokens_for(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    reply_tokens: int | None = None,
    behaviour: str = "normal",
) -> list[str]:
    """The chunks a "normal", "thinking" or "vision" fake model streams in answer to
    ``messages``: exactly ``reply_tokens`` of them when that is set."""
    if behaviour == "vision":
        text = describe_images(_last_user_images(messages))
    else:
        text = f'Hello from {model}! You wrote: "{_excerpt(last_user_text(messages))}".\n\n'
        text += SAMPLE_MARKDOWN
    tokens = tokenize(text)
    if reply_tokens is None:
        return tokens
    while len(tokens) < reply_tokens:
        tokens.append(" " + FILLER[len(tokens) % len(FILLER)])
    return tokens[:reply_tokens]


def expected_reply(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    reply_tokens: int | None = None,
    behaviour: str = "normal",
) -> str:
    """The text a "normal", "thinking" or "vision" fake model answers to ``messages``."""
    return "".join(
        reply_tokens_for(model, messages, reply_tokens=reply_tokens, behaviour=behaviour)
    )


def expected_thinking(messages: Sequence[Mapping[str, Any]]) -> str:
    return (
        f'The user wrote "{_excerpt(last_user_text(messages))}". '
        "I should answer briefly and show some Markdown."
    )


def formatted_reply(format_value: Any, text: str) -> str:
    """A reply that obeys ``format``: JSON, or an object shaped by a JSON schema."""
    if format_value == "json":
        return json.dumps({"reply": " ".join(text.split())})
    return json.dumps(_example_for_schema(format_value))


def _example_for_schema(schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: _example_for_schema(sub) for name, sub in properties.items()}
    examples: dict[str, Any] = {
        "string": "example",
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "array": [],
        "null": None,
    }
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    return examples.get(str(kind), "example")


def _last_user_images(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    for message in reversed(messages):
        if str(message.get("role", "")).lower() == "user":
            return list(message.get("images") or [])
    return []


def describe_images(images: Sequence[str]) -> str:
    """The vision model reports exactly what it received, so tests can check what was sent."""
    if not images:
        return "I see no image."
    parts = []
    for number, encoded in enumerate(images, start=1):
        try:
            data = base64.b64decode(encoded, validate=True)
            with Image.open(io.BytesIO(data)) as image:
                parts.append(f"image {number} is a {image.format} of {image.width}x{image.height}")
        except (binascii.Error, UnidentifiedImageError, OSError):
            parts.append(f"image {number} is not a picture I can read")
    count = "1 image" if len(images) == 1 else f"{len(images)} images"
    return f"I see {count}: " + "; ".join(parts) + "."
