"""`make bench`: the figures of issue #8 against their targets, as a table on the terminal and
JSON in bench-results/. See docs/performance.md for what each one measures and how.

Page, export and write figures run in this process; the socket figures run against the app
under daphne (one worker, production settings) and the fake Ollama as real processes on
loopback, with this process as the browsers. Every process started here is stopped when the
run ends, fails or is interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tests.benchmarks.machine import MachineReadings

if TYPE_CHECKING:
    from tests.benchmarks.live import Live

BASE_DIR = Path(__file__).resolve().parents[2]
RESULTS = BASE_DIR / "bench-results"
# What `make bench` collected for `make run` (the test settings point STATIC_ROOT elsewhere).
COLLECTED_STATIC = os.environ.get("STATIC_ROOT", "")
FIGURES = ("pages", "export", "writes", "idle", "latency", "lag", "throughput")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="less of everything: under a minute")
    parser.add_argument(
        "--only", default="", help=f"comma-separated figures to run, of: {', '.join(FIGURES)}"
    )
    parser.add_argument(
        "--postgres",
        default="",
        metavar="URL",
        help="run on a fresh database created on this PostgreSQL server (and dropped after), "
        "e.g. postgres://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument(
        "--redis",
        default="",
        metavar="URL",
        help="use this Redis as the channel layer; its database is emptied, e.g. "
        "redis://127.0.0.1:6379/9",
    )
    parser.add_argument(
        "--app-settings",
        default="chatsite.settings",
        metavar="MODULE",
        help="the settings module the app runs with (default: the production settings); to "
        "measure a change of settings before making it",
    )
    arguments = parser.parse_args()
    unknown = set(filter(None, arguments.only.split(","))) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    return arguments


@contextmanager
def _postgres_database(server_url: str) -> Iterator[str]:
    import psycopg

    name = f"chat_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _git(*arguments: str) -> subprocess.CompletedProcess[str]:
    # No optional locks: reading the state must not rewrite the index someone else is using.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    return subprocess.run(
        ["git", *arguments], cwd=BASE_DIR, capture_output=True, text=True, check=False, env=env
    )


def _commit() -> str:
    commit = _git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    changed = _git("diff", "--quiet", "HEAD", "--").returncode != 0
    return f"{commit}+uncommitted" if changed else commit


def _timed(
    name: str, work: Callable[[], dict[str, Any]], machine: MachineReadings
) -> dict[str, Any]:
    """The figure, or what went wrong: one failing figure does not cost the others. The
    machine's speed before it, and the share of CPU time stolen while it ran, go in
    ``machine``."""
    print(f"  {name}…", end="", flush=True)
    started = time.monotonic()
    try:
        with machine.figure(name):
            result = work()
    except Exception as error:  # reported in the table and the JSON
        print(f" failed after {time.monotonic() - started:.0f} s: {error!r}", flush=True)
        return {"error": repr(error)}
    print(
        f" {time.monotonic() - started:.0f} s (CPU check {machine.cpu_check_ms[name]} ms, "
        f"steal {machine.steal_percent[name]}%)",
        flush=True,
    )
    return result


def _static_root(data_dir: Path) -> Path:
    """The collected static files daphne serves: `make`'s if there are any, else collected
    once into the run's data directory."""
    if COLLECTED_STATIC and (Path(COLLECTED_STATIC) / "staticfiles.json").exists():
        return Path(COLLECTED_STATIC)
    return data_dir / "collected-static"


