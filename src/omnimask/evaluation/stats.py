"""Mean and spread of a few-label result over its label subsets."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["mean_std"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, sample standard deviation)`` of ``values``; the deviation of one value is 0.

    The sample (n - 1) deviation: the subsets are a sample of the ways to draw the labels, and
    with two or three subsets the population formula would understate the spread noticeably.
    """
    if not values:
        raise ValueError("mean_std: no values")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
