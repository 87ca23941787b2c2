"""Admin registration. The full model and prompt management pages come with the admin work."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.utils.http import content_disposition_header

from conversations.export import export_entries, in_batches, zip_stream
from conversations.models import (
    Conversation,
    LanguageModel,
    Message,
    MessageImage,
    SystemPrompt,
    SystemPromptVersion,
)
from conversations.services import system_prompt_save


@admin.register(LanguageModel)
class LanguageModelAdmin(admin.ModelAdmin[LanguageModel]):
    list_display = ["name", "display_name", "enabled", "is_default", "context_length", "position"]
    list_editable = ["enabled", "position"]
    list_filter = ["enabled"]
    search_fields = ["name", "display_name"]


class SystemPromptVersionInline(admin.TabularInline[SystemPromptVersion, SystemPrompt]):
    model = SystemPromptVersion
    fields = ("number", "created_at", "created_by", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SystemPrompt)
class SystemPromptAdmin(admin.ModelAdmin[SystemPrompt]):
    list_display = [
        "name",
        "enabled",
        "user_selectable",
        "is_default",
        "default_for_model",
        "locked",
    ]
    list_filter = ["enabled", "locked"]
    search_fields = ["name", "text"]
    inlines = [SystemPromptVersionInline]

    def save_model(
        self, request: HttpRequest, obj: SystemPrompt, form: ModelForm[SystemPrompt], change: bool
    ) -> None:
        # Every change of text is kept as a version, with who made it.
        system_prompt_save(prompt=obj, edited_by=request.user)  # type: ignore[arg-type]


class MessageInline(admin.StackedInline[Message, Conversation]):
    model = Message
    fields = ("role", "status", "content", "thinking", "error", "model_name", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.action(description="Export selected conversations (zip of JSON)")
def export_selected(
    modeladmin: ConversationAdmin, request: HttpRequest, queryset: QuerySet[Conversation]
) -> HttpResponseBase | None:
    if not settings.ADMIN_CAN_READ_TRANSCRIPTS:
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
    list_filter = ["archived", "model_name"]
    search_fields = ["owner__username", "model_name"]
    raw_id_fields = ["owner", "model", "system_prompt_version"]
    actions = [export_selected]

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        # Titles come from what users wrote: private too.
        if settings.ADMIN_CAN_READ_TRANSCRIPTS:
            return ["title", "owner", "model_name", "updated_at", "pinned", "archived"]
        return ["__str__", "owner", "model_name", "updated_at", "pinned", "archived"]

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        private = ["title", "system_prompt_text"]
        return [] if settings.ADMIN_CAN_READ_TRANSCRIPTS else private

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        # What users wrote stays private unless the operator decided otherwise.
        return [MessageInline] if settings.ADMIN_CAN_READ_TRANSCRIPTS else []

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        fields = list(self.search_fields)
        return [*fields, "title"] if settings.ADMIN_CAN_READ_TRANSCRIPTS else fields


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = ["id", "conversation_id", "role", "status", "model_name", "created_at"]
    list_filter = ["role", "status"]
    raw_id_fields = ["conversation"]

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if settings.ADMIN_CAN_READ_TRANSCRIPTS else ["content", "thinking", "error"]


@admin.register(MessageImage)
class MessageImageAdmin(admin.ModelAdmin[MessageImage]):
    list_display = ["id", "message", "content_type", "size", "width", "height"]
    raw_id_fields = ["message"]


@admin.register(SystemPromptVersion)
class SystemPromptVersionAdmin(admin.ModelAdmin[SystemPromptVersion]):
    list_display = ["prompt", "number", "created_at", "created_by"]
    readonly_fields = ["prompt", "number", "text", "created_at", "created_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
