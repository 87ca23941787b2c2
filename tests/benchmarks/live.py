"""The live stack the socket figures run against: the fake Ollama and the app under daphne as
real processes on loopback, sharing the benchmark's database, and a user logged in through the
login form. Also the data those figures need, made before any client connects."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from conversations.models import Conversation, LanguageModel, Message
from tests.benchmarks.browser import log_in
from tests.benchmarks.processes import FakeOllama, fake_ollama_process
from tests.live_server import LiveServer, daphne_process, database_url, server_environment

PASSWORD = secrets.token_urlsafe(16)


@dataclass(frozen=True)
class ClockModel:
    """A fake model whose tokens carry the moment they were sent (see fake_ollama --help)."""

    name: str
    tokens_per_second: float
    reply_tokens: int

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.tokens_per_second:g}:{self.reply_tokens}"


@dataclass(frozen=True)
class Live:
    app: LiveServer
    fake: FakeOllama
    owner: User
    cookie: str


@contextmanager
def live_stack(
    *,
    log_dir: Path,
    static_root: Path,
    models: list[ClockModel],
    redis_url: str = "",
    settings_module: str = "chatsite.settings",
) -> Iterator[Live]:
    """The processes, their logs in ``log_dir``."""
    owner = User.objects.create(
        username=f"bench-{secrets.token_hex(3)}",
        password=make_password(PASSWORD, hasher="pbkdf2_sha256"),  # the production hasher
    )
    for model in models:
        LanguageModel.objects.update_or_create(
            name=model.name,
            defaults={
                "enabled": True,
                "capabilities": ["completion"],
                # Some figures ask for shorter replies, as a user may: the reply length limit.
                "user_options": {"num_predict": {"min": None, "max": None}},
            },
        )
    env = server_environment(
        data_dir=Path(settings.DATA_DIR),
        static_root=static_root,
        db_url=database_url(connection.settings_dict),
        secret_key=settings.SECRET_KEY,
        extra={"REDIS_URL": redis_url} if redis_url else {},
    )
    env["DJANGO_SETTINGS_MODULE"] = settings_module
    with ExitStack() as stack:
        fake = stack.enter_context(
            fake_ollama_process(env, [m.spec for m in models], log_dir / "fake-ollama.log")
        )
        app = stack.enter_context(
            daphne_process({**env, "OLLAMA_HOST": fake.url}, log_dir / "daphne.log", timeout=90)
        )
        cookie = log_in(app.url, owner.username, PASSWORD)
        yield Live(app=app, fake=fake, owner=owner, cookie=cookie)


def new_conversations(
    owner: User, model_name: str, count: int, *, options: dict[str, Any] | None = None
) -> list[int]:
    """Conversations that each had one exchange already, so a reply is not the first one (which
    would also ask the model for a title)."""
    model = LanguageModel.objects.get(name=model_name)
    conversations = Conversation.objects.bulk_create(
        Conversation(
            owner=owner,
            model=model,
            model_name=model_name,
            title=f"Bench {n}",
            options=options or {},
        )
        for n in range(count)
    )
    earlier = timezone.now() - timedelta(minutes=5)
    Message.objects.bulk_create(
        Message(conversation=c, role=role, content=text, created_at=earlier, model_name=model_name)
        for c in conversations
        for role, text in (("user", "Hello"), ("assistant", "Hello! How can I help?"))
    )
    return [c.pk for c in conversations]
