"""Images are checked by what they are, not by their names, and stored under the data directory."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from conversations.models import Conversation, Message
from conversations.services import message_image_attach

pytestmark = pytest.mark.django_db


def image_bytes(image_format: str, size: tuple[int, int] = (4, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.fixture
def message(conversation: Conversation) -> Message:
    return Message.objects.create(conversation=conversation, role="user", content="What is this?")


@pytest.mark.parametrize(
    ("image_format", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_an_image_is_stored_under_the_data_directory(
    message: Message, image_format: str, content_type: str
) -> None:
    data = image_bytes(image_format)
    image = message_image_attach(
        message=message, upload=SimpleUploadedFile("../../etc/photo.bin", data)
    )

    assert (image.content_type, image.width, image.height, image.size) == (
        content_type,
        4,
        3,
        len(data),
    )
    stored = Path(image.file.path)
    assert stored.is_relative_to(Path(settings.DATA_DIR) / "media" / "attachments")
    assert stored.read_bytes() == data
    assert "etc" not in stored.name  # the user's file name never becomes a path


def test_a_text_file_named_like_an_image_is_refused(message: Message) -> None:
    with pytest.raises(ValidationError, match="not an image"):
        message_image_attach(
            message=message, upload=SimpleUploadedFile("cat.png", b"<script>alert(1)</script>")
        )
    assert message.images.count() == 0


def test_an_image_type_we_do_not_take_is_refused(message: Message) -> None:
    with pytest.raises(ValidationError, match="PNG, JPEG, WebP or GIF, not BMP"):
        message_image_attach(
            message=message, upload=SimpleUploadedFile("a.bmp", image_bytes("BMP"))
        )


def test_an_image_over_the_size_limit_is_refused(message: Message, settings) -> None:
    settings.CHAT_MAX_IMAGE_BYTES = 100
    data = image_bytes("PNG", (64, 64))
    assert len(data) > 100
    with pytest.raises(ValidationError, match="the limit is"):
        message_image_attach(message=message, upload=SimpleUploadedFile("big.png", data))
    assert message.images.count() == 0
