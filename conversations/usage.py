"""Usage figures for the admin: messages and tokens per model, per user and per day over a recent
period, and each model's average generation speed. Three queries, whatever the volume."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from conversations.models import Message

PERIODS = (7, 30)


@dataclass(frozen=True)
class UsageRow:
    label: str
    messages: int
    prompt_tokens: int
    output_tokens: int
    # Output tokens over generation time, from the replies that carry both (Ollama's stats).
    tokens_per_second: float | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


@dataclass(frozen=True)
class UsageDay:
    day: date
    messages: int
    tokens: int
    share: int  # percent of the busiest day's tokens, for the bar


@dataclass(frozen=True)
class UsageReport:
    days: int
    since: date
    per_model: list[UsageRow]
    per_user: list[UsageRow]
    per_day: list[UsageDay]

    @property
    def total_messages(self) -> int:
        return sum(row.messages for row in self.per_model)

    @property
    def total_tokens(self) -> int:
        return sum(row.tokens for row in self.per_model)


def _totals() -> dict[str, Any]:
    return {
        "messages": Count("id"),
        "prompt_tokens": Coalesce(Sum("prompt_eval_count"), 0),
        "output_tokens": Coalesce(Sum("eval_count"), 0),
    }


def _rows(queryset: Iterable[dict[str, Any]], *, timed: bool) -> list[UsageRow]:
    rows = []
    for item in queryset:
        speed = None
        if timed and item["eval_ns"]:
            speed = item["timed_tokens"] / (item["eval_ns"] / 1e9)
        rows.append(
            UsageRow(
                label=item["label"] or "—",
                messages=item["messages"],
                prompt_tokens=item["prompt_tokens"],
                output_tokens=item["output_tokens"],
                tokens_per_second=speed,
            )
        )
    return sorted(rows, key=lambda row: (-row.tokens, -row.messages, row.label))


def usage_report(days: int) -> UsageReport:
    today = timezone.localdate()
    since = today - timedelta(days=days - 1)
    recent = Message.objects.filter(
        created_at__date__gte=since, role__in=[Message.Role.USER, Message.Role.ASSISTANT]
    ).order_by()
    timed = Q(eval_count__gt=0, eval_duration__gt=0)
    per_model = recent.values(label=F("conversation__model_name")).annotate(
        **_totals(),
        timed_tokens=Coalesce(Sum("eval_count", filter=timed), 0),
        eval_ns=Coalesce(Sum("eval_duration", filter=timed), 0),
    )
    per_user = recent.values(label=F("conversation__owner__username")).annotate(**_totals())
    daily = cast(
        Iterable[dict[str, Any]],
        recent.annotate(day=TruncDate("created_at")).values("day").annotate(**_totals()),
    )
    by_day = {item["day"]: item for item in daily}
    busiest = max(
        (item["prompt_tokens"] + item["output_tokens"] for item in by_day.values()), default=0
    )
    per_day = []
    for offset in range(days):
        day = since + timedelta(days=offset)
        item = by_day.get(day)
        tokens = item["prompt_tokens"] + item["output_tokens"] if item else 0
        per_day.append(
            UsageDay(
                day,
                item["messages"] if item else 0,
                tokens,
                round(100 * tokens / busiest) if busiest else 0,
            )
        )
    return UsageReport(
        days=days,
        since=since,
        per_model=_rows(cast(Iterable[dict[str, Any]], per_model), timed=True),
        per_user=_rows(cast(Iterable[dict[str, Any]], per_user), timed=False),
        per_day=per_day,
    )
