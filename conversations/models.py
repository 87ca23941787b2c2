"""What the chat keeps: the models admins offer, system prompts, conversations and messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from conversations.attachments import ACCEPTED_IMAGE_TYPES, attachment_path
from conversations.ollama_options import (
    keep_alive_for_request,
    validate_keep_alive,
    validate_options,
)
from conversations.user_options import default_user_options, user_bounds, validate_user_options


class LanguageModel(models.Model):
    """A model served by Ollama that admins may offer to users."""

    class Capability(models.TextChoices):
        COMPLETION = "completion"
        VISION = "vision"
        THINKING = "thinking"
        TOOLS = "tools"
        EMBEDDING = "embedding"
        INSERT = "insert"

    # Ollama's own name, e.g. "llama3.2:latest"; Ollama matches it without regard to case.
    name = models.CharField(max_length=200, help_text="The name Ollama knows it by.")
    display_name = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=False, help_text="Offered to users in the picker.")
    is_default = models.BooleanField(
        "default", default=False, help_text="Preselected for new conversations."
    )
    capabilities = models.JSONField(default=list, blank=True)
    context_length = models.PositiveIntegerField(null=True, blank=True)
    default_options = models.JSONField(
        default=dict, blank=True, validators=[validate_options], help_text="Ollama options."
    )
    keep_alive = models.CharField(
        max_length=20,
        blank=True,
        validators=[validate_keep_alive],
        help_text="How long Ollama keeps it loaded: seconds or e.g. 5m; empty: the server's.",
    )
    user_options = models.JSONField(
        "options users may change",
        default=default_user_options,
        blank=True,
        validators=[validate_user_options],
        help_text="Option names with the bounds users may choose within.",
    )
    position = models.PositiveIntegerField(default=0, help_text="Lower comes first.")
    # What the Ollama server said at the last sync. A model that disappeared from the server is
    # kept (conversations refer to it) and marked not installed.
    installed = models.BooleanField(default=True)
    size = models.BigIntegerField("size on disk (bytes)", null=True, blank=True)
    family = models.CharField(max_length=100, blank=True)
    parameter_size = models.CharField(max_length=40, blank=True)
    quantization_level = models.CharField(max_length=40, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]
        permissions = [
            (
                "manage_ollama_server",
                "Can sync, pull, load, unload and delete models on the Ollama server",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="language_model_name_unique",
                violation_error_message="A model with this name exists already.",
            ),
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_language_model",
                violation_error_message="Another model is the default already.",
            ),
            models.CheckConstraint(
                condition=models.Q(is_default=False) | models.Q(enabled=True),
                name="default_language_model_is_enabled",
                violation_error_message="The default model must be enabled.",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return self.display_name or self.name

    def has_capability(self, capability: LanguageModel.Capability) -> bool:
        return capability.value in (self.capabilities or [])

    @property
    def supports_vision(self) -> bool:
        return self.has_capability(self.Capability.VISION)

    @property
    def supports_thinking(self) -> bool:
        return self.has_capability(self.Capability.THINKING)

    def keep_alive_for_request(self) -> int | float | str | None:
        return keep_alive_for_request(self.keep_alive)

    def user_bounds(self) -> dict[str, tuple[float, float]]:
        """The options users may set for this model, with the effective bounds."""
        return user_bounds(self.user_options, self.context_length)


class SystemPrompt(models.Model):
    """A preset system prompt. Its text is versioned: see SystemPromptVersion."""

    name = models.CharField(max_length=100)
    text = models.TextField()
    enabled = models.BooleanField(default=True)
    user_selectable = models.BooleanField(
        "offered to users", default=True, help_text="Users may pick it for new conversations."
    )
    is_default = models.BooleanField("default", default=False)
    default_for_model = models.ForeignKey(
        LanguageModel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="default_system_prompts",
        help_text="Used for new conversations with this model instead of the global default.",
    )
    locked = models.BooleanField(
        default=False,
        help_text="Every conversation with the model above uses this prompt; users cannot "
        "replace it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="system_prompt_name_unique",
                violation_error_message="A system prompt with this name exists already.",
            ),
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_system_prompt",
                violation_error_message="Another system prompt is the default already.",
            ),
            models.UniqueConstraint(
                fields=["default_for_model"],
                name="one_system_prompt_per_model",
                violation_error_message="Another system prompt is the default for this "
                "model already.",
            ),
            models.CheckConstraint(
                condition=models.Q(locked=False) | models.Q(default_for_model__isnull=False),
                name="locked_system_prompt_has_model",
                violation_error_message="A locked prompt must name the model it applies to.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def latest_version(self) -> SystemPromptVersion | None:
        return self.versions.order_by("-number").first()


class SystemPromptVersion(models.Model):
    """The text of a system prompt as it was after one edit. Never changed once written."""

    prompt = models.ForeignKey(SystemPrompt, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["prompt", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "number"], name="system_prompt_version_number_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prompt.name} v{self.number}"


class Conversation(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="conversations",
        # The indexes below start with the owner and serve the lookups by owner.
        db_index=False,
    )
    title = models.CharField(max_length=200, default="New conversation")
    # The model may be missing (an import naming a model this server never had); model_name
    # always says what the conversation was held with.
    model = models.ForeignKey(
        LanguageModel,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="conversations",
    )
    model_name = models.CharField(max_length=200)
    # A snapshot taken when the conversation starts: later edits to the preset do not rewrite
    # what this conversation used.
    system_prompt_version = models.ForeignKey(
        SystemPromptVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversations",
    )
    system_prompt_name = models.CharField(max_length=100, blank=True)
    system_prompt_text = models.TextField(blank=True)
    options = models.JSONField(
        default=dict, blank=True, validators=[validate_options], help_text="Overrides."
    )
    pinned = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    # Last activity (a message sent or received), which orders the sidebar; a rename does not
    # count, so it is set by the code that records activity rather than auto_now.
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-pinned", "-updated_at", "-id"]
        permissions = [("view_usage", "Can see usage figures per model and per user")]
        indexes = [
            # The sidebar: one user's active conversations, pinned first, then newest first.
            models.Index(
                fields=["owner", "-pinned", "-updated_at", "-id"],
                condition=models.Q(archived=False),
                name="conversation_sidebar",
            ),
            # The archive view: one user's archived conversations, newest first.
            models.Index(
                fields=["owner", "-updated_at", "-id"],
                condition=models.Q(archived=True),
                name="conversation_archive",
            ),
        ]

    def __str__(self) -> str:
        # Not the title: it comes from what the user wrote, and this text lands in admin pages
        # and logs that may not read transcripts (ADMIN_CAN_READ_TRANSCRIPTS).
        return f"Conversation {self.pk}"


class MessageRole(models.TextChoices):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class MessageStatus(models.TextChoices):
    STREAMING = "streaming"
    COMPLETE = "complete"
    STOPPED = "stopped"
    ERROR = "error"
    INTERRUPTED = "interrupted"


class Message(models.Model):
    # Defined at module level so Meta's constraints below can name their values.
    Role = MessageRole
    Status = MessageStatus

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    thinking = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    # Ollama's statistics for a reply; durations are in nanoseconds, as Ollama gives them.
    prompt_eval_count = models.PositiveIntegerField(null=True, blank=True)
    eval_count = models.PositiveIntegerField(null=True, blank=True)
    total_duration = models.BigIntegerField(null=True, blank=True)
    load_duration = models.BigIntegerField(null=True, blank=True)
    prompt_eval_duration = models.BigIntegerField(null=True, blank=True)
    eval_duration = models.BigIntegerField(null=True, blank=True)
    done_reason = models.CharField(max_length=40, blank=True)
    # How many earlier messages were left out of what Ollama received, to fit its context.
    history_dropped = models.PositiveIntegerField(default=0)
    # While a reply streams, the worker writing it renews this lease at each checkpoint. A
    # streaming reply whose lease has run out has lost its writer (the process died).
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # A conversation's messages in order, and the page of older ones before a message.
            models.Index(fields=["conversation", "created_at", "id"], name="message_in_order"),
            # The sweep for replies whose writer is gone: only streaming rows, few at any time.
            models.Index(
                fields=["lease_expires_at"],
                condition=models.Q(status="streaming"),
                name="message_streaming_lease",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=MessageRole.values), name="message_role_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=MessageStatus.values), name="message_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk} in conversation {self.conversation_id}"

    @property
    def is_streaming(self) -> bool:
        return self.status == self.Status.STREAMING

    @property
    def is_failed(self) -> bool:
        return self.status in (self.Status.ERROR, self.Status.INTERRUPTED)

    @property
    def tokens_per_second(self) -> float | None:
        if not self.eval_count or not self.eval_duration:
            return None
        return self.eval_count / (self.eval_duration / 1e9)

    def images_known(self, images: Sequence[MessageImage]) -> None:
        """Take ``images`` as the message's images (those the turn just attached, or none), as
        a prefetch would: showing the message reads none back. On the way to a first token,
        that query was a tenth of the wait."""
        queryset = self.images.all()
        queryset._result_cache = list(images)
        queryset._prefetch_done = True  # type: ignore[attr-defined]
        if not hasattr(self, "_prefetched_objects_cache"):
            self._prefetched_objects_cache = {}
        self._prefetched_objects_cache["images"] = queryset

    def stats(self) -> dict[str, Any]:
        return {
            "prompt_eval_count": self.prompt_eval_count,
            "eval_count": self.eval_count,
            "total_duration": self.total_duration,
            "load_duration": self.load_duration,
            "prompt_eval_duration": self.prompt_eval_duration,
            "eval_duration": self.eval_duration,
            "done_reason": self.done_reason,
        }


class MessageImage(models.Model):
    """An image a user attached to a message, stored under the data directory."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=attachment_path, max_length=200)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    original_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(content_type__in=list(ACCEPTED_IMAGE_TYPES.values())),
                name="message_image_type_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.original_name or self.file.name or ""


