"""The targets of issue #8 and how each measured figure compares: one row per target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The targets are in decimal units; memory is measured in binary ones.
MB_IN_MIB = 1_000_000 / 1_048_576
KB_IN_KIB = 1000 / 1024


@dataclass(frozen=True)
class Row:
    figure: str
    target: str
    measured: str
    met: bool | None  # None: shown for comparison, no target of its own


def _latency(name: str, figure: dict[str, Any], *, judged: bool) -> Row:
    return Row(
        f"1. added first-token latency, {name}",
        "p50 ≤ 5 ms, p99 ≤ 25 ms" if judged else "(for comparison)",
        f"p50 {figure['added_p50_ms']} ms, p99 {figure['added_p99_ms']} ms "
        f"(app {figure['app_p50_ms']}/{figure['app_p99_ms']}, "
        f"direct {figure['direct_p50_ms']}/{figure['direct_p99_ms']}; "
        f"{figure['samples']} sends)",
        figure["added_p50_ms"] <= 5 and figure["added_p99_ms"] <= 25 if judged else None,
    )


def rows(figures: dict[str, Any]) -> list[Row]:
    found = [
        Row(f"{name}: not measured", "", figure["error"], False)
        for name, figure in figures.items()
        if "error" in figure
    ]
    figures = {name: figure for name, figure in figures.items() if "error" not in figure}
    if latency := figures.get("latency"):
        found.append(_latency("1 reply", latency["1_replies"], judged=True))
        found.append(_latency("10 replies", latency["10_replies"], judged=False))
        found.append(_latency("50 replies", latency["50_replies"], judged=True))
    if lag := figures.get("lag"):
        found.append(
            Row(
                f"2. token lag, {lag['replies']} × {lag['tokens_per_second_each']:g} tok/s",
                "p99 ≤ 60 ms",
                f"p50 {lag['lag_p50_ms']} ms, p99 {lag['lag_p99_ms']} ms ({lag['tokens']} tokens)",
                lag["lag_p99_ms"] <= 60,
            )
        )
    if throughput := figures.get("throughput"):
        found.append(
            Row(
                "3. relay throughput, one worker",
                "≥ 10,000 tok/s with lag p99 < 100 ms",
                f"{throughput['tokens_per_second']:,} tok/s with "
                f"{throughput['at_replies_at_once']} at once, lag p99 "
                f"{throughput['lag_p99_ms']} ms (fake Ollama alone: "
                f"{throughput['direct_stream_tokens_per_second']:,} tok/s)",
                throughput["tokens_per_second"] >= 10_000 and throughput["lag_p99_ms"] < 100,
            )
        )
        found.append(
            Row(
                "3. CPU per 1,000 tokens relayed",
                "≤ 50 ms",
                f"{throughput['cpu_ms_per_1000_tokens']} ms",
                throughput["cpu_ms_per_1000_tokens"] <= 50,
            )
        )
    for name, reply in (figures.get("writes") or {}).items():
        found.append(
            Row(
                f"4. writes per reply, {name.replace('_', ' ')}",
                "≤ 4 + 1 per second streamed",
                f"{reply['writes']} writes in {reply['seconds']} s (limit {reply['limit']})",
                reply["writes"] <= reply["limit"],
            )
        )
    if pages := figures.get("pages"):
        short, long = pages["conversation_20_messages"], pages["conversation_2000_messages"]
        found.append(
            Row(
                "5. conversation page, 2,000 messages",
                "≤ 150 ms, queries as for 20",
                f"{long['ms']} ms, {long['queries']} queries "
                f"(20 messages: {short['ms']} ms, {short['queries']} queries)",
                long["ms"] <= 150 and long["queries"] == short["queries"],
            )
        )
        few, many = pages["sidebar_5_conversations"], pages["sidebar_5000_conversations"]
        found.append(
            Row(
                "5. sidebar, 5,000 conversations",
                "≤ 50 ms, queries as for 5",
                f"{many['ms']} ms, {many['queries']} queries "
                f"(5 conversations: {few['ms']} ms, {few['queries']} queries)",
                many["ms"] <= 50 and many["queries"] == few["queries"],
            )
        )
    if export := figures.get("export"):
        found.append(
            Row(
                "6. Markdown export, 2,000 messages",
                "≤ 500 ms",
                f"{export['markdown_2000_messages_ms']} ms",
                export["markdown_2000_messages_ms"] <= 500,
            )
        )
        count = export["zip_conversations"]
        growth = export[f"zip_rss_growth_mib_{count}"]
        found.append(
            Row(
                f"6. zip of {count:,} conversations, memory growth",
                "≤ 50 MB",
                f"{growth} MiB ({export['zip_seconds']} s)",
                growth <= 50 * MB_IN_MIB,
            )
        )
    if idle := figures.get("idle"):
        found.append(
            Row(
                f"7. idle websocket, {idle['sockets']:,} open",
                "≤ 50 KB each",
                f"{idle['kib_per_socket']} KiB each",
                idle["kib_per_socket"] <= 50 * KB_IN_KIB,
            )
        )
    return found


def table(found: list[Row]) -> str:
    header = Row("figure", "target", "measured", None)
    widths = [
        max(len(getattr(row, key)) for row in [header, *found]) for key in ("figure", "target")
    ]
    lines = []
    for row in [header, *found]:
        verdict = "" if row is header else {True: "met", False: "MISSED", None: ""}[row.met]
        lines.append(
            f"{row.figure:<{widths[0]}}  {row.target:<{widths[1]}}  {verdict:<6}  {row.measured}"
        )
    return "\n".join(lines)
