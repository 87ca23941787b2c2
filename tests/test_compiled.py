"""Queries built by the ORM once and then only run (conversations/compiled.py): each gives
what its queryset gives, on SQLite and (make test-postgres) PostgreSQL, and is built once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.db.models.sql.compiler import SQLCompiler, SQLUpdateCompiler
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations import prompting, turns
from conversations.compiled import CompiledQuery, CompiledUpdate
from conversations.models import Conversation, LanguageModel, Message, SystemPrompt

pytestmark = pytest.mark.django_db


def _field_values(instance: object) -> dict[str, object]:
    meta = type(instance)._meta  # type: ignore[attr-defined]
    return {f.attname: getattr(instance, f.attname) for f in meta.concrete_fields}


@contextmanager
def sql_builds(compiler: type[SQLCompiler]) -> Iterator[list[int]]:
    """One item for each time the ORM builds SQL with ``compiler`` (its ``as_sql``)."""
    built: list[int] = []
    as_sql = compiler.as_sql

    def counting(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        built.append(1)
        return as_sql(self, *args, **kwargs)

    with mock.patch.object(compiler, "as_sql", counting):
        yield built


@pytest.fixture
def compile_count() -> Iterator[list[int]]:
    """How many times the ORM built a SELECT's SQL."""
    with sql_builds(SQLCompiler) as built:
        yield built


def test_the_locked_conversation_is_the_querysets_with_its_model(
    conversation: Conversation,
) -> None:
    """Every field as the ORM loads it (the options' JSON, the times, the flags), the model in
    its field's cache (no query more to reach it), and the saved state of a loaded row."""
    conversation.options = {"temperature": 0.2, "num_ctx": 4096}
    conversation.pinned = True
    conversation.save()
    language_model = conversation.model
    assert language_model is not None
    language_model.default_options = {"top_k": 20}
    language_model.keep_alive = "10m"
    language_model.save()
    with transaction.atomic():
        expected = Conversation.objects.select_related("model").filter(pk=conversation.pk).get()
        found = turns._LOCKED_CONVERSATION.instances(conversation.pk)
        assert len(found) == 1
        with CaptureQueriesContext(connection) as context:
            locked_model = found[0].model
    assert context.captured_queries == []
    assert _field_values(found[0]) == _field_values(expected)
    assert locked_model is not None and expected.model is not None
    assert _field_values(locked_model) == _field_values(expected.model)
    assert found[0]._state.adding is False and found[0]._state.db == "default"
    found[0].title = "Saved as any loaded row is"
    found[0].save(update_fields=["title"])
    assert Conversation.objects.get(pk=conversation.pk).title == "Saved as any loaded row is"


def test_a_conversation_without_a_model_is_found_with_none(user: User) -> None:
    imported = Conversation.objects.create(owner=user, model=None, model_name="gone:latest")
    with transaction.atomic():
        (found,) = turns._LOCKED_CONVERSATION.instances(imported.pk)
    assert found.model is None
    assert found.model_name == "gone:latest"


def test_a_conversation_that_is_gone_is_not_found(conversation: Conversation) -> None:
    with transaction.atomic():
        assert turns._LOCKED_CONVERSATION.instances(conversation.pk + 1000) == []


def test_the_history_rows_are_the_querysets(
    conversation: Conversation, user: User, language_model: LanguageModel
) -> None:
    """In the conversation's order (created_at, then id), only this conversation's."""
    later = timezone.now() + timedelta(minutes=5)
    first = Message.objects.create(conversation=conversation, role="user", content="Hi")
    Message.objects.create(
        conversation=conversation, role="assistant", content="Hello", status="complete"
    )
    Message.objects.filter(pk=first.pk).update(created_at=later)  # now the last one
    other = Conversation.objects.create(
        owner=user, model=language_model, model_name=language_model.name
    )
    Message.objects.create(conversation=other, role="user", content="Not this one")
    expected = list(
        Message.objects.filter(conversation_id=conversation.pk).values_list(
            "id", "role", "content", "status"
        )
    )
    assert [row[2] for row in expected] == ["Hello", "Hi"]
    assert prompting._HISTORY.rows(conversation.pk) == expected
    assert prompting._HISTORY.rows(other.pk + 1000) == []


