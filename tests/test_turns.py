"""The database side of a turn, and the announcement of its start: what they read and write on
the way to the first token, and that a reply whose writer is gone never blocks the next one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations import frames
from conversations.models import Conversation, LanguageModel, Message
from conversations.prompting import HistoryMessage, history_request
from conversations.services import message_image_attach
from conversations.turns import (
    INTERRUPTED_MESSAGE,
    Turn,
    TurnRefused,
    turn_edit,
    turn_regenerate,
    turn_send,
)
from tests.conftest import png

pytestmark = pytest.mark.django_db


def _statements(context: CaptureQueriesContext) -> list[str]:
    """What was asked of the database, without the transaction's BEGIN and COMMIT (which only
    SQLite's log shows)."""
    return [
        q["sql"].split()[0]
        for q in context.captured_queries
        if q["sql"].split()[0] in {"SELECT", "INSERT", "UPDATE", "DELETE"}
    ]


def _streaming_reply(conversation: Conversation, *, lease_seconds: float) -> Message:
    return Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds),
    )


def test_a_send_asks_the_model_once_the_history_is_read_and_writes_the_rest_after(
    conversation: Conversation,
) -> None:
    """The model starts on its first token while the turn is written: before the ask, only
    the lock and the history (which also says whether a reply streams and whether this is the
    first message); after it, the user's message, the reply and the conversation's time."""
    Message.objects.create(conversation=conversation, role=Message.Role.USER, content="Hi")
    asked: list[tuple[list[str], list[str]]] = []

    def ask(locked: Conversation, history: list[HistoryMessage]) -> None:
        before = _statements(context)
        history_request(locked, history)
        asked.append((before, [m.content for m in history]))

    with CaptureQueriesContext(connection) as context:
        turn_send(conversation=conversation, content="Hello again", ask=ask)
    assert asked == [(["SELECT", "SELECT"], ["Hi", "Hello again"])]
    # The ask's system prompt, then the two messages (in one statement) and the conversation's
    # time. A lost-reply sweep only when something streams.
    assert _statements(context)[2:] == ["SELECT", "INSERT", "UPDATE"]


def test_a_text_send_is_shown_with_its_ids_before_it_is_written(
    conversation: Conversation,
) -> None:
    """The start of a turn can go out before its rows are written: the turn is shown with the
    ids its rows then get, and before the insert and the conversation's update. One statement
    more than a send not shown first: the ids (SQLite's sequence, or PostgreSQL's)."""
    Message.objects.create(conversation=conversation, role=Message.Role.USER, content="Hi")
    shown: list[tuple[list[int], bool, list[str]]] = []

    def show(turn: Turn) -> None:
        before = _statements(context)
        written = Message.objects.filter(pk__in=turn.message_ids).exists()
        shown.append((turn.message_ids, written, before))

    with CaptureQueriesContext(connection) as context:
        turn = turn_send(
            conversation=conversation, content="Hello again", ask=ask_nothing, show=show
        )
    [(ids, written, before)] = shown
    assert not written
    assert ids == turn.message_ids
    saved = list(Message.objects.filter(conversation=conversation).order_by("id"))
    assert [(m.pk, m.role, m.content) for m in saved[1:]] == [
        (ids[0], "user", "Hello again"),
        (ids[1], "assistant", ""),
    ]
    # The lock, the history and the ids; then the two messages and the conversation's time.
    assert before == ["SELECT", "SELECT", "SELECT"]
    assert _statements(context)[len(before) + 1 :] == ["INSERT", "UPDATE"]
    # The next message takes the next ids: none is handed out twice.
    later = Message.objects.create(conversation=conversation, role=Message.Role.USER)
    assert later.pk > ids[1]


def test_a_turn_shown_and_then_not_written_leaves_no_row_and_the_next_is_saved_as_shown(
    conversation: Conversation,
) -> None:
    """A turn shown and then not written (its transaction rolled back) leaves no row; the next
    turn is shown with the ids it is then saved under (on SQLite, the same ids again)."""
    shown: list[list[int]] = []

    def show_then_fail(turn: Turn) -> None:
        shown.append(turn.message_ids)
        raise DatabaseError("database or disk is full")

    with pytest.raises(DatabaseError):
        turn_send(conversation=conversation, content="Hi", ask=ask_nothing, show=show_then_fail)
    assert not Message.objects.exists()
    turn = turn_send(
        conversation=conversation, content="Hi again", ask=ask_nothing, show=shown_ids(shown)
    )
    assert shown[1] == turn.message_ids
    assert list(Message.objects.values_list("id", flat=True).order_by("id")) == turn.message_ids


def ask_nothing(locked: Conversation, history: list[HistoryMessage]) -> None:
    pass


def shown_ids(shown: list[list[int]]):  # type: ignore[no-untyped-def]
    return lambda turn: shown.append(turn.message_ids)


