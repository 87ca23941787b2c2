"""Images users attach to messages: where they are stored and what is accepted."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    from conversations.models import MessageImage

# Pillow's format name -> the MIME type sent to browsers. Ollama's vision models read these.
ACCEPTED_IMAGE_TYPES: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
EXTENSIONS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
}


def attachment_path(instance: MessageImage, filename: str) -> str:
    """A fresh random name: the user's file name is never used in a path."""
    extension = EXTENSIONS.get(instance.content_type, "bin")
    return str(PurePosixPath("attachments", f"{uuid.uuid4().hex}.{extension}"))


def inspect_image(file: File[bytes]) -> tuple[str, int, int]:
    """Check an uploaded file is an image we accept, by its content rather than its name.

    Returns (content type, width, height); raises ValidationError saying what is wrong.
    """
    size = file.size or 0
    limit = settings.CHAT_MAX_IMAGE_BYTES
    if size > limit:
        raise ValidationError(
            "The image is %(size)s MB; the limit is %(limit)s MB.",
            code="image_too_large",
            params={"size": f"{size / 1_048_576:.1f}", "limit": f"{limit / 1_048_576:.1f}"},
        )
    file.seek(0)
    try:
        with Image.open(file) as image:
            image_format = image.format or ""
            width, height = image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        raise ValidationError(
            "The file is not an image that can be read.", code="image_unreadable"
        ) from None
    finally:
        file.seek(0)
    if image_format not in ACCEPTED_IMAGE_TYPES:
        raise ValidationError(
            "Images must be PNG, JPEG, WebP or GIF, not %(format)s.",
            code="image_type",
            params={"format": image_format or "an unknown type"},
        )
    return ACCEPTED_IMAGE_TYPES[image_format], width, height
