"""The "Chat admins" group the app ships: staff in it curate models and prompts and see usage.

Permissions are created after the migrations run, so the group is brought up to date by a
``post_migrate`` handler rather than by a data migration. It only adds what is missing: an
operator who gives the group more keeps it.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

CHAT_ADMINS = "Chat admins"

# (app label, codename)
CHAT_ADMIN_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("conversations", "view_languagemodel"),
    ("conversations", "add_languagemodel"),
    ("conversations", "change_languagemodel"),
    ("conversations", "delete_languagemodel"),
    ("conversations", "manage_ollama_server"),
    ("conversations", "view_modelpull"),
    ("conversations", "view_systemprompt"),
    ("conversations", "add_systemprompt"),
    ("conversations", "change_systemprompt"),
    ("conversations", "delete_systemprompt"),
    ("conversations", "view_systempromptversion"),
    ("conversations", "view_conversation"),
    ("conversations", "view_usage"),
)


def chat_admins_group_ensure(**kwargs: Any) -> Group:
    group, _ = Group.objects.get_or_create(name=CHAT_ADMINS)
    wanted = Permission.objects.filter(
        content_type__app_label="conversations",
        codename__in=[codename for _, codename in CHAT_ADMIN_PERMISSIONS],
    )
    group.permissions.add(*wanted)
    return group
