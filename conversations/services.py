"""Work that spans several models: versioned system prompts, starting conversations, images."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F, Q

from conversations.attachments import inspect_image
from conversations.models import (
    Conversation,
    LanguageModel,
    Message,
    MessageImage,
    SystemPrompt,
    SystemPromptVersion,
)
from conversations.ollama_options import validate_options


def system_prompt_save(*, prompt: SystemPrompt, edited_by: User | None) -> SystemPromptVersion:
    """Save a prompt and, when its text changed, keep the new text as its next version.

    Returns the version now in force.
    """
    with transaction.atomic():
        prompt.save()
        # Lock the prompt row so two admins saving at once get versions n and n+1, not a clash.
        SystemPrompt.objects.select_for_update().filter(pk=prompt.pk).first()
        latest = prompt.latest_version()
        if latest is not None and latest.text == prompt.text:
            return latest
        return SystemPromptVersion.objects.create(
            prompt=prompt,
            number=latest.number + 1 if latest else 1,
            text=prompt.text,
            created_by=edited_by,
        )


def system_prompt_in_force(
    *, model: LanguageModel, chosen: SystemPrompt | None = None
) -> SystemPrompt | None:
    """The prompt a new conversation with ``model`` uses.

    A prompt locked to the model wins over everything; then the user's choice (if offered to
    users); then the model's default; then the global default. Disabled prompts never apply.
    """
    enabled = SystemPrompt.objects.filter(enabled=True)
    locked = enabled.filter(default_for_model=model, locked=True).first()
    if locked is not None:
        return locked
    if chosen is not None and chosen.enabled and chosen.user_selectable:
        return chosen
    return (
        enabled.filter(Q(default_for_model=model) | Q(is_default=True))
        # The model's own default before the global one.
        .order_by(F("default_for_model").asc(nulls_last=True))
        .first()
    )


def conversation_start(
    *,
    owner: User,
    model: LanguageModel,
    system_prompt: SystemPrompt | None = None,
    title: str = "",
) -> Conversation:
    """A new conversation with a snapshot of the system prompt text and version in force."""
    prompt = system_prompt_in_force(model=model, chosen=system_prompt)
    version = None
    if prompt is not None:
        version = prompt.latest_version() or system_prompt_save(prompt=prompt, edited_by=None)
    conversation = Conversation(
        owner=owner,
        model=model,
        model_name=model.name,
        system_prompt_version=version,
        system_prompt_name=prompt.name if prompt else "",
        system_prompt_text=version.text if version else "",
    )
    if title:
        conversation.title = title
    conversation.save()
    return conversation


def message_image_attach(*, message: Message, upload: UploadedFile[bytes]) -> MessageImage:
    """Store an uploaded image with a message after checking what it really is.

    Raises ValidationError (too large, not an image, a type we do not take).
    """
    content_type, width, height = inspect_image(upload)
    image = MessageImage(
        message=message,
        content_type=content_type,
        size=upload.size or 0,
        width=width,
        height=height,
        original_name=(upload.name or "")[:200],
    )
    image.file.save(upload.name or "image", upload, save=False)
    image.save()
    return image


def conversation_update(
    *,
    conversation: Conversation,
    title: str | None = None,
    pinned: bool | None = None,
    archived: bool | None = None,
) -> None:
    """Rename, pin or archive. None of these is activity: the sidebar order stays."""
    changes = {"title": title, "pinned": pinned, "archived": archived}
    fields = [name for name, value in changes.items() if value is not None]
    for name in fields:
        setattr(conversation, name, changes[name])
    if fields:
        conversation.save(update_fields=fields)


def conversation_options_set(*, conversation: Conversation, overrides: dict[str, Any]) -> None:
    """Set the user's overrides; a None value goes back to the model's default."""
    options = dict(conversation.options or {})
    for name, value in overrides.items():
        if value is None:
            options.pop(name, None)
        else:
            options[name] = value
    validate_options(options)
    conversation.options = options
    conversation.save(update_fields=["options"])
