"""What a user may send: the frames of the conversation socket and the new-conversation form."""

from __future__ import annotations

from typing import Any

from django import forms

from conversations.models import LanguageModel, SystemPrompt
from conversations.ollama_options import OPTION_SPECS
from conversations.turns import check_content
from conversations.user_options import USER_OPTIONS


def first_error(form: forms.Form) -> str:
    """The first thing wrong with a submitted form, to show on its own."""
    for messages in form.errors.values():
        for message in messages:
            return str(message)
    return "The message could not be sent."


class ContentField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strip=False, required=False, **kwargs)

    def clean(self, value: Any) -> str:
        return check_content(super().clean(value) or "")


class SendForm(forms.Form):
    """``{"action": "send", "content": "…"}``"""

    content = ContentField()


class EditForm(forms.Form):
    """``{"action": "edit", "content": "…"}``: the last user message, changed and resent."""

    content = ContentField()


class NewConversationForm(forms.Form):
    model = forms.ModelChoiceField(
        queryset=LanguageModel.objects.filter(enabled=True, installed=True),
        error_messages={"invalid_choice": "That model is not offered: pick another one."},
        empty_label=None,
    )
    system_prompt = forms.ModelChoiceField(
        queryset=SystemPrompt.objects.filter(enabled=True, user_selectable=True), required=False
    )
    content = ContentField()


class RenameForm(forms.Form):
    title = forms.CharField(max_length=200)

    def clean_title(self) -> str:
        return " ".join(self.cleaned_data["title"].split())


class ConversationOptionsForm(forms.Form):
    """The conversation's settings panel: one field per option the model lets users change
    (``LanguageModel.user_options``), within its bounds. A blank field means "the model's
    default"."""

    def __init__(self, *args: Any, model: LanguageModel | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bounds = model.user_bounds() if model else {}
        for name, (low, high) in bounds.items():
            option = USER_OPTIONS[name]
            whole = OPTION_SPECS[name].kind == "int"
            help_text = f"{option.help_text} ({low:g} to {high:g})"
            field: forms.Field
            if whole:
                field = forms.IntegerField(
                    label=option.label,
                    required=False,
                    min_value=int(low),
                    max_value=int(high),
                    help_text=help_text,
                )
            else:
                field = forms.FloatField(
                    label=option.label,
                    required=False,
                    min_value=low,
                    max_value=high,
                    help_text=help_text,
                )
            field.widget.attrs.update(min=f"{low:g}", max=f"{high:g}", step=option.step)
            self.fields[name] = field
