"""Conversations as admins see them: metadata always; titles and transcripts only when the
operator allows it (ADMIN_CAN_READ_TRANSCRIPTS), read-only and through the chat's sanitizer.
And the usage page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.http import content_disposition_header

from conversations.admin.pages import admin_page_context
from conversations.export import export_entries, in_batches, zip_stream
from conversations.models import Conversation, Message
from conversations.usage import PERIODS, usage_report

PRIVATE_NOTE = (
    "Transcripts are private: admins see metadata only (ADMIN_CAN_READ_TRANSCRIPTS is off)."
)


def transcripts_readable() -> bool:
    return bool(settings.ADMIN_CAN_READ_TRANSCRIPTS)


@admin.action(description="Export selected conversations (zip of JSON)")
def export_selected(
    modeladmin: ConversationAdmin, request: HttpRequest, queryset: QuerySet[Conversation]
) -> HttpResponseBase | None:
    if not transcripts_readable():
        modeladmin.message_user(
            request,
            "Transcripts are private: set ADMIN_CAN_READ_TRANSCRIPTS=1 to let admins export them.",
            level=messages.ERROR,
        )
        return None
    rows = in_batches(queryset)
    response = StreamingHttpResponse(
        zip_stream(export_entries(rows, ["json"])), content_type="application/zip"
    )
    response["Content-Disposition"] = content_disposition_header(True, "conversations.zip")
    return response


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_filter = [
        ("model", admin.RelatedOnlyFieldListFilter),
        ("owner", admin.RelatedOnlyFieldListFilter),
        "updated_at",
        "archived",
    ]
    date_hierarchy = "updated_at"
    search_fields = ["owner__username", "model_name"]
    actions = [export_selected]
    metadata_fields = [
        "owner",
        "model_name",
        "system_prompt_name",
        "system_prompt_version",
        "created_at",
        "updated_at",
        "message_count",
        "token_count",
        "pinned",
        "archived",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return (
            super()
            .get_queryset(request)
            .select_related("owner", "system_prompt_version__prompt")
            .annotate(
                messages_total=Count("messages"),
                tokens_total=Coalesce(Sum("messages__prompt_eval_count"), 0)
                + Coalesce(Sum("messages__eval_count"), 0),
            )
        )

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        # Titles come from what users wrote: private too.
        first = "title" if transcripts_readable() else "__str__"
        return [first, "owner", "model_name", "message_count", "token_count", "updated_at"]

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        fields = list(self.search_fields)
        return [*fields, "title"] if transcripts_readable() else fields

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if transcripts_readable():
            return ["title", *self.metadata_fields]
        return list(self.metadata_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)

    @admin.display(description="Messages", ordering="messages_total")
    def message_count(self, conversation: Conversation) -> int:
        return getattr(conversation, "messages_total", 0)

    @admin.display(description="Tokens", ordering="tokens_total")
    def token_count(self, conversation: Conversation) -> int:
        return getattr(conversation, "tokens_total", 0)

    # Read-only: transcripts are a record, not something admins edit.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(request, self._privacy_context(request, extra_context))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = self._privacy_context(request, extra_context)
        if transcripts_readable():
            # Shown read-only below the metadata, through the chat's own sanitizing filters:
            # model output is untrusted in the admin too.
            context["transcript"] = Message.objects.filter(
                conversation_id=object_id
            ).prefetch_related("images")
        return super().change_view(request, object_id, form_url, context)

    def _privacy_context(
        self, request: HttpRequest, extra_context: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            **(extra_context or {}),
            "privacy_note": "" if transcripts_readable() else PRIVATE_NOTE,
            "can_view_usage": request.user.has_perm("conversations.view_usage"),
        }

    # --- usage ----------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        usage = path("usage/", self.admin_site.admin_view(self.usage_view), name=f"{name}_usage")
        return [usage, *super().get_urls()]

    def usage_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("conversations.view_usage"):
            raise PermissionDenied
        try:
            days = int(request.GET.get("days", PERIODS[0]))
        except ValueError:
            days = PERIODS[0]
        if days not in PERIODS:
            days = PERIODS[0]
        context = admin_page_context(
            self, request, f"Usage, last {days} days", report=usage_report(days), periods=PERIODS
        )
        return TemplateResponse(request, "admin/conversations/conversation/usage.html", context)
