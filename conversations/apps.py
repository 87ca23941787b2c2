from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConversationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversations"
    verbose_name = "Chat"

    def ready(self) -> None:
        from conversations.roles import chat_admins_group_ensure

        # After this app's migrations (and the permissions Django creates for them).
        post_migrate.connect(chat_admins_group_ensure, sender=self)
