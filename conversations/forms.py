"""What a user may send: the frames of the conversation socket and the new-conversation form."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.validators import MaxValueValidator

from conversations.models import LanguageModel, SystemPrompt
from conversations.turns import check_content


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


# What a user may change per conversation, and within what bounds. The model's context length
# caps num_ctx further.
MIN_NUM_CTX = 512
MAX_NUM_CTX = 131_072


class ConversationOptionsForm(forms.Form):
    """The conversation's settings panel. A blank field means "the model's default"."""

    temperature = forms.FloatField(
        required=False,
        min_value=0,
        max_value=2,
        help_text="0 answers the same way every time; higher is more varied (0 to 2).",
    )
    num_ctx = forms.IntegerField(
        label="Context length",
        required=False,
        min_value=MIN_NUM_CTX,
        help_text="How many tokens of the conversation the model reads; more needs more memory.",
    )

    def __init__(self, *args: Any, model: LanguageModel | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = min(model.context_length or MAX_NUM_CTX, MAX_NUM_CTX) if model else MAX_NUM_CTX
        field = cast(forms.IntegerField, self.fields["num_ctx"])
        field.max_value = limit
        field.validators.append(MaxValueValidator(limit))
        field.widget.attrs.update(min=MIN_NUM_CTX, max=limit, step=512)
        self.fields["temperature"].widget.attrs.update(step="0.1")
