"""The Django admin: models on offer, system prompts, conversations and usage."""

from conversations.admin import conversations_admin, models_admin, prompts_admin

__all__ = ["conversations_admin", "models_admin", "prompts_admin"]
