"""Two daphne workers sharing PostgreSQL and Redis: a reply generated on one worker streams to a
tab served by the other, which can stop it. Needs the PostgreSQL and Redis of this machine (CI
has them); elsewhere these tests are skipped, saying why."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings
from playwright.sync_api import Page, expect

from conversations.fake_ollama import FakeOllamaServer
from tests.conftest import PASSWORD
from tests.live_server import BASE_DIR, LiveServer, daphne_process, server_environment
from tests.shown import shown_text

pytestmark = pytest.mark.browser

POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/7")


def require_services() -> None:
    problems = []
    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except psycopg.Error as error:
        problems.append(f"PostgreSQL at {POSTGRES}: {error}")
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        problems.append(f"Redis at {REDIS}: {error}")
    if problems:
        message = "needs PostgreSQL and Redis: " + "; ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(message)  # CI has both: their absence is a broken machine
        pytest.skip(message)


@pytest.fixture(scope="module")
def shared_stack(fake_ollama_session: FakeOllamaServer) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database and Redis database, migrated, with a user and a model."""
    require_services()
    name = f"chat_workers_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS).flushdb()
    env = server_environment(
        data_dir=Path(settings.DATA_DIR),
        static_root=Path(settings.DATA_DIR) / "collected-static",
        db_url=POSTGRES.rsplit("/", 1)[0] + f"/{name}",
        secret_key=settings.SECRET_KEY,
        extra={"REDIS_URL": REDIS, "OLLAMA_HOST": fake_ollama_session.url},
    )
    try:
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(
            env,
            "shell",
            "-c",
            (
                "from django.contrib.auth.models import User;"
                "from conversations.models import LanguageModel;"
                f"User.objects.create_user('carol', password={PASSWORD!r});"
                "LanguageModel.objects.create(name='llama3.2:latest', enabled=True, is_default=True,"
                " capabilities=['completion'])"
            ),
        )
        yield env
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        redis.Redis.from_url(REDIS).flushdb()


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def reply_in_database(env: dict[str, str]) -> dict[str, str]:
    out = manage(
        env,
        "shell",
        "-c",
        (
            "import json; from conversations.models import Message;"
            "m = Message.objects.filter(role='assistant').last();"
            "print(json.dumps({'status': m.status, 'content': m.content}))"
        ),
    )
    return dict(json.loads(out.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def two_workers(
    shared_stack: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    logs = tmp_path_factory.mktemp("workers")
    with (
        daphne_process(shared_stack, logs / "a.log") as a,
        daphne_process(shared_stack, logs / "b.log") as b,
    ):
        yield a, b


def test_a_reply_from_one_worker_streams_to_and_is_stopped_from_another(
    page: Page,
    two_workers: tuple[LiveServer, LiveServer],
    shared_stack: dict[str, str],
    browser_ollama: FakeOllamaServer,
) -> None:
    worker_a, worker_b = two_workers
    browser_ollama.model("llama3.2").reply_tokens = 400
    page.goto(f"{worker_a.url}/accounts/login/")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.fill("[data-testid=composer] textarea[name=content]", "Hello there")
    page.get_by_test_id("send").click()
    expect(page).to_have_url(re.compile(r"/conversations/\d+/$"))
    path = page.url.split(worker_a.url, 1)[1]
    reply_on_a = page.locator("[data-testid=message][data-role=assistant]").last
    expect(reply_on_a.get_by_test_id("message-content")).to_contain_text("Hello from")

    # The same user, in a tab served by the other worker (the session lives in PostgreSQL).
    other = page.context.new_page()
    other.goto(f"{worker_b.url}{path}")
    reply_on_b = other.locator("[data-testid=message][data-role=assistant]").last
    body_on_b = reply_on_b.get_by_test_id("message-content")
    before = body_on_b.text_content() or ""
    expect(body_on_b).not_to_have_text(before)  # deltas from worker A arrive through Redis
    other.get_by_test_id("stop").click()  # the stop reaches worker A through Redis

    expect(reply_on_a).to_have_attribute("data-status", "stopped")
    expect(reply_on_b).to_have_attribute("data-status", "stopped")
    saved = reply_in_database(shared_stack)
    assert saved["status"] == "stopped"
    shown = shown_text(saved["content"])
    assert reply_on_a.get_by_test_id("message-content").text_content() == shown
    assert body_on_b.text_content() == shown
    assert browser_ollama.wait_for(lambda: browser_ollama.requests_to("/api/chat")[0].disconnected)
