"""How fast the machine itself was while the figures were measured.

This machine is shared with others: in some hours the same code, on the same data, runs half
as fast (seen here: the 2,000-message page took 18.6 ms in one hour and 37.1 ms in another).
Figures measured against the direct stream cancel what the machine adds to every request, not
what it multiplies, so a figure is read with the machine's speed beside it:

- the CPU check: milliseconds for a fixed piece of pure-Python work that does not depend on
  the project's code (so it compares across commits), best of several tries, at the start,
  before each figure and at the end;
- steal: the share of CPU time the hypervisor gave to someone else while a figure ran
  (``/proc/stat``); it does not show all sharing (caches and memory are shared too), which is
  what the CPU check is for.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# The CPU check's work: about 10 ms on this machine in a fast hour.
_CHECK_ROUNDS = 400
_CHECK_TRIES = 7
_WORD = re.compile(r"[a-z]+")
_TEXT = "the quick brown fox jumps over the lazy dog " * 8
_DOCUMENT = {"messages": [{"role": "user", "content": _TEXT, "n": n} for n in range(8)]}


def _check_work() -> int:
    """Parsing, formatting, dictionaries and strings: what a Python web app spends its time on."""
    total = 0
    for number in range(_CHECK_ROUNDS):
        decoded = json.loads(json.dumps(_DOCUMENT))
        counts: dict[str, int] = {}
        for word in _WORD.findall(decoded["messages"][number % 8]["content"]):
            counts[word] = counts.get(word, 0) + 1
        total += len(f"{number}:{sorted(counts.items())}")
    return total


def cpu_check_ms() -> float:
    """Milliseconds the CPU check takes, the best of several tries (the least disturbed)."""
    best = float("inf")
    for _ in range(_CHECK_TRIES):
        started = time.perf_counter()
        _check_work()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 2)


@dataclass(frozen=True)
class CpuTimes:
    """All CPUs' time so far, in clock ticks, and the part of it stolen."""

    total: int
    steal: int

    @classmethod
    def now(cls) -> CpuTimes:
        with open("/proc/stat") as stat:
            # "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
            fields = [int(value) for value in stat.readline().split()[1:]]
        # guest and guest_nice are already counted in user and nice.
        return cls(total=sum(fields[:8]), steal=fields[7] if len(fields) > 7 else 0)

    def steal_percent_since(self, earlier: CpuTimes) -> float:
        elapsed = self.total - earlier.total
        return round(100 * (self.steal - earlier.steal) / elapsed, 1) if elapsed > 0 else 0.0


@dataclass
class MachineReadings:
    """The machine's speed over one run: the CPU check at the start, before each figure and at
    the end (a figure's own check says more than the run's first: the machine may still be
    busy with the run before), and the share stolen while each figure ran."""

    cpu_check_ms: dict[str, float] = field(default_factory=dict)
    steal_percent: dict[str, float] = field(default_factory=dict)
    _run_started: CpuTimes = field(default_factory=CpuTimes.now)

    def check(self, moment: str) -> float:
        self.cpu_check_ms[moment] = cpu_check_ms()
        return self.cpu_check_ms[moment]

    @contextmanager
    def figure(self, name: str) -> Iterator[None]:
        self.check(name)
        before = CpuTimes.now()
        try:
            yield
        finally:
            self.steal_percent[name] = CpuTimes.now().steal_percent_since(before)

    def finish(self) -> dict[str, dict[str, float]]:
        self.check("end")
        self.steal_percent["whole run"] = CpuTimes.now().steal_percent_since(self._run_started)
        return {"cpu_check_ms": self.cpu_check_ms, "steal_percent": self.steal_percent}
