"""Typed views of Ollama's requests and responses.

Servers of different versions send different fields (OLLAMA_API.md section 13): every field the
reference calls optional is optional here, and unknown fields are ignored.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from conversations.ollama.errors import MalformedResponse

ThinkValue = bool | Literal["low", "medium", "high", "max"]
FormatValue = Literal["json"] | Mapping[str, Any]
KeepAlive = int | float | str


@dataclass(frozen=True)
class ChatMessage:
    """One message sent to /api/chat. Images are raw bytes; they travel as plain base64."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    thinking: str = ""
    images: Sequence[bytes] = ()
    tool_name: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.thinking:
            data["thinking"] = self.thinking
        if self.images:
            data["images"] = [base64.b64encode(image).decode("ascii") for image in self.images]
        if self.tool_name:
            data["tool_name"] = self.tool_name
        return data


# --- reading JSON with the types the reference gives, tolerating absent fields ---------------


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise MalformedResponse(f"{key!r} should be a number, got {value!r}")
    if not isinstance(value, kind):
        raise MalformedResponse(f"{key!r} has an unexpected type: {value!r}")
    return value


# The helpers below return a well-typed value at once (a stream parses thousands of chunks) and
# leave anything else to ``_get``, which supplies the default or says what is wrong.


def _str(data: Mapping[str, Any], key: str, default: str = "") -> str:
    value = data.get(key)
    if value.__class__ is str:
        return value
    return str(_get(data, key, str, default))


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value.__class__ is str:
        return value
    checked: str | None = _get(data, key, str, None)
    return checked


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = _get(data, key, (int, float), None)
    return None if value is None else int(value)


def _obj(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value.__class__ is dict:
        return value
    checked: Mapping[str, Any] = _get(data, key, dict, {})
    return checked


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    if key not in data:
        return []
    value: list[Any] = _get(data, key, list, [])
    return value


def _bool(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    if value.__class__ is bool:
        return value
    return bool(_get(data, key, bool, False))


@dataclass(frozen=True)
class Metrics:
    """Ollama's counts and durations (nanoseconds). Zero values are omitted by the server."""

    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Metrics:
        return cls(
            total_duration=_opt_int(data, "total_duration"),
            load_duration=_opt_int(data, "load_duration"),
            prompt_eval_count=_opt_int(data, "prompt_eval_count"),
            prompt_eval_duration=_opt_int(data, "prompt_eval_duration"),
            eval_count=_opt_int(data, "eval_count"),
            eval_duration=_opt_int(data, "eval_duration"),
        )

    @property
    def tokens_per_second(self) -> float | None:
        if not self.eval_count or not self.eval_duration:
            return None
        return self.eval_count / self.eval_duration * 1e9


_NO_METRICS = Metrics()


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Mapping[str, Any]
    id: str | None = None
    index: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolCall:
        function = _obj(data, "function")
        return cls(
            name=_str(function, "name"),
            arguments=_obj(function, "arguments"),
            id=_opt_str(data, "id"),
            index=_opt_int(function, "index"),
        )


@dataclass(frozen=True)
class ChatChunk:
    """One line of a /api/chat stream, or the whole non-streaming reply."""

    model: str
    content: str
    done: bool
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    created_at: str | None = None
    done_reason: str | None = None
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChatChunk:
        message = _obj(data, "message")
        done = _bool(data, "done")
        return cls(
            model=_str(data, "model"),
            content=_str(message, "content"),
            thinking=_str(message, "thinking"),
            tool_calls=tuple(ToolCall.from_json(c) for c in _list(message, "tool_calls")),
            done=done,
            created_at=_opt_str(data, "created_at"),
            done_reason=_opt_str(data, "done_reason"),
            # Only the last chunk carries them; a stream has thousands of the others.
            metrics=Metrics.from_json(data) if done else _NO_METRICS,
        )


@dataclass(frozen=True)
class GenerateResult:
    """A /api/generate reply (or one line of its stream)."""

    model: str
    response: str
    done: bool
    thinking: str = ""
    created_at: str | None = None
    done_reason: str | None = None
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GenerateResult:
        return cls(
            model=_str(data, "model"),
            response=_str(data, "response"),
            thinking=_str(data, "thinking"),
            done=_bool(data, "done"),
            created_at=_opt_str(data, "created_at"),
            done_reason=_opt_str(data, "done_reason"),
            metrics=Metrics.from_json(data),
        )


@dataclass(frozen=True)
class ModelDetails:
    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: tuple[str, ...] = ()
    parameter_size: str = ""
    quantization_level: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelDetails:
        return cls(
            parent_model=_str(data, "parent_model"),
            format=_str(data, "format"),
            family=_str(data, "family"),
            families=tuple(str(f) for f in _list(data, "families")),
            parameter_size=_str(data, "parameter_size"),
            quantization_level=_str(data, "quantization_level"),
        )


@dataclass(frozen=True)
class LocalModel:
    """An entry of /api/tags: a model installed on the server."""

    name: str
    size: int | None = None
    digest: str = ""
    modified_at: str | None = None
    details: ModelDetails = field(default_factory=ModelDetails)
    capabilities: tuple[str, ...] = ()
    context_length: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LocalModel:
        details = _obj(data, "details")
        return cls(
            name=_str(data, "name") or _str(data, "model"),
            size=_opt_int(data, "size"),
            digest=_str(data, "digest"),
            modified_at=_opt_str(data, "modified_at"),
            details=ModelDetails.from_json(details),
            capabilities=tuple(str(c) for c in _list(data, "capabilities")),
            context_length=_opt_int(details, "context_length"),
        )


@dataclass(frozen=True)
class RunningModel:
    """An entry of /api/ps: a model loaded in memory now."""

    name: str
    size: int | None = None
    size_vram: int | None = None
    digest: str = ""
    expires_at: str | None = None
    context_length: int | None = None
    details: ModelDetails = field(default_factory=ModelDetails)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunningModel:
        return cls(
            name=_str(data, "name") or _str(data, "model"),
            size=_opt_int(data, "size"),
            size_vram=_opt_int(data, "size_vram"),
            digest=_str(data, "digest"),
            expires_at=_opt_str(data, "expires_at"),
            context_length=_opt_int(data, "context_length"),
            details=ModelDetails.from_json(_obj(data, "details")),
        )


@dataclass(frozen=True)
class ShowResult:
    """/api/show: what a model can do and how it is set up."""

    capabilities: tuple[str, ...] = ()
    details: ModelDetails = field(default_factory=ModelDetails)
    model_info: Mapping[str, Any] = field(default_factory=dict)
    parameters: str = ""
    template: str = ""
    system: str = ""
    license: str = ""
    modified_at: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShowResult:
        return cls(
            capabilities=tuple(str(c) for c in _list(data, "capabilities")),
            details=ModelDetails.from_json(_obj(data, "details")),
            model_info=_obj(data, "model_info"),
            parameters=_str(data, "parameters"),
            template=_str(data, "template"),
            system=_str(data, "system"),
            license=_str(data, "license"),
            modified_at=_opt_str(data, "modified_at"),
        )

    @property
    def context_length(self) -> int | None:
        """From ``<architecture>.context_length`` in model_info, as Ollama reports it."""
        architecture = self.model_info.get("general.architecture")
        value = self.model_info.get(f"{architecture}.context_length") if architecture else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class PullProgress:
    status: str
    digest: str = ""
    total: int | None = None
    completed: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PullProgress:
        return cls(
            status=_str(data, "status"),
            digest=_str(data, "digest"),
            total=_opt_int(data, "total"),
            completed=_opt_int(data, "completed"),
        )
