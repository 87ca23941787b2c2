"""Channel-layer group names for a conversation."""

from __future__ import annotations


def stream_group(conversation_id: int) -> str:
    """Every socket showing the conversation listens here."""
    return f"conversation-{conversation_id}"


def control_group(conversation_id: int) -> str:
    """The conversation's running generation listens here for stop and sync requests."""
    return f"conversation-{conversation_id}-control"
