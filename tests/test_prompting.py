"""What Ollama receives for a reply: the system prompt, a history that fits, the options."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from PIL import Image

from conversations.models import Conversation, LanguageModel, Message, SystemPrompt
from conversations.prompting import estimate_tokens, reply_request
from conversations.services import conversation_start, message_image_attach, system_prompt_save

pytestmark = pytest.mark.django_db


def add(conversation: Conversation, role: str, content: str, **fields: object) -> Message:
    return Message.objects.create(conversation=conversation, role=role, content=content, **fields)


def reply_to(conversation: Conversation) -> Message:
    return add(conversation, "assistant", "", status="streaming")


def test_the_system_prompt_comes_first_then_the_history_in_order(user, language_model) -> None:
    system_prompt_save(
        prompt=SystemPrompt(name="Brief", text="Be brief.", is_default=True), edited_by=None
    )
    conversation = conversation_start(owner=user, model=language_model)
    add(conversation, "user", "Hi")
    add(conversation, "assistant", "Hello!", thinking="They greeted me.")
    add(conversation, "user", "How are you?")

    request = reply_request(conversation, reply_to(conversation))

    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "How are you?"),
    ]
    assert all(not m.thinking for m in request.messages)  # earlier thinking is left out
    assert request.model == "llama3.2:latest"
    assert request.history_dropped == 0


def test_a_prompt_locked_later_applies_to_an_existing_conversation(user, language_model) -> None:
    conversation = conversation_start(owner=user, model=language_model)
    assert conversation.system_prompt_text == ""
    system_prompt_save(
        prompt=SystemPrompt(
            name="Policy", text="Follow the policy.", default_for_model=language_model, locked=True
        ),
        edited_by=None,
    )
    add(conversation, "user", "Hi")
    request = reply_to(conversation)
    assert reply_request(conversation, request).messages[0].content == "Follow the policy."


def test_failed_replies_with_nothing_said_are_left_out(conversation) -> None:
    add(conversation, "user", "Hi")
    add(conversation, "assistant", "", status="error", error="Ollama is not reachable")
    add(conversation, "user", "Hi again")
    request = reply_request(conversation, reply_to(conversation))
    assert [m.content for m in request.messages] == ["Hi", "Hi again"]


def test_options_merge_model_defaults_with_conversation_overrides(
    conversation, language_model
) -> None:
    language_model.default_options = {"temperature": 0.5, "top_k": 20}
    language_model.keep_alive = "600"
    language_model.save()
    conversation.options = {"temperature": 0.9}
    conversation.save()
    add(conversation, "user", "Hi")

    request = reply_request(conversation, reply_to(conversation))

    assert request.options == {"temperature": 0.9, "top_k": 20, "num_ctx": 8192}
    assert request.keep_alive == 600
    assert request.think is None


def test_thinking_models_are_asked_to_think(user) -> None:
    model = LanguageModel.objects.create(
        name="qwen3:latest", enabled=True, capabilities=["completion", "thinking"]
    )
    conversation = conversation_start(owner=user, model=model)
    add(conversation, "user", "Why?")
    assert reply_request(conversation, reply_to(conversation)).think is True


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_images_go_to_vision_models_only(user) -> None:
    vision = LanguageModel.objects.create(
        name="llava:latest", enabled=True, capabilities=["completion", "vision"]
    )
    conversation = conversation_start(owner=user, model=vision)
    question = add(conversation, "user", "What is it?")
    message_image_attach(message=question, upload=SimpleUploadedFile("a.png", png()))

    assert reply_request(conversation, reply_to(conversation)).messages[-1].images == [png()]

    vision.capabilities = ["completion"]
    vision.save()
    conversation.refresh_from_db()
    conversation.messages.filter(status="streaming").delete()
    assert reply_request(conversation, reply_to(conversation)).messages[-1].images == []


@pytest.mark.parametrize("capabilities", [["completion"], ["completion", "vision"]])
def test_the_queries_for_a_request_do_not_grow_with_the_history(user, capabilities) -> None:
    """A request is built on the way to every first token; a long conversation must not make
    it slower by a query per message (its images, or a field left out of the history's query
    and read afterwards)."""
    model = LanguageModel.objects.create(
        name="m:latest",
        enabled=True,
        capabilities=capabilities,
        default_options={"num_ctx": 100_000},  # room for every image
    )

    def queries_with(messages: int) -> int:
        conversation = conversation_start(owner=user, model=model)
        for number in range(messages):
            question = add(conversation, "user", f"question {number}")
            message_image_attach(message=question, upload=SimpleUploadedFile("a.png", png()))
            add(conversation, "assistant", f"answer {number}")
        reply = reply_to(conversation)
        with CaptureQueriesContext(connection) as queries:
            request = reply_request(conversation, reply)
        assert len(request.messages) == 2 * messages
        return len(queries)

    assert queries_with(1) == queries_with(30)


def test_a_long_history_is_trimmed_from_the_oldest_turn(conversation) -> None:
    conversation.system_prompt_text = "Be brief."
    conversation.options = {"num_ctx": 600}
    conversation.save()
    for number in range(10):
        add(conversation, "user", f"question {number} " + "q" * 400)
        add(conversation, "assistant", f"answer {number} " + "a" * 400)
    add(conversation, "user", "the latest question")

    request = reply_request(conversation, reply_to(conversation))

    budget, reserve = 600, 150
    assert sum(estimate_tokens(m) for m in request.messages) <= budget - reserve
    assert request.options["num_ctx"] == 600  # sent explicitly
    assert request.messages[0].content == "Be brief."  # never dropped
    assert request.messages[-1].content == "the latest question"  # never dropped
    assert request.messages[1].role == "user"  # history starts with a whole turn
    kept = len(request.messages) - 1
    assert request.history_dropped == 21 - kept
    assert request.history_dropped > 0
    assert request.messages[1].content.startswith(f"question {10 - (kept - 1) // 2}")


def test_the_latest_message_is_kept_even_when_it_alone_is_too_long(conversation) -> None:
    conversation.options = {"num_ctx": 100}
    conversation.save()
    add(conversation, "user", "old")
    add(conversation, "user", "x" * 10_000)
    request = reply_request(conversation, reply_to(conversation))
    assert [m.content for m in request.messages] == ["x" * 10_000]
    assert request.history_dropped == 1


def test_the_default_context_is_capped(conversation, language_model, settings) -> None:
    settings.CHAT_DEFAULT_NUM_CTX = 4096
    assert language_model.context_length == 131072
    add(conversation, "user", "Hi")
    assert reply_request(conversation, reply_to(conversation)).options["num_ctx"] == 4096


def test_only_a_reply_to_the_first_message_may_earn_a_title(conversation) -> None:
    add(conversation, "user", "Hi")
    first = reply_request(conversation, reply_to(conversation))
    Message.objects.filter(role="assistant").update(status="complete", content="Hello!")
    add(conversation, "user", "And then?")
    second = reply_request(conversation, reply_to(conversation))

    assert first.answers_first_message
    assert not second.answers_first_message