def _run(arguments: argparse.Namespace, machine: MachineReadings) -> dict[str, Any]:
    # Django is set up only now: the database and channel layer depend on the arguments.
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from tests.benchmarks import export, idle, lag, latency, pages, throughput, writes
    from tests.benchmarks.live import live_stack
    from tests.benchmarks.processes import raise_open_files_limit

    quick: bool = arguments.quick
    wanted = set(filter(None, arguments.only.split(","))) or set(FIGURES)
    figures: dict[str, Any] = {}
    call_command("migrate", verbosity=0)  # a throw-away database in the run's data directory
    if "pages" in wanted:
        figures["pages"] = _timed("pages", pages.run, machine)
    if "export" in wanted:
        figures["export"] = _timed("export", lambda: export.run(quick=quick), machine)
    live = [name for name in FIGURES if name in wanted and name not in ("pages", "export")]
    if not live:
        return figures
    raise_open_files_limit()
    models = [
        writes.MODEL,
        writes.QUICK_MODEL,
        idle.MODEL,
        latency.MODEL,
        lag.MODEL,
        throughput.MODEL,
    ]
    # Kept after the run (the data directory is not), to see what a process said.
    logs = RESULTS / "last-run"
    logs.mkdir(parents=True, exist_ok=True)
    with live_stack(
        log_dir=logs,
        static_root=_static_root(Path(settings.DATA_DIR)),
        models=models,
        redis_url=arguments.redis,
        settings_module=arguments.app_settings,
    ) as stack:
        print(f"  (daphne {stack.app.url}, fake Ollama {stack.fake.url}; logs in {logs})")
        if "writes" in wanted:
            owner = User.objects.create_user(f"writes-{secrets.token_hex(3)}")
            conversations = writes.prepare(owner, quick=quick)
            figures["writes"] = _timed(
                "writes",
                lambda: asyncio.run(writes.measure(stack.fake, owner, conversations)),
                machine,
            )
        socket_figures: dict[str, SocketFigure] = {
            "idle": idle,
            "latency": latency,
            "lag": lag,
            "throughput": throughput,
        }
        for name, module in socket_figures.items():
            if name in wanted:
                figures[name] = _timed(name, partial(_socket_figure, module, stack, quick), machine)
    return figures


class SocketFigure(Protocol):
    """A module measuring the live stack: data first (synchronously), then the clients."""

    def prepare(self, live: Live, *, quick: bool) -> Any: ...

    def measure(self, live: Live, data: Any, *, quick: bool) -> Coroutine[Any, Any, Any]: ...


# No figure takes this long unless something is stuck.
FIGURE_TIMEOUT_SECONDS = 600


def _socket_figure(module: SocketFigure, live: Live, quick: bool) -> dict[str, Any]:
    data = module.prepare(live, quick=quick)
    # This process plays the browsers. What it holds before the figure (Django, the data just
    # made) is frozen out of its collector's way, as the worker's is: its full collections
    # would otherwise go through it all, pausing every tab, and count as the app's lag.
    gc.collect()
    gc.freeze()
    measuring = module.measure(live, data, quick=quick)
    result: dict[str, Any] = asyncio.run(asyncio.wait_for(measuring, FIGURE_TIMEOUT_SECONDS))
    return result


def main() -> None:
    arguments = _arguments()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from tests.benchmarks.processes import stop_on_sigterm

    stop_on_sigterm()
    started, machine = time.monotonic(), MachineReadings()
    commit = _commit()
    print(
        f"commit {commit} · {os.cpu_count()} cores · CPU check {machine.check('start')} ms · "
        f"{'quick' if arguments.quick else 'full'}"
        f"{' · PostgreSQL' if arguments.postgres else ''}{' · Redis' if arguments.redis else ''}"
        f"{'' if arguments.app_settings == 'chatsite.settings' else ' · ' + arguments.app_settings}",
        flush=True,
    )
    with ExitStack() as stack:
        if arguments.postgres:
            os.environ["DATABASE_URL"] = stack.enter_context(_postgres_database(arguments.postgres))
        if arguments.redis:
            import redis

            redis.Redis.from_url(arguments.redis).flushdb()
            os.environ["REDIS_URL"] = arguments.redis
        figures = _run(arguments, machine)

    from tests.benchmarks.targets import rows, table

    readings = machine.finish()
    found = rows(figures)
    seconds = round(time.monotonic() - started)
    print(
        f"\n{table(found)}\n\n{sum(r.met is True for r in found)} of "
        f"{sum(r.met is not None for r in found)} targets met · {seconds} s\n"
        f"machine: CPU check {readings['cpu_check_ms']['start']} ms at the start, "
        f"{readings['cpu_check_ms']['end']} ms at the end; "
        f"{readings['steal_percent']['whole run']}% of CPU time stolen"
    )
    report = {
        "commit": commit,
        "cores": os.cpu_count(),
        "quick": arguments.quick,
        "database": "postgresql" if arguments.postgres else "sqlite",
        "channel_layer": "redis" if arguments.redis else "in-memory",
        "app_settings": arguments.app_settings,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": seconds,
        "machine": readings,
        "targets": [row.__dict__ for row in found],
        "figures": figures,
    }
    RESULTS.mkdir(exist_ok=True)
    path = (
        RESULTS
        / f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}{'-quick' if arguments.quick else ''}.json"
    )
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {path.relative_to(BASE_DIR)}")


if __name__ == "__main__":
    main()
