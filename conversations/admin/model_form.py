"""The model's change form: Ollama's options as typed fields, not raw JSON.

One field per option OLLAMA_API.md section 6 lists (blank: the model's own default), and per
option users may change, whether they may and within what bounds. The form assembles them into
``default_options`` and ``user_options`` and the model's validators have the last word.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from conversations.models import LanguageModel
from conversations.ollama_options import OPTION_SPECS, OptionSpec, validate_options
from conversations.user_options import USER_OPTIONS, validate_user_options

_BOOL_CHOICES = [("", "Model default"), ("true", "Yes"), ("false", "No")]


def option_field_name(name: str) -> str:
    return f"option_{name}"


def _bounds_text(spec: OptionSpec) -> str:
    if spec.minimum is not None and spec.maximum is not None:
        return f" From {spec.minimum:g} to {spec.maximum:g}."
    if spec.minimum is not None:
        return f" At least {spec.minimum:g}."
    return ""


def _option_field(spec: OptionSpec) -> forms.Field:
    help_text = "Blank: the model's default." + _bounds_text(spec)
    if spec.loads_model:
        help_text += " Changing it makes Ollama reload the model."
    if spec.kind == "int":
        return forms.IntegerField(
            required=False,
            min_value=None if spec.minimum is None else int(spec.minimum),
            max_value=None if spec.maximum is None else int(spec.maximum),
            help_text=help_text,
        )
    if spec.kind == "float":
        return forms.FloatField(
            required=False, min_value=spec.minimum, max_value=spec.maximum, help_text=help_text
        )
    if spec.kind == "bool":
        return forms.TypedChoiceField(
            required=False,
            choices=_BOOL_CHOICES,
            coerce=lambda value: value == "true",
            empty_value=None,
            help_text=help_text,
        )
    return forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One stop sequence per line. Blank: the model's default.",
    )


def _user_fields(name: str) -> dict[str, forms.Field]:
    option = USER_OPTIONS[name]
    bound_kind = forms.IntegerField if OPTION_SPECS[name].kind == "int" else forms.FloatField
    return {
        f"user_{name}": forms.BooleanField(
            required=False, label=f"Users may change {option.label.lower()}"
        ),
        f"user_{name}_min": bound_kind(
            required=False, label="from", help_text=f"Blank: {option.minimum:g}."
        ),
        f"user_{name}_max": bound_kind(
            required=False,
            label="to",
            help_text=f"Blank: {option.maximum:g}"
            + (" or the model's context length." if name == "num_ctx" else "."),
        ),
    }


OPTION_FIELD_NAMES = [option_field_name(name) for name in OPTION_SPECS]


class LanguageModelForm(forms.ModelForm[LanguageModel]):
    class Meta:
        model = LanguageModel
        fields = [
            "name",
            "display_name",
            "enabled",
            "is_default",
            "position",
            "keep_alive",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._set_initial()

    def _set_initial(self) -> None:
        options = self.instance.default_options or {}
        for name, value in options.items():
            if name not in OPTION_SPECS:
                continue
            if OPTION_SPECS[name].kind == "strings" and isinstance(value, list):
                value = "\n".join(value)
            elif OPTION_SPECS[name].kind == "bool":
                value = "true" if value else "false"
            self.initial[option_field_name(name)] = value
        for name, bounds in (self.instance.user_options or {}).items():
            if name in USER_OPTIONS and isinstance(bounds, dict):
                self.initial[f"user_{name}"] = True
                self.initial[f"user_{name}_min"] = bounds.get("min")
                self.initial[f"user_{name}_max"] = bounds.get("max")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        options: dict[str, Any] = {}
        for name, spec in OPTION_SPECS.items():
            value = cleaned.get(option_field_name(name))
            if value is None or value == "":
                continue
            if spec.kind == "strings":
                value = [line for line in str(value).splitlines() if line]
                if not value:
                    continue
            options[name] = value
        user_options: dict[str, dict[str, Any]] = {}
        for name in USER_OPTIONS:
            if cleaned.get(f"user_{name}"):
                user_options[name] = {
                    "min": cleaned.get(f"user_{name}_min"),
                    "max": cleaned.get(f"user_{name}_max"),
                }
        for value, validator in (
            (options, validate_options),
            (user_options, validate_user_options),
        ):
            try:
                validator(value)
            except ValidationError as error:
                self.add_error(None, error)
        self.instance.default_options = options
        self.instance.user_options = user_options
        return cleaned


# Declared after the class so the admin's form factory sees them as the form's own fields (it
# refuses names in its fieldsets that are neither model fields nor declared ones).
_EXTRA_FIELDS: dict[str, forms.Field] = {
    **{option_field_name(name): _option_field(spec) for name, spec in OPTION_SPECS.items()},
    **{key: field for name in USER_OPTIONS for key, field in _user_fields(name).items()},
}
LanguageModelForm.declared_fields.update(_EXTRA_FIELDS)
LanguageModelForm.base_fields.update(_EXTRA_FIELDS)
