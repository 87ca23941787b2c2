"""Create the first admin account on a fresh install and print its password once."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Create an admin account with a random password when no admin exists yet, and print "
        "the credentials. Does nothing when an admin exists."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--login-url",
            default="http://127.0.0.1:8000/accounts/login/",
            help="Where to log in, printed with the credentials.",
        )

    def handle(self, *args: Any, username: str, login_url: str, **options: Any) -> None:
        users = get_user_model()._default_manager
        if users.filter(is_superuser=True).exists():
            return
        if users.filter(username=username).exists():
            raise CommandError(
                f"A user named {username!r} exists but is not an admin: pass --username NAME."
            )
        password = secrets.token_urlsafe(12)
        users.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            self.style.SUCCESS("Created the first admin account.")
            + " Keep this password now: it is not shown again.\n"
            f"  username: {username}\n"
            f"  password: {password}\n"
            f"  log in:   {login_url}"
        )
