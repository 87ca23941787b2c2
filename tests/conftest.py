"""The shared cast (a user, a teammate, a model, a conversation) and the live server and browser."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvloop
from asgiref.sync import SyncToAsync, sync_to_async
from channels.layers import channel_layers
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections
from django.test import Client
from django.utils import timezone
from PIL import Image

from conversations.db import database_thread_close, database_thread_close_blocking
from conversations.fake_ollama import FakeOllamaServer, default_catalogue
from conversations.generation import generations_interrupt
from conversations.models import Conversation, LanguageModel, Message
from conversations.ollama import close_client
from conversations.roles import CHAT_ADMINS
from conversations.services import message_image_attach
from tests.live_server import LiveServer, daphne_process, database_url, server_environment

PASSWORD = "correct horse battery staple"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    """pytest-django's, and whatever a test left open in the worker's database thread (and in
    asgiref's, where the async ORM runs) closed before the test database is dropped:
    PostgreSQL refuses to drop a database in use."""
    yield
    database_thread_close_blocking()
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests marked ``both_event_loops`` run on asyncio's own event loop and on uvloop's, the
    one daphne runs on (chatsite/serve.py); the others on asyncio's."""
    if item.get_closest_marker("both_event_loops") is None:
        return {"asyncio": asyncio.new_event_loop}
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's event loop stays up from the first one to the end of
    the session, and async tests cannot run their own loop beside it."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def make_user(username: str, *, real_hash: bool = False, **fields: object) -> User:
    """A user whose password is PASSWORD. ``real_hash`` uses the production hasher, which a
    daphne process running the real settings can check."""
    user = User(username=username, **fields)
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256" if real_hash else "default")
    user.save()
    return user


def make_chat_admin(username: str = "curator", *, real_hash: bool = False) -> User:
    """Staff in the shipped "Chat admins" group, not a superuser."""
    admin = make_user(username, real_hash=real_hash, is_staff=True)
    admin.groups.add(Group.objects.get(name=CHAT_ADMINS))
    return admin


@pytest.fixture
def chat_admin(client: Client, db: None) -> Client:
    """The test client, logged in as a chat admin."""
    client.force_login(make_chat_admin())
    return client


@pytest.fixture
def user(db: None) -> User:
    return make_user("alice")


@pytest.fixture
def other_user(db: None) -> User:
    return make_user("bob")


@pytest.fixture
def language_model(db: None) -> LanguageModel:
    return LanguageModel.objects.create(
        name="llama3.2:latest",
        display_name="Llama 3.2",
        enabled=True,
        is_default=True,
        capabilities=["completion", "tools"],
        context_length=131072,
    )


@pytest.fixture
def conversation(user: User, language_model: LanguageModel) -> Conversation:
    return Conversation.objects.create(
        owner=user, title="Trip to Lisbon", model=language_model, model_name=language_model.name
    )


@pytest.fixture(scope="session")
def fake_ollama_session() -> Iterator[FakeOllamaServer]:
    """The fake Ollama the live app talks to, for the whole session (see ``browser_ollama``)."""
    server = FakeOllamaServer().start()
    yield server
    server.stop()


@pytest.fixture
def browser_ollama(fake_ollama_session: FakeOllamaServer) -> FakeOllamaServer:
    """The live app's fake Ollama, with fresh models and an empty request log for this test.
    Replies stream at 40 tokens/s, slow enough to watch."""
    models = default_catalogue()
    for model in models:
        if model.tokens_per_second:
            model.tokens_per_second = 40
    fake_ollama_session.models = {model.name: model for model in models}
    fake_ollama_session.loaded.clear()
    fake_ollama_session.requests.clear()
    return fake_ollama_session


def live_server_environment(fake: FakeOllamaServer, **extra: str) -> dict[str, str]:
    """A production-like daphne's environment: the test database and data directory, the
    static files collected once for the session, and the given fake Ollama."""
    return server_environment(
        data_dir=Path(settings.DATA_DIR),
        static_root=Path(settings.DATA_DIR) / "collected-static",
        db_url=database_url(connection.settings_dict),
        secret_key=settings.SECRET_KEY,
        extra={"OLLAMA_HOST": fake.url, **extra},
    )


@pytest.fixture(scope="session")
def app_server_session(
    django_db_setup: None,
    tmp_path_factory: pytest.TempPathFactory,
    fake_ollama_session: FakeOllamaServer,
) -> Iterator[LiveServer]:
    """One daphne process for the session, on the test database, with production settings."""
    work = tmp_path_factory.mktemp("daphne")
    env = live_server_environment(fake_ollama_session)
    with daphne_process(env, work / "daphne.log") as server:
        yield server


@pytest.fixture
def app_server(app_server_session: LiveServer, transactional_db: None) -> LiveServer:
    """The live app; the test's data is committed, so the server process sees it."""
    return app_server_session


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: install Debian's chromium (make test does) "
            "or set CHROMIUM_PATH."
        )
    # Playwright's sync API keeps an event loop running in this thread, so Django would refuse
    # ORM calls from browser tests; allow them while the browser runs. The app's own server
    # process never gets this variable.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllamaServer]:
    """The project's fake Ollama, a real HTTP server on loopback, fresh for each test.

    Its models stream at 1,000 tokens/s here (100 in a demo) to keep the suite quick."""
    models = default_catalogue()
    for model in models:
        if model.tokens_per_second:
            model.tokens_per_second = 1000
    server = FakeOllamaServer(models=models).start()
    yield server
    server.stop()