def test_the_locked_prompt_is_found_whatever_the_models_id(
    language_model: LanguageModel,
) -> None:
    """Only a prompt enabled and locked to this model, not one of another model's."""
    other_model = LanguageModel.objects.create(name="qwen3:8b", enabled=True)
    for model in (language_model, other_model):
        assert prompting._LOCKED_PROMPT_ID.rows(model.pk) == []
    locked = SystemPrompt.objects.create(
        name="House rules",
        text="Be brief.",
        enabled=True,
        locked=True,
        default_for_model=other_model,
    )
    SystemPrompt.objects.create(
        name="Draft", text="Unused.", enabled=True, locked=False, default_for_model=language_model
    )
    assert prompting._LOCKED_PROMPT_ID.rows(other_model.pk) == [(locked.pk,)]
    assert prompting._LOCKED_PROMPT_ID.rows(language_model.pk) == []


def test_a_query_is_built_once_and_then_only_run(
    conversation: Conversation, compile_count: list[int]
) -> None:
    history = CompiledQuery(
        lambda pk: Message.objects.filter(conversation_id=pk).values_list("id", "content")
    )
    Message.objects.create(conversation=conversation, role="user", content="Hi")
    assert history.rows(conversation.pk) == [(conversation.messages.get().pk, "Hi")]
    built_first = len(compile_count)
    with CaptureQueriesContext(connection) as context:
        assert history.rows(conversation.pk + 1) == []
        assert len(history.rows(conversation.pk)) == 1
    assert built_first >= 1
    assert len(compile_count) == built_first  # not built again
    assert len(context.captured_queries) == 2


def test_a_queryset_that_does_not_use_its_key_is_refused(conversation: Conversation) -> None:
    everything = CompiledQuery(lambda pk: Message.objects.all())
    with pytest.raises(ValueError, match="does not use its key"):
        everything.rows(conversation.pk)


def test_values_are_not_taken_for_instances(conversation: Conversation) -> None:
    with pytest.raises(TypeError, match="values"):
        prompting._HISTORY.instances(conversation.pk)  # type: ignore[misc]


def test_an_update_changes_the_fields_given_and_nothing_else(
    conversation: Conversation, user: User, language_model: LanguageModel
) -> None:
    """As the queryset's update would: these fields of this row, the others as they were; a
    row that is gone is 0 rows. Built once for a set of fields, and again for another."""
    other = Conversation.objects.create(
        owner=user, title="Other", model=language_model, model_name=language_model.name
    )
    before = _field_values(Conversation.objects.get(pk=conversation.pk))
    later = timezone.now() + timedelta(hours=1)
    update = CompiledUpdate(Conversation)
    with sql_builds(SQLUpdateCompiler) as built:
        assert update.run(conversation.pk, {"updated_at": later, "title": "Lisbon, again"}) == 1
        assert update.run(conversation.pk, {"updated_at": later, "title": "Lisbon in May"}) == 1
        assert update.run(other.pk + 1000, {"updated_at": later, "title": "Nobody"}) == 0
        assert update.run(other.pk, {"updated_at": later}) == 1
    assert len(built) == 2
    after = _field_values(Conversation.objects.get(pk=conversation.pk))
    assert after == {**before, "updated_at": later, "title": "Lisbon in May"}
    assert Conversation.objects.get(pk=other.pk).title == "Other"
    assert Conversation.objects.get(pk=other.pk).updated_at == later


def test_an_update_with_a_condition_leaves_the_rows_that_do_not_meet_it(
    conversation: Conversation,
) -> None:
    """As a checkpoint is written: only a reply still streaming; one that has ended (or was
    swept as lost) keeps what it has, and the caller hears 0 rows."""
    streaming, ended = (
        Message.objects.create(
            conversation=conversation, role="assistant", status=status, content="So far"
        )
        for status in ("streaming", "complete")
    )
    checkpoint = CompiledUpdate(Message, where=Q(status="streaming"))
    lease = timezone.now() + timedelta(seconds=20)
    changes = {"content": "So far, and more", "thinking": "", "lease_expires_at": lease}
    assert checkpoint.run(streaming.pk, changes) == 1
    assert checkpoint.run(ended.pk, changes) == 0
    streaming.refresh_from_db()
    ended.refresh_from_db()
    assert (streaming.content, streaming.lease_expires_at) == ("So far, and more", lease)
    assert (ended.content, ended.lease_expires_at) == ("So far", None)