class ModelPull(models.Model):
    """A model an admin asked Ollama to download, with its progress as Ollama reports it.

    The pull runs in the background of the worker that started it; this row is how any page
    (and any worker) shows its progress and asks it to stop.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    # Ollama's latest status line ("pulling 6a0746a1ec1a", "verifying sha256 digest", ...).
    stage = models.CharField(max_length=200, blank=True)
    # Per layer digest: {"total": bytes, "completed": bytes}, in the order Ollama reported them.
    layers = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    sync_summary = models.CharField(max_length=300, blank=True)
    cancel_requested = models.BooleanField(default=False)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    # Renewed every few seconds while the pull runs: a running pull whose heartbeat stopped
    # lost its worker (a restart) and is shown as interrupted.
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    HEARTBEAT_SECONDS = 2
    STALE_AFTER_SECONDS = 30

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "model download"

    def __str__(self) -> str:
        return f"Pull of {self.name}"

    @property
    def is_running(self) -> bool:
        return self.status == self.Status.RUNNING and not self.is_stale

    @property
    def is_stale(self) -> bool:
        if self.status != self.Status.RUNNING:
            return False
        age = (timezone.now() - self.heartbeat_at).total_seconds()
        return age > self.STALE_AFTER_SECONDS

    @property
    def completed_bytes(self) -> int:
        return sum(int(layer.get("completed") or 0) for layer in self.layers.values())

    @property
    def total_bytes(self) -> int:
        return sum(int(layer.get("total") or 0) for layer in self.layers.values())

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        total = self.total_bytes
        return int(100 * self.completed_bytes / total) if total else 0
