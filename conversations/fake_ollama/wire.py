"""Go's way of writing JSON and timestamps, which clients of Ollama see."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

# The fake pretends to run in a zone west of UTC, so clients meet offsets, not just "Z".
SERVER_ZONE = timezone(timedelta(hours=-7))


def go_json(value: Any) -> str:
    """Compact JSON as Go's encoder writes it: no spaces, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def go_time(moment: datetime, *, utc: bool = False) -> str:
    """RFC3339Nano: up to nine fractional digits with trailing zeros trimmed, ``Z`` for UTC."""
    moment = moment.astimezone(UTC if utc else SERVER_ZONE)
    fraction = f"{moment.microsecond:06d}000".rstrip("0")
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "")
    offset = moment.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return stamp + "Z"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{stamp}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def now_utc() -> datetime:
    return datetime.now(UTC)