def test_a_send_with_images_is_written_before_it_is_shown(conversation: Conversation) -> None:
    """Its images are stored with the user's message before the model is sent them, so there
    is nothing to show first: the turn is shown once saved, as every other kind of turn."""
    LanguageModel.objects.filter(pk=conversation.model_id).update(
        capabilities=["completion", "vision"]
    )
    conversation.refresh_from_db()
    shown: list[list[int]] = []
    upload = SimpleUploadedFile("dot.png", png(), content_type="image/png")
    turn_send(
        conversation=conversation,
        content="What is this?",
        images=[upload],
        ask=ask_nothing,
        show=shown_ids(shown),
    )
    assert shown == []


def test_a_regenerate_asks_without_the_old_reply_and_an_edit_with_the_new_text(
    conversation: Conversation,
) -> None:
    asked: list[list[str]] = []

    def ask(locked: Conversation, history: list[HistoryMessage]) -> None:
        asked.append([m.content for m in history])

    first = turn_send(conversation=conversation, content="Hi", ask=ask)
    Message.objects.filter(pk=first.reply.pk).update(status="complete", content="Hello!")
    second = turn_send(conversation=conversation, content="How are you?", ask=ask)
    Message.objects.filter(pk=second.reply.pk).update(status="complete", content="Fine.")
    regenerated = turn_regenerate(conversation=conversation, ask=ask)
    Message.objects.filter(pk=regenerated.reply.pk).update(status="complete", content="Good!")
    turn_edit(conversation=conversation, content="How old are you?", ask=ask)

    assert asked == [
        ["Hi"],
        ["Hi", "Hello!", "How are you?"],
        ["Hi", "Hello!", "How are you?"],
        ["Hi", "Hello!", "How old are you?"],
    ]
    assert [m.content for m in Message.objects.filter(conversation=conversation)] == [
        "Hi",
        "Hello!",
        "How old are you?",
        "",
    ]


def test_a_turn_refused_never_asks_the_model(conversation: Conversation) -> None:
    _streaming_reply(conversation, lease_seconds=30)
    asked: list[object] = []
    with pytest.raises(TurnRefused):
        turn_send(conversation=conversation, content="Me too", ask=lambda *a: asked.append(a))
    with pytest.raises(TurnRefused):
        turn_regenerate(conversation=conversation, ask=lambda *a: asked.append(a))
    assert asked == []


def test_a_reply_whose_writer_is_gone_is_marked_interrupted_and_the_send_goes_ahead(
    conversation: Conversation,
) -> None:
    lost = _streaming_reply(conversation, lease_seconds=-1)
    turn = turn_send(conversation=conversation, content="Anyone there?")
    lost.refresh_from_db()
    assert lost.status == Message.Status.INTERRUPTED
    assert lost.error == INTERRUPTED_MESSAGE
    assert turn.reply.status == Message.Status.STREAMING


def test_a_reply_still_being_written_refuses_the_send_and_saves_nothing(
    conversation: Conversation,
) -> None:
    alive = _streaming_reply(conversation, lease_seconds=30)
    with pytest.raises(TurnRefused, match="still being written"):
        turn_send(conversation=conversation, content="Me too")
    assert list(Message.objects.filter(conversation=conversation)) == [alive]
    alive.refresh_from_db()
    assert alive.status == Message.Status.STREAMING


def test_the_start_of_a_turn_is_rendered_from_the_turn_without_reading_it_back(
    conversation: Conversation,
) -> None:
    turn = turn_send(conversation=conversation, content="Show <b>this</b>")
    with CaptureQueriesContext(connection) as context:
        html = frames.turn_started_frame(turn.messages, turn.removed_ids)
    assert _statements(context) == []  # the turn knows its message has no images
    assert html == frames.turn_started_frame_from_db(
        conversation.pk, turn.message_ids, turn.removed_ids
    )
    assert "Show &lt;b&gt;this&lt;/b&gt;" in html
    assert f'id="msg-{turn.reply.pk}"' in html and 'data-status="streaming"' in html


def test_a_message_sent_with_images_shows_them_in_the_start_of_its_turn_unread(
    conversation: Conversation,
) -> None:
    assert conversation.model is not None
    conversation.model.capabilities = ["completion", "vision"]
    conversation.model.save()
    upload = SimpleUploadedFile("cat.png", png(), content_type="image/png")
    turn = turn_send(conversation=conversation, content="What is this?", images=[upload])
    with CaptureQueriesContext(connection) as context:
        html = frames.turn_started_frame(turn.messages, turn.removed_ids)
    assert _statements(context) == []
    assert html.count('data-testid="message-image"') == 1
    assert html == frames.turn_started_frame_from_db(
        conversation.pk, turn.message_ids, turn.removed_ids
    )


def test_an_edited_message_keeps_its_images_in_the_start_of_its_turn(
    conversation: Conversation,
) -> None:
    first = turn_send(conversation=conversation, content="What is this?")
    assert first.user_message is not None
    message_image_attach(
        message=first.user_message,
        upload=SimpleUploadedFile("cat.png", png(), content_type="image/png"),
    )
    Message.objects.filter(pk=first.reply.pk).update(status=Message.Status.COMPLETE)
    edit = turn_edit(conversation=conversation, content="What is this animal?")
    html = frames.turn_started_frame(edit.messages, edit.removed_ids)
    assert html.count('data-testid="message-image"') == 1
    assert "What is this animal?" in html
