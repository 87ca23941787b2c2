"""What a user may send: the frames of the conversation socket and the new-conversation form."""

from __future__ import annotations

from typing import Any

from django import forms

from conversations.models import LanguageModel, SystemPrompt
from conversations.turns import check_content


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
