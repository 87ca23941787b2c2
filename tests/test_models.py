"""The data model keeps itself consistent: the database enforces what it can."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from conversations.models import Conversation, LanguageModel, Message, SystemPrompt
from conversations.ollama_options import (
    keep_alive_for_request,
    option_problem,
    validate_keep_alive,
    validate_options,
)
from conversations.sidebar import PAGE_SIZE, sidebar_listing

pytestmark = pytest.mark.django_db


def model(name: str, **fields: object) -> LanguageModel:
    return LanguageModel.objects.create(name=name, **{"enabled": True, **fields})


def test_a_second_default_model_is_rejected_by_the_database() -> None:
    model("llama3.2:latest", is_default=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        model("mistral:latest", is_default=True)


def test_a_second_default_model_is_rejected_with_a_message_on_validation() -> None:
    model("llama3.2:latest", is_default=True)
    with pytest.raises(ValidationError) as error:
        LanguageModel(name="mistral:latest", enabled=True, is_default=True).full_clean()
    assert "Another model is the default already." in str(error.value)


def test_many_models_may_be_non_default() -> None:
    model("llama3.2:latest")
    model("mistral:latest")
    assert LanguageModel.objects.filter(is_default=False).count() == 2


def test_model_names_are_unique_without_regard_to_case_as_in_ollama() -> None:
    model("llama3.2:latest")
    with pytest.raises(IntegrityError), transaction.atomic():
        model("Llama3.2:Latest")


def test_a_disabled_model_cannot_be_the_default() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        LanguageModel.objects.create(name="x:latest", enabled=False, is_default=True)


def test_known_options_of_the_right_types_are_accepted() -> None:
    validate_options(
        {
            "temperature": 0.7,
            "top_p": 1,
            "num_ctx": 8192.0,
            "seed": -1,
            "num_predict": -1,
            "stop": ["</s>", "User:"],
            "use_mmap": False,
        }
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temprature": 0.7}, "'temprature' is not an Ollama option"),
        ({"mirostat": 1}, "'mirostat' was removed from Ollama in v0.7.0 and has no effect"),
        ({"num_ctx": "4096"}, "'num_ctx' must be a whole number, got '4096'"),
        ({"num_ctx": 4096.7}, "'num_ctx' must be a whole number, got 4096.7"),
        ({"num_ctx": True}, "'num_ctx' must be a whole number, got True"),
        ({"temperature": "hot"}, "'temperature' must be a number, got 'hot'"),
        ({"temperature": float("nan")}, "'temperature' must be a number, got nan"),
        ({"use_mmap": 1}, "'use_mmap' must be true or false, got 1"),
        ({"stop": "###"}, "'stop' must be a list of strings, got '###'"),
        ({"stop": ["a", 1]}, "'stop' must be a list of strings, got ['a', 1]"),
        ({"top_p": 1.5}, "'top_p' must be at most 1, got 1.5"),
        ({"temperature": -0.1}, "'temperature' must be at least 0, got -0.1"),
        ({"num_ctx": 0}, "'num_ctx' must be at least 1, got 0"),
        ({"seed": None}, "'seed' has no value: leave it out to use the model's default"),
    ],
)
def test_bad_options_are_rejected_with_a_message_saying_why(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as error:
        validate_options(options)
    assert error.value.messages == [message]


def test_options_must_be_an_object() -> None:
    with pytest.raises(ValidationError, match="JSON object"):
        validate_options(["temperature", 0.7])


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as error:
        validate_options({"temprature": 1, "top_k": "many"})
    assert len(error.value.messages) == 2


def test_the_admin_form_path_rejects_bad_default_options() -> None:
    bad = LanguageModel(name="x:latest", default_options={"num_ctx": "big"})
    with pytest.raises(ValidationError) as error:
        bad.full_clean()
    assert error.value.message_dict["default_options"] == [
        "'num_ctx' must be a whole number, got 'big'"
    ]


def test_conversation_overrides_are_validated_the_same_way(conversation: Conversation) -> None:
    conversation.options = {"temperature": "warm"}
    with pytest.raises(ValidationError) as error:
        conversation.full_clean()
    assert "options" in error.value.message_dict


@pytest.mark.parametrize("good", ["", "300", "0", "-1", "2.5", "5m", "1h30m", "10s", "-1m", "0"])
def test_keep_alive_takes_seconds_or_a_duration(good: str) -> None:
    validate_keep_alive(good)


@pytest.mark.parametrize("bad", ["5 minutes", "forever", "1d", "m5", "true"])
def test_keep_alive_rejects_what_ollama_would_refuse(bad: str) -> None:
    with pytest.raises(ValidationError, match="Keep-alive must be"):
        validate_keep_alive(bad)


def test_keep_alive_goes_to_ollama_as_a_number_of_seconds_or_a_duration() -> None:
    # A string without a unit is a 400 from Ollama ("missing unit in duration").
    assert keep_alive_for_request("300") == 300
    assert keep_alive_for_request("-1") == -1
    assert keep_alive_for_request("2.5") == 2.5
    assert keep_alive_for_request("5m") == "5m"
    assert keep_alive_for_request("") is None
    assert model("llama3.2:latest", keep_alive="600").keep_alive_for_request() == 600


def test_option_problem_is_none_for_a_good_value() -> None:
    assert option_problem("temperature", 0.2) is None


def test_a_model_used_by_a_conversation_cannot_be_deleted(conversation: Conversation) -> None:
    assert conversation.model is not None
    with pytest.raises(ProtectedError):
        conversation.model.delete()


def test_a_message_with_an_unknown_status_is_rejected_by_the_database(
    conversation: Conversation,
) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(conversation=conversation, role="user", status="lost")
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(conversation=conversation, role="robot")


def test_messages_come_back_in_the_order_they_were_written(conversation: Conversation) -> None:
    first = Message.objects.create(conversation=conversation, role=Message.Role.USER, content="a")
    second = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="b",
        created_at=first.created_at,  # a tie on time is broken by id
    )
    assert list(conversation.messages.all()) == [first, second]


def test_tokens_per_second_comes_from_ollama_stats(conversation: Conversation) -> None:
    reply = Message(
        conversation=conversation, role="assistant", eval_count=50, eval_duration=2_000_000_000
    )
    assert reply.tokens_per_second == 25
    assert Message(conversation=conversation, role="assistant").tokens_per_second is None


def test_a_second_default_system_prompt_is_rejected() -> None:
    SystemPrompt.objects.create(name="Helpful", text="Be helpful.", is_default=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        SystemPrompt.objects.create(name="Terse", text="Be terse.", is_default=True)


def test_a_locked_system_prompt_must_name_its_model() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        SystemPrompt.objects.create(name="Policy", text="Follow policy.", locked=True)


def test_a_model_has_at_most_one_default_system_prompt(language_model: LanguageModel) -> None:
    SystemPrompt.objects.create(name="A", text="a", default_for_model=language_model)
    with pytest.raises(IntegrityError), transaction.atomic():
        SystemPrompt.objects.create(name="B", text="b", default_for_model=language_model)


def test_the_sidebar_query_uses_its_index(user, conversation: Conversation) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the plan is read with SQLite's EXPLAIN QUERY PLAN")
    query = sidebar_listing(user, archived=False)[: PAGE_SIZE + 1]
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "conversation_sidebar" in plan
    assert "TEMP B-TREE" not in plan  # no sort step: the index gives the order


def test_sqlite_runs_in_wal_mode() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("WAL is a SQLite setting")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
