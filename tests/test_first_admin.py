"""`make run` creates the first admin and prints the password once."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command("create_first_admin", *args, stdout=out)
    return out.getvalue()


def test_a_fresh_install_gets_an_admin_whose_printed_password_logs_in(client: Client) -> None:
    output = run_command()

    password = re.search(r"password: (\S+)", output)
    assert password is not None
    assert "username: admin" in output
    assert "http://127.0.0.1:8000/accounts/login/" in output
    response = client.post("/accounts/login/", {"username": "admin", "password": password[1]})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_the_password_is_printed_only_once() -> None:
    run_command()
    assert run_command() == ""
    assert User.objects.filter(is_superuser=True).count() == 1


def test_an_existing_admin_means_nothing_is_created() -> None:
    User.objects.create_superuser("boss", password="x")
    assert run_command() == ""
    assert not User.objects.filter(username="admin").exists()


def test_a_non_admin_user_with_the_name_is_not_taken_over() -> None:
    User.objects.create_user("admin", password="x")
    with pytest.raises(CommandError, match="exists but is not an admin"):
        run_command()
