"""Template filters for model output: every reply goes through the one sanitizing renderer."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from conversations.models import Message
from conversations.rendering import render_markdown
from conversations.streaming_markdown import natural_split, split_rendering

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    return render_markdown(text or "")


@register.filter
def streaming_parts(message: Message) -> tuple[SafeString, SafeString]:
    """A streaming reply as (finished blocks, open tail). The split is the one its viewers have
    when the generation told us (``stream_committed``), else where a fresh stream would put it."""
    committed = getattr(message, "stream_committed", None)
    if committed is None:
        committed = natural_split(message.content)
    return split_rendering(message.content, committed)
