"""Processes for the live figures: the fake Ollama on a free loopback port, stopped whatever
happens (daphne is started by tests.live_server, as the browser tests start it); the limits the
benchmark needs; and what /proc says about a process."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tests.live_server import BASE_DIR, process_stop

_FAKE_LISTENING = re.compile(r"listening on (http://[\d.]+:\d+)")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class FakeOllama:
    url: str
    pid: int


def raise_open_files_limit(wanted: int = 65_536) -> int:
    """A thousand sockets need more descriptors than the usual soft limit of 1,024. Children
    inherit the limit, so daphne gets it too. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the `with` blocks below stop the processes they
    started (Ctrl+C already raises KeyboardInterrupt)."""

    def leave(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


@contextmanager
def fake_ollama_process(
    env: Mapping[str, str], clock_models: list[str], log_path: Path, timeout: float = 30
) -> Iterator[FakeOllama]:
    """``manage.py fake_ollama`` on a free port, with the given clock models
    (``NAME:TOKENS_PER_SECOND:REPLY_TOKENS``) besides its usual ones."""
    arguments = [sys.executable, "manage.py", "fake_ollama", "--port", "0"]
    for spec in clock_models:
        arguments += ["--clock-model", spec]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            arguments, cwd=BASE_DIR, env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while not (found := _FAKE_LISTENING.search(log_path.read_text(errors="replace"))):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fake Ollama did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield FakeOllama(url=found[1], pid=process.pid)
    finally:
        process_stop(process)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces; count fields after its closing paren.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def resident_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")
