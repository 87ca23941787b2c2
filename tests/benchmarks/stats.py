"""Percentiles of samples in microseconds, reported in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (what numpy does by default)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = fraction * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(microseconds: float) -> float:
    return round(microseconds / 1000, 1)


def p50_p99_ms(samples: Sequence[float]) -> tuple[float, float]:
    return ms(percentile(samples, 0.50)), ms(percentile(samples, 0.99))
