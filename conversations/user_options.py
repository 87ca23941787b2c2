"""Which Ollama options users may change per conversation, and within what bounds.

Admins choose per model (``LanguageModel.user_options``): a mapping of option name to
``{"min": number | None, "max": number | None}``. A missing bound falls back to what the option
itself allows; for ``num_ctx`` the model's context length caps the maximum too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from conversations.ollama_options import OPTION_SPECS, option_problem


@dataclass(frozen=True)
class UserOption:
    name: str
    label: str
    help_text: str
    # The bounds when the admin sets none: what makes sense for people tuning a chat.
    minimum: float
    maximum: float
    step: str
    # What Ollama uses when neither the admin nor the user sets it.
    ollama_default: str


USER_OPTIONS: dict[str, UserOption] = {
    option.name: option
    for option in (
        UserOption(
            "temperature",
            "Temperature",
            "0 answers the same way every time; higher is more varied.",
            0,
            2,
            "0.1",
            "0.8",
        ),
        UserOption(
            "top_p",
            "Top P",
            "Only the most likely words that add up to this share.",
            0,
            1,
            "0.05",
            "0.9",
        ),
        UserOption(
            "top_k", "Top K", "Only the K most likely words are considered.", 1, 200, "1", "40"
        ),
        UserOption(
            "repeat_penalty", "Repeat penalty", "Higher discourages repeating.", 0, 2, "0.05", "1.1"
        ),
        UserOption(
            "num_ctx",
            "Context length",
            "How many tokens of the conversation the model reads; more needs more memory.",
            512,
            131_072,
            "512",
            "set by the server",
        ),
        UserOption(
            "num_predict",
            "Reply length limit",
            "The most tokens a reply may have.",
            16,
            32_768,
            "16",
            "no limit",
        ),
    )
}

# What a model offers until an admin decides otherwise.
DEFAULT_USER_OPTIONS: dict[str, dict[str, float | None]] = {
    "temperature": {"min": 0, "max": 2},
    "num_ctx": {"min": 512, "max": None},
}


def default_user_options() -> dict[str, dict[str, float | None]]:
    return {name: dict(bounds) for name, bounds in DEFAULT_USER_OPTIONS.items()}


def validate_user_options(value: Any) -> None:
    """Model field validator: known option names, each with numeric bounds in order."""
    if not isinstance(value, Mapping):
        raise ValidationError("User options must be a mapping of option names to bounds.")
    problems: list[str] = []
    for name, bounds in value.items():
        if name not in USER_OPTIONS:
            problems.append(f"Users cannot be allowed to change '{name}'.")
            continue
        if not isinstance(bounds, Mapping) or set(bounds) - {"min", "max"}:
            problems.append(f"'{name}' needs bounds as min and max.")
            continue
        for which in ("min", "max"):
            bound = bounds.get(which)
            if bound is not None and (problem := option_problem(name, bound)):
                problems.append(f"The {which}imum for {problem}.")
        low, high = bounds.get("min"), bounds.get("max")
        if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
            problems.append(f"'{name}': the minimum is above the maximum.")
    if problems:
        raise ValidationError([ValidationError(p, code="invalid_user_option") for p in problems])


def user_bounds(
    user_options: Mapping[str, Any] | None, context_length: int | None
) -> dict[str, tuple[float, float]]:
    """The options users may set for a model, each with its effective (min, max)."""
    bounds: dict[str, tuple[float, float]] = {}
    for name, limits in (user_options or {}).items():
        option = USER_OPTIONS.get(name)
        if option is None or not isinstance(limits, Mapping):
            continue
        low = limits.get("min")
        high = limits.get("max")
        low = option.minimum if low is None else low
        high = option.maximum if high is None else high
        if name == "num_ctx" and context_length:
            high = min(high, context_length)
        spec = OPTION_SPECS[name]
        if spec.minimum is not None:
            low = max(low, spec.minimum)
        bounds[name] = (low, max(low, high))
    return bounds


def allowed_overrides(
    overrides: Mapping[str, Any] | None, bounds: Mapping[str, tuple[float, float]]
) -> dict[str, Any]:
    """A conversation's overrides that its model still lets users set, brought within today's
    bounds: an admin who narrows a bound later narrows existing conversations too."""
    allowed: dict[str, Any] = {}
    for name, value in (overrides or {}).items():
        if name not in bounds or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        low, high = bounds[name]
        clamped = min(max(value, low), high)
        allowed[name] = int(clamped) if OPTION_SPECS[name].kind == "int" else clamped
    return allowed
