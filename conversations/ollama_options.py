"""Ollama's generation options and ``keep_alive``, as OLLAMA_API.md sections 6 and 7 define them.

Ollama ignores an unknown option name silently and answers a wrongly typed one with a 500 when
the model is scheduled; we reject both up front, with a message an admin can act on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import ValidationError

OptionKind = Literal["int", "float", "bool", "strings"]


@dataclass(frozen=True)
class OptionSpec:
    name: str
    kind: OptionKind
    # Bounds outside which a value means nothing to the model; Ollama itself does not check.
    minimum: float | None = None
    maximum: float | None = None
    # Runner options are read when the model loads: changing them can cause a reload.
    loads_model: bool = False


OPTION_SPECS: dict[str, OptionSpec] = {
    spec.name: spec
    for spec in (
        OptionSpec("num_keep", "int", minimum=-1),
        OptionSpec("seed", "int"),
        OptionSpec("num_predict", "int", minimum=-2),
        OptionSpec("top_k", "int", minimum=0),
        OptionSpec("top_p", "float", minimum=0, maximum=1),
        OptionSpec("min_p", "float", minimum=0, maximum=1),
        OptionSpec("typical_p", "float", minimum=0, maximum=1),
        OptionSpec("repeat_last_n", "int", minimum=-1),
        OptionSpec("temperature", "float", minimum=0),
        OptionSpec("repeat_penalty", "float", minimum=0),
        OptionSpec("presence_penalty", "float"),
        OptionSpec("frequency_penalty", "float"),
        OptionSpec("stop", "strings"),
        OptionSpec("num_ctx", "int", minimum=1, loads_model=True),
        OptionSpec("num_batch", "int", minimum=1, loads_model=True),
        OptionSpec("num_gpu", "int", minimum=-1, loads_model=True),
        OptionSpec("main_gpu", "int", minimum=0, loads_model=True),
        OptionSpec("use_mmap", "bool", loads_model=True),
        OptionSpec("num_thread", "int", minimum=0, loads_model=True),
        OptionSpec("draft_num_predict", "int", minimum=0, loads_model=True),
    )
}

# Options older Ollama versions knew, with the release that removed them: now silently ignored.
REMOVED_OPTIONS: dict[str, str] = {
    "embedding_only": "v0.1.28",
    "numa": "v0.3.4",
    "tfs_z": "v0.5.2",
    "penalize_newline": "v0.5.5",
    **dict.fromkeys(("low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock"), "v0.7.0"),
    **dict.fromkeys(("mirostat", "mirostat_tau", "mirostat_eta"), "v0.7.0"),
}

_TYPE_WORDS: dict[OptionKind, str] = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "strings": "a list of strings",
}


def option_problem(name: str, value: Any) -> str | None:
    """What is wrong with one option, in words, or None when Ollama will take it as meant."""
    spec = OPTION_SPECS.get(name)
    if spec is None:
        if name in REMOVED_OPTIONS:
            return f"'{name}' was removed from Ollama in {REMOVED_OPTIONS[name]} and has no effect"
        return f"'{name}' is not an Ollama option"
    if value is None:
        return f"'{name}' has no value: leave it out to use the model's default"
    if not _has_kind(value, spec.kind):
        return f"'{name}' must be {_TYPE_WORDS[spec.kind]}, got {value!r}"
    if spec.kind in ("int", "float"):
        if spec.minimum is not None and value < spec.minimum:
            return f"'{name}' must be at least {spec.minimum:g}, got {value!r}"
        if spec.maximum is not None and value > spec.maximum:
            return f"'{name}' must be at most {spec.maximum:g}, got {value!r}"
    return None


def _has_kind(value: Any, kind: OptionKind) -> bool:
    # bool is a subclass of int in Python, but Ollama rejects true/false for numbers.
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        # Ollama would truncate 4096.7 to 4096 without a word; only whole numbers are accepted.
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "float":
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def validate_options(value: Any) -> None:
    """Model field validator: a JSON object of known options with values of the right type."""
    if not isinstance(value, Mapping):
        raise ValidationError(
            "Options must be a JSON object of option names and values.", code="invalid"
        )
    problems = [problem for name, item in value.items() if (problem := option_problem(name, item))]
    if problems:
        raise ValidationError([ValidationError(p, code="invalid_option") for p in problems])


# Go's time.ParseDuration: one or more number+unit parts, or a bare 0.
_GO_DURATION = re.compile(r"^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$")
_SECONDS = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")


def validate_keep_alive(value: str) -> None:
    """A number of seconds (``300``, ``-1``) or a Go duration (``5m``, ``1h30m``); empty means
    the server's default."""
    text = value.strip()
    if text and not (_SECONDS.match(text) or _GO_DURATION.match(text)):
        raise ValidationError(
            "Keep-alive must be a number of seconds (300, 0, -1 for ever) "
            "or a duration like 5m or 1h30m, got %(value)r.",
            code="invalid_keep_alive",
            params={"value": value},
        )


def keep_alive_for_request(value: str) -> int | float | str | None:
    """The stored text as Ollama's ``keep_alive`` wants it: seconds must go as a JSON number,
    because a string without a unit is a 400 (``missing unit in duration``)."""
    text = value.strip()
    if not text:
        return None
    if _SECONDS.match(text):
        number = float(text)
        return int(number) if number.is_integer() else number
    return text
