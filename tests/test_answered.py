"""What a worker keeps of each conversation's last reply, to ask Ollama for the next send before
its turn reads the database: bounded, and never kept with images."""

from __future__ import annotations

import pytest

from conversations import answered
from conversations.answered import answered_forget_all, answered_remember, answered_take
from conversations.ollama import ChatMessage
from conversations.prompting import ReplyRequest


def request(*texts: str, images: tuple[bytes, ...] = ()) -> ReplyRequest:
    messages = [ChatMessage("user", text) for text in texts]
    if images:
        messages[-1] = ChatMessage("user", texts[-1], images=images)
    return ReplyRequest("m:latest", messages, {"num_ctx": 8192}, None, None, 0)


@pytest.fixture(autouse=True)
def nothing_kept() -> None:
    answered_forget_all()


def test_a_conversation_keeps_its_last_reply_until_a_turn_takes_it() -> None:
    answered_remember(1, request("Hi"), "Hello")
    answered_remember(1, request("Hi", "Again"), "Hello again")
    kept = answered_take(1)
    assert kept is not None and (kept.request.messages[-1].content, kept.reply) == (
        "Again",
        "Hello again",
    )
    assert answered_take(1) is None  # the turn that took it changes the conversation
    assert answered_take(2) is None


def test_a_request_with_images_is_not_kept_and_forgets_the_one_before() -> None:
    answered_remember(1, request("Hi"), "Hello")
    answered_remember(1, request("Hi", "Look", images=(b"png",)), "A red square")
    assert answered_take(1) is None


def test_the_least_recently_answered_go_first_beyond_the_bound(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(answered, "MAX_KEPT_CHARACTERS", 100)
    for conversation in range(1, 5):
        answered_remember(conversation, request("q" * 10), "a" * 20)  # 30 characters each
    assert [answered_take(c) is not None for c in range(1, 5)] == [False, True, True, True]
    answered_remember(5, request("q" * 200), "")  # alone beyond the bound: not kept either
    assert answered_take(5) is None and answered._kept_characters == 0