def test_an_update_writes_null_and_then_values_again(conversation: Conversation) -> None:
    """A NULL is written into the SQL, not passed: an update with one is built apart, and the
    same fields with a value again take the value."""
    update = CompiledUpdate(Message, where=Q(status="streaming"))
    reply = Message.objects.create(
        conversation=conversation,
        role="assistant",
        status="streaming",
        lease_expires_at=timezone.now(),
    )
    later = timezone.now() + timedelta(minutes=1)
    assert update.run(reply.pk, {"error": "", "lease_expires_at": None}) == 1
    reply.refresh_from_db()
    assert reply.lease_expires_at is None
    assert update.run(reply.pk, {"error": "Stopped.", "lease_expires_at": later}) == 1
    reply.refresh_from_db()
    assert (reply.error, reply.lease_expires_at) == ("Stopped.", later)


def test_an_update_with_an_expression_is_refused(conversation: Conversation) -> None:
    """An expression is part of the SQL itself: built once, it would be every later value; and
    given after a plain value, it would be saved as its own name."""
    update = CompiledUpdate(Conversation)
    with pytest.raises(ValueError, match="expression"):
        update.run(conversation.pk, {"title": Upper("title")})
    assert update.run(conversation.pk, {"title": "Plain"}) == 1
    with pytest.raises(ValueError, match="expression"):
        update.run(conversation.pk, {"title": F("title")})
    assert Conversation.objects.get(pk=conversation.pk).title == "Plain"


def test_an_update_takes_a_relation_by_object_or_by_id(
    conversation: Conversation, language_model: LanguageModel
) -> None:
    other_model = LanguageModel.objects.create(name="qwen3:8b", enabled=True)
    update = CompiledUpdate(Conversation)
    assert update.run(conversation.pk, {"model": other_model}) == 1
    assert Conversation.objects.get(pk=conversation.pk).model_id == other_model.pk
    assert update.run(conversation.pk, {"model_id": language_model.pk}) == 1
    assert Conversation.objects.get(pk=conversation.pk).model_id == language_model.pk


@pytest.mark.django_db(transaction=True)  # outside any transaction, as a caller could be
def test_a_locking_query_outside_a_transaction_is_refused_as_the_orm_refuses_it(
    conversation: Conversation,
) -> None:
    """Django refuses SELECT … FOR UPDATE outside a transaction where the database locks rows
    (it would lock nothing); built once, the query still does."""

    def refused(run: Callable[[], object]) -> bool:
        try:
            run()
        except TransactionManagementError:
            return True
        return False

    with transaction.atomic():
        turns._LOCKED_CONVERSATION.instances(conversation.pk)  # built in a transaction
    orm = refused(lambda: list(Conversation.objects.select_for_update().filter(pk=conversation.pk)))
    assert refused(lambda: turns._LOCKED_CONVERSATION.instances(conversation.pk)) == orm
    assert orm == (connection.vendor == "postgresql")


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite locks the whole database on write, not rows (make test-postgres)",
)
@pytest.mark.django_db(transaction=True)
def test_the_turns_lock_holds_a_second_turn_until_the_first_is_written(
    conversation: Conversation,
) -> None:
    """Two sends at the same moment (two tabs, two workers): the second reads the conversation
    only once the first is written, so it sees the first's reply streaming and is refused,
    instead of both starting a reply."""
    first_locked, first_may_go = threading.Event(), threading.Event()
    outcome: list[str] = []

    def first() -> None:
        try:
            with transaction.atomic():
                turns._lock_idle(conversation)
                first_locked.set()
                first_may_go.wait(5)
                Message.objects.create(
                    conversation=conversation,
                    role="assistant",
                    status="streaming",
                    lease_expires_at=timezone.now() + timedelta(minutes=1),
                )
        finally:
            connections.close_all()

    def second() -> None:
        try:
            turns.turn_send(conversation=conversation, content="Me too")
            outcome.append("started")
        except turns.TurnRefused:
            outcome.append("refused")
        finally:
            connections.close_all()

    holder = threading.Thread(target=first)
    holder.start()
    assert first_locked.wait(5)
    waiter = threading.Thread(target=second)
    waiter.start()
    assert _a_session_waits_for_a_lock()  # the second turn, not reading past the first's lock
    assert waiter.is_alive()
    first_may_go.set()
    holder.join(5)
    waiter.join(5)
    assert outcome == ["refused"]
    assert conversation.messages.filter(role="assistant").count() == 1


def _a_session_waits_for_a_lock(seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False
