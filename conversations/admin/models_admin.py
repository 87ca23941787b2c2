"""Models on offer: the list with what the Ollama server says about each, sync, pull, load,
unload and delete on the server, and the options form."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from conversations.admin.model_form import (
    OPTION_FIELD_NAMES,
    LanguageModelForm,
)
from conversations.admin.pages import admin_page_context
from conversations.model_pulls import pull_cancel, pull_start
from conversations.models import LanguageModel, ModelPull
from conversations.ollama import OllamaError
from conversations.server_models import (
    Loaded,
    loaded_models,
    model_delete_from_server,
    model_load,
    model_unload,
    models_sync_now,
)
from conversations.user_options import USER_OPTIONS

_MANAGE = "manage_ollama_server"  # an admin action asks has_<this>_permission
MANAGE_SERVER = f"conversations.{_MANAGE}"
# Ollama reports a model kept "for ever" (keep_alive -1) with an expiry centuries away.
_FOREVER = timedelta(days=365 * 10)


class PullForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        label="Model name",
        help_text="As on ollama.com/library, e.g. llama3.2, qwen3:8b or gemma3:1b.",
    )


def _loaded_text(entry: Loaded | None) -> str:
    if entry is None:
        return "—"
    if entry.expires_at is None or entry.expires_at - timezone.now() > _FOREVER:
        return "Loaded, kept until unloaded"
    when = timezone.localtime(entry.expires_at)
    return f"Loaded, unloads at {when:%H:%M}" + (
        "" if when.date() == timezone.localdate() else f" on {when:%Y-%m-%d}"
    )


@admin.register(LanguageModel)
class LanguageModelAdmin(admin.ModelAdmin[LanguageModel]):
    form = LanguageModelForm
    list_display = [
        "name",
        "display_name",
        "enabled",
        "is_default",
        "capabilities_text",
        "size_text",
        "parameters_text",
        "installed",
    ]
    list_editable = ["enabled"]
    list_filter = ["enabled", "installed"]
    search_fields = ["name", "display_name"]
    actions = ["preload_selected", "unload_selected"]
    readonly_fields = [
        "installed",
        "capabilities_text",
        "context_length",
        "size_text",
        "family",
        "parameter_size",
        "quantization_level",
        "synced_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "display_name", "enabled", "is_default", "position"]}),
        (
            "On the Ollama server (from the last sync)",
            {
                "fields": [
                    "installed",
                    "capabilities_text",
                    "context_length",
                    "size_text",
                    ("family", "parameter_size", "quantization_level"),
                    "synced_at",
                ]
            },
        ),
        ("Memory", {"fields": ["keep_alive"]}),
        (
            "Default options",
            {
                "fields": [*OPTION_FIELD_NAMES],
                "description": "Sent with every reply from this model. Users' own settings "
                "(below) take precedence within their bounds.",
            },
        ),
        (
            "What users may change per conversation",
            {
                "fields": [
                    (f"user_{name}", f"user_{name}_min", f"user_{name}_max")
                    for name in USER_OPTIONS
                ]
            },
        ),
    ]

    class Media:
        css = {"all": ["css/admin.css"]}

    # --- the list ------------------------------------------------------------------------------

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        return [*self.list_display, self._loaded_column(request)]

    def _loaded_column(self, request: HttpRequest) -> Callable[[LanguageModel], str]:
        # Asked once per page: what Ollama has in memory now.
        try:
            loaded: dict[str, Loaded] | None = loaded_models()
        except OllamaError as error:
            loaded = None
            self.message_user(request, f"Could not ask what is loaded: {error}", messages.WARNING)

        @admin.display(description="Loaded now")
        def loaded_now(model: LanguageModel) -> str:
            if loaded is None:
                return "?"
            return _loaded_text(loaded.get(model.name.lower()))

        return loaded_now

    @admin.display(description="Capabilities")
    def capabilities_text(self, model: LanguageModel) -> str:
        return ", ".join(model.capabilities or []) or "—"

    @admin.display(description="Size", ordering="size")
    def size_text(self, model: LanguageModel) -> str:
        return filesizeformat(model.size) if model.size else "—"

    @admin.display(description="Parameters")
    def parameters_text(self, model: LanguageModel) -> str:
        return " · ".join(p for p in (model.parameter_size, model.quantization_level) if p) or "—"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Running by status, minus those whose worker died (stale heartbeat).
        candidates = ModelPull.objects.filter(status=ModelPull.Status.RUNNING)
        running = [pull for pull in candidates if pull.is_running]
        context = {
            **(extra_context or {}),
            "can_manage_server": request.user.has_perm(MANAGE_SERVER),
            "running_pulls": running,
        }
        return super().changelist_view(request, context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {
            **(extra_context or {}),
            "can_manage_server": request.user.has_perm(MANAGE_SERVER),
        }
        return super().change_view(request, object_id, form_url, context)

    # --- actions on the server -------------------------------------------------------------------

    def has_manage_ollama_server_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(MANAGE_SERVER)

    @admin.action(description="Load selected models into memory now", permissions=[_MANAGE])
    def preload_selected(self, request: HttpRequest, queryset: QuerySet[LanguageModel]) -> None:
        self._on_each(request, queryset, model_load, "Loaded")

    @admin.action(description="Unload selected models from memory", permissions=[_MANAGE])
    def unload_selected(self, request: HttpRequest, queryset: QuerySet[LanguageModel]) -> None:
        self._on_each(request, queryset, model_unload, "Unloaded")

    def _on_each(
        self,
        request: HttpRequest,
        models: QuerySet[LanguageModel] | list[LanguageModel],
        work: Callable[[LanguageModel], None],
        done: str,
    ) -> None:
        for model in models:
            try:
                work(model)
            except OllamaError as error:
                self.message_user(request, f"{model.name}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{done} {model.name}.", messages.SUCCESS)

    # --- extra pages ---------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        def view(function: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(self._managing_server(function))

        name = f"{self.opts.app_label}_{self.opts.model_name}"
        extra = [
            path("sync/", view(self.sync_view), name=f"{name}_sync"),
            path("pull/", view(self.pull_view), name=f"{name}_pull"),
            path(
                "pull/<int:pull_id>/", view(self.pull_progress_view), name=f"{name}_pull_progress"
            ),
            path(
                "pull/<int:pull_id>/cancel/",
                view(self.pull_cancel_view),
                name=f"{name}_pull_cancel",
            ),
            path("<path:object_id>/load/", view(self.load_view), name=f"{name}_load"),
            path("<path:object_id>/unload/", view(self.unload_view), name=f"{name}_unload"),
            path(
                "<path:object_id>/delete-from-server/",
                view(self.delete_from_server_view),
                name=f"{name}_delete_from_server",
            ),
        ]
        return extra + super().get_urls()

    def _managing_server(
        self, function: Callable[..., HttpResponse]
    ) -> Callable[..., HttpResponse]:
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_perm(MANAGE_SERVER):
                raise PermissionDenied
            return function(request, *args, **kwargs)

        return checked

    def _changelist(self) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:conversations_languagemodel_changelist"))

    def sync_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._changelist()
        try:
            report = models_sync_now()
        except OllamaError as error:
            self.message_user(request, f"Sync failed: {error}", messages.ERROR)
        else:
            self.message_user(request, f"Synced from Ollama: {report.summary()}.", messages.SUCCESS)
        return self._changelist()

    def pull_view(self, request: HttpRequest) -> HttpResponse:
        form = PullForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            pull = pull_start(form.cleaned_data["name"], request.user)
            return HttpResponseRedirect(
                reverse("admin:conversations_languagemodel_pull_progress", args=[pull.pk])
            )
        context = admin_page_context(
            self, request, "Pull a model", form=form, pulls=ModelPull.objects.all()[:20]
        )
        return TemplateResponse(request, "admin/conversations/languagemodel/pull.html", context)

    def pull_progress_view(self, request: HttpRequest, pull_id: int) -> HttpResponse:
        pull = get_object_or_404(ModelPull, pk=pull_id)
        context = admin_page_context(self, request, f"Pulling {pull.name}", pull=pull)
        template = "admin/conversations/languagemodel/pull_progress.html"
        if getattr(request, "htmx", False):
            template += "#progress"
        return TemplateResponse(request, template, context)

    def pull_cancel_view(self, request: HttpRequest, pull_id: int) -> HttpResponse:
        pull = get_object_or_404(ModelPull, pk=pull_id)
        if request.method == "POST":
            pull_cancel(pull)
        return HttpResponseRedirect(
            reverse("admin:conversations_languagemodel_pull_progress", args=[pull.pk])
        )

    def load_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._one(request, object_id, model_load, "Loaded")

    def unload_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._one(request, object_id, model_unload, "Unloaded")

    def _one(
        self,
        request: HttpRequest,
        object_id: str,
        work: Callable[[LanguageModel], None],
        done: str,
    ) -> HttpResponse:
        model = get_object_or_404(LanguageModel, pk=object_id)
        if request.method == "POST":
            self._on_each(request, [model], work, done)
        return HttpResponseRedirect(
            reverse("admin:conversations_languagemodel_change", args=[model.pk])
        )

    def delete_from_server_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        model = get_object_or_404(LanguageModel, pk=object_id)
        if request.method == "POST":
            try:
                model_delete_from_server(model)
            except OllamaError as error:
                self.message_user(request, f"{model.name}: {error}", messages.ERROR)
                return HttpResponseRedirect(
                    reverse("admin:conversations_languagemodel_change", args=[model.pk])
                )
            self.message_user(
                request,
                f"Deleted {model.name} from the Ollama server. It is no longer offered; "
                "conversations with it keep their history.",
                messages.SUCCESS,
            )
            return self._changelist()
        context = admin_page_context(
            self,
            request,
            f"Delete {model.name} from the Ollama server?",
            model=model,
            conversation_count=model.conversations.count(),
        )
        return TemplateResponse(
            request, "admin/conversations/languagemodel/delete_from_server.html", context
        )
