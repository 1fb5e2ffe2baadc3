"""Latency histograms with fixed bucket bounds: which bucket a duration falls in, and
percentiles read back from bucket counts (linear within a bucket, as Prometheus does)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from ops.models import LATENCY_BOUNDS_MS, LATENCY_FIELDS

BUCKETS = len(LATENCY_FIELDS)


def bucket_index(duration_ms: float) -> int:
    """The bucket of a duration: the first whose upper bound is at least ``duration_ms``."""
    return bisect_left(LATENCY_BOUNDS_MS, duration_ms)


def bound_index(bound_ms: int) -> int:
    """The bucket whose upper bound is ``bound_ms`` (ValueError for a value that is not one)."""
    try:
        return LATENCY_BOUNDS_MS.index(bound_ms)
    except ValueError:
        raise ValueError(f"{bound_ms} ms is not a histogram bound ({', '.join(map(str, LATENCY_BOUNDS_MS))})") from None


def histogram_count_above(buckets: Sequence[int], *, bound_ms: int) -> int:
    """Requests slower than ``bound_ms`` (a bucket bound, so the count is exact)."""
    return sum(buckets[bound_index(bound_ms) + 1 :])


def histogram_percentile(buckets: Sequence[int], quantile: float) -> float | None:
    """The ``quantile`` (0..1) of the durations counted in ``buckets``, in ms; None when empty.

    Inside a bucket the durations are taken as spread evenly; a rank in the open top bucket
    reads as its lower bound (the histogram knows nothing above it)."""
    total = sum(buckets)
    if total <= 0:
        return None
    rank = quantile * total
    below = 0
    for index, count in enumerate(buckets):
        if count and below + count >= rank:
            lower = float(LATENCY_BOUNDS_MS[index - 1]) if index else 0.0
            if index >= len(LATENCY_BOUNDS_MS):
                return lower
            upper = float(LATENCY_BOUNDS_MS[index])
            return lower + (upper - lower) * max(rank - below, 0.0) / count
        below += count
    return float(LATENCY_BOUNDS_MS[-1])
