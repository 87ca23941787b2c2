"""System prompts: presets with versioned text, their history with diffs and restore, and a
preview against a model before the text goes live."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.forms import ModelForm
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from conversations.admin.pages import admin_page_context
from conversations.forms import first_error
from conversations.models import LanguageModel, SystemPrompt, SystemPromptVersion
from conversations.prompt_history import version_history
from conversations.prompt_preview import preview_stream
from conversations.services import system_prompt_save


class PreviewForm(forms.Form):
    text = forms.CharField(required=False, strip=False)
    model = forms.ModelChoiceField(
        queryset=LanguageModel.objects.filter(installed=True),
        error_messages={"invalid_choice": "Pick a model the Ollama server has."},
    )
    message = forms.CharField(max_length=4000)


@admin.register(SystemPrompt)
class SystemPromptAdmin(admin.ModelAdmin[SystemPrompt]):
    list_display = [
        "name",
        "enabled",
        "user_selectable",
        "is_default",
        "default_for_model",
        "locked",
        "version_count",
    ]
    list_filter = ["enabled", "locked", "user_selectable"]
    search_fields = ["name", "text"]
    fieldsets = [
        (None, {"fields": ["name", "text", "enabled"]}),
        (
            "Who gets it",
            {
                "fields": ["user_selectable", "is_default", "default_for_model", "locked"],
                "description": "A prompt locked to a model is used by every conversation with "
                "that model, whatever the user picks, and the chat says that it is in force.",
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SystemPrompt]:
        return super().get_queryset(request).annotate(versions_total=Count("versions"))

    @admin.display(description="Versions", ordering="versions_total")
    def version_count(self, prompt: SystemPrompt) -> int:
        return getattr(prompt, "versions_total", 0)

    def save_model(
        self, request: HttpRequest, obj: SystemPrompt, form: ModelForm[SystemPrompt], change: bool
    ) -> None:
        # Every change of text is kept as a version, with who made it.
        system_prompt_save(prompt=obj, edited_by=_user(request))

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: SystemPrompt | None = None,
    ) -> HttpResponse:
        context["preview_form"] = PreviewForm(
            initial={
                "model": LanguageModel.objects.filter(is_default=True)
                .values_list("pk", flat=True)
                .first()
            }
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    class Media:
        js = ["js/admin_prompt_preview.js"]

    # --- extra pages ---------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        extra = [
            path("preview/", wrap(self.preview_view), name=f"{name}_preview"),
            path("<path:object_id>/versions/", wrap(self.versions_view), name=f"{name}_versions"),
            path(
                "<path:object_id>/versions/<int:number>/restore/",
                wrap(self.restore_view),
                name=f"{name}_restore",
            ),
        ]
        return extra + super().get_urls()

    def versions_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        prompt = get_object_or_404(SystemPrompt, pk=object_id)
        if not self.has_view_or_change_permission(request, prompt):
            raise PermissionDenied
        context = admin_page_context(
            self,
            request,
            f"Versions of “{prompt.name}”",
            prompt=prompt,
            changes=version_history(prompt),
            can_restore=self.has_change_permission(request, prompt),
        )
        return TemplateResponse(request, "admin/conversations/systemprompt/versions.html", context)

    def restore_view(self, request: HttpRequest, object_id: str, number: int) -> HttpResponse:
        prompt = get_object_or_404(SystemPrompt, pk=object_id)
        if not self.has_change_permission(request, prompt):
            raise PermissionDenied
        if request.method == "POST":
            old = get_object_or_404(SystemPromptVersion, prompt=prompt, number=number)
            prompt.text = old.text
            version = system_prompt_save(prompt=prompt, edited_by=_user(request))
            self.log_change(request, prompt, f"Restored the text of version {number}.")
            self.message_user(
                request,
                f"Restored the text of version {number}; it is now version {version.number}.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(
            reverse("admin:conversations_systemprompt_versions", args=[prompt.pk])
        )

    def preview_view(self, request: HttpRequest) -> HttpResponseBase:
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponse("Send the prompt with POST.", status=405, content_type="text/plain")
        form = PreviewForm(request.POST)
        if not form.is_valid():
            return HttpResponse(
                first_error(form), status=400, content_type="text/plain; charset=utf-8"
            )
        stream = preview_stream(
            form.cleaned_data["model"], form.cleaned_data["text"], form.cleaned_data["message"]
        )
        response = StreamingHttpResponse(stream, content_type="application/x-ndjson")
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"  # let a proxy pass the answer on as it comes
        return response


def _user(request: HttpRequest) -> User | None:
    user = request.user
    return user if isinstance(user, User) else None


@admin.register(SystemPromptVersion)
class SystemPromptVersionAdmin(admin.ModelAdmin[SystemPromptVersion]):
    list_display = ["prompt", "number", "created_at", "created_by"]
    list_filter = ["prompt"]
    readonly_fields = ["prompt", "number", "text", "created_at", "created_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Conversations point at the version they used: the record stays.
        return False
