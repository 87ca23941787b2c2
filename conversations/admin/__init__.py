"""The Django admin: models on offer, system prompts, conversations and usage."""

from conversations.admin import conversations_admin, models_admin, prompts_admin

__all__ = ["conversations_admin", "models_admin", "prompts_admin"]

from django.contrib import admin  # noqa: E402

admin.site.site_header = "Chat administration"
admin.site.site_title = "Chat admin"
admin.site.index_title = "Models, system prompts and usage"