@pytest.fixture
async def live(settings, fake_ollama: FakeOllamaServer) -> AsyncIterator[FakeOllamaServer]:  # type: ignore[no-untyped-def]
    """The app's sockets and replies in this process against the fake Ollama (for tests that
    drive the ASGI application directly); every reply is ended after the test."""
    settings.OLLAMA_BASE_URL = fake_ollama.url
    # A fresh channel layer for this test's event loop: a Redis layer's locks belong to one loop.
    channel_layers.backends.clear()
    yield fake_ollama
    await generations_interrupt()
    await close_client()
    await channel_layers["default"].flush()
    channel_layers.backends.clear()
    # The worker's database thread keeps its connection, and so does asgiref's thread, where
    # the async ORM runs: a test's transactional teardown, and PostgreSQL dropping the test
    # database, need them closed.
    await database_thread_close()
    await sync_to_async(connections.close_all)()


def local_today_at(hour: int) -> datetime:
    """Today at ``hour`` o'clock on the site's clock: a fixed point of today, whatever the hour
    the tests run at (noon: an hour or a day either side of it stays on the same day, or the
    one before)."""
    return timezone.localtime().replace(hour=hour, minute=0, second=0, microsecond=0)


def many_conversations(owner: User, model: LanguageModel, count: int, **fields: object) -> None:
    """``count`` conversations in one insert, the newest first, an hour apart in pairs from
    today's noon back (for the sidebar's tests and benchmark). Counting back from noon and not
    from now keeps each one's day the same whenever the tests run: from now, one an hour old
    would be yesterday's between midnight and one."""
    now = local_today_at(12)
    Conversation.objects.bulk_create(
        Conversation(
            owner=owner,
            model=model,
            model_name=model.name,
            title=f"Chat {number}",
            # Pairs share a moment, so paging must also order by id.
            updated_at=now - timedelta(hours=number // 2),
            **fields,
        )
        for number in range(count)
    )


T0 = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
TITLE = 'Plan "B"\nfor Zürich ✓'


def png(width: int = 4, height: int = 3) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def rich(user: User, language_model: LanguageModel) -> Conversation:
    """A conversation with thinking, code, a table, HTML in model output, an image, a stopped
    reply, an error reply, non-ASCII and a title with quotes and a newline."""
    conversation = Conversation.objects.create(
        owner=user,
        title=TITLE,
        model=language_model,
        model_name=language_model.name,
        system_prompt_name="Brief",
        system_prompt_text="Be brief.\nUse metric units.",
        options={"temperature": 0.3},
        created_at=T0,
        updated_at=T0,
    )

    def add(minutes: int, **fields: object) -> Message:
        return Message.objects.create(
            conversation=conversation, created_at=T0 + timedelta(minutes=minutes), **fields
        )

    question = add(0, role="user", content="Compare these two <b>routes</b>, please.")
    message_image_attach(message=question, upload=SimpleUploadedFile("map.png", png()))
    add(
        1,
        role="assistant",
        model_name="llama3.2:latest",
        thinking="They want a comparison.",
        content=(
            "Route **A** is shorter.\n\n"
            "| Route | km |\n|:--|--:|\n| A | 12 |\n| B | 15 |\n\n"
            "```python\ndef km(route):\n    return {'A': 12}[route]\n```\n\n"
            "<script>alert(1)</script> [click](javascript:alert(1)) ünïcödé"
        ),
        eval_count=50,
        eval_duration=2_000_000_000,
        prompt_eval_count=26,
        done_reason="stop",
    )
    add(2, role="user", content="And by bike?")
    add(
        3,
        role="assistant",
        model_name="llama3.2:latest",
        status="stopped",
        content="By bike, route B is",
    )
    add(4, role="user", content="Try again")
    add(
        5,
        role="assistant",
        model_name="llama3.2:latest",
        status="error",
        error="Ollama is not reachable at http://127.0.0.1:11434: start it with `ollama serve`.",
    )
    return conversation
