"""The database side of a turn, and the announcement of its start: what they read and write on
the way to the first token, and that a reply whose writer is gone never blocks the next one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations import frames
from conversations.models import Conversation, Message
from conversations.services import message_image_attach
from conversations.turns import INTERRUPTED_MESSAGE, TurnRefused, turn_edit, turn_send
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


def test_a_send_to_an_idle_conversation_asks_one_question_of_each_kind(
    conversation: Conversation,
) -> None:
    Message.objects.create(conversation=conversation, role=Message.Role.USER, content="Hi")
    with CaptureQueriesContext(connection) as context:
        turn_send(conversation=conversation, content="Hello again")
    # The locked row; whether a reply streams; whether this is the first message; the message
    # and the reply; the conversation's time. A lost-reply sweep only when something streams.
    assert _statements(context) == ["SELECT", "SELECT", "SELECT", "INSERT", "INSERT", "UPDATE"]


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
    assert _statements(context) == ["SELECT"]  # the user's message's images, no more
    assert html == frames.turn_started_frame_from_db(
        conversation.pk, turn.message_ids, turn.removed_ids
    )
    assert "Show &lt;b&gt;this&lt;/b&gt;" in html
    assert f'id="msg-{turn.reply.pk}"' in html and 'data-status="streaming"' in html


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
