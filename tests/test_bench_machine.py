"""The benchmark's reading of the machine's own speed (tests/benchmarks/machine.py), which the
figures are read beside."""

from __future__ import annotations

import pytest

from tests.benchmarks.machine import CpuTimes, MachineReadings, cpu_check_ms


def test_steal_is_the_stolen_share_of_all_cpu_time_between_two_readings() -> None:
    before = CpuTimes(total=10_000, steal=100)
    after = CpuTimes(total=10_400, steal=130)
    assert after.steal_percent_since(before) == 7.5
    assert before.steal_percent_since(before) == 0.0


def test_cpu_times_are_read_from_proc_stat_and_only_grow() -> None:
    first = CpuTimes.now()
    cpu_check_ms()  # some CPU time passes
    second = CpuTimes.now()
    assert second.total > first.total > 0
    assert 0 <= second.steal <= second.total
    assert 0.0 <= second.steal_percent_since(first) <= 100.0


def test_a_run_reads_the_machine_at_its_start_before_each_figure_and_at_its_end() -> None:
    readings = MachineReadings()
    readings.check("start")
    with readings.figure("pages"):
        pass
    found = readings.finish()
    assert set(found["cpu_check_ms"]) == {"start", "pages", "end"}
    assert all(ms > 0 for ms in found["cpu_check_ms"].values())
    assert set(found["steal_percent"]) == {"pages", "whole run"}


def _failing_figure() -> None:
    raise RuntimeError("the figure failed")


def test_a_figure_that_fails_still_has_its_reading() -> None:
    readings = MachineReadings()
    with pytest.raises(RuntimeError), readings.figure("latency"):
        _failing_figure()
    assert "latency" in readings.steal_percent
