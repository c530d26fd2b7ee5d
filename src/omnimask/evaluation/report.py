"""The evaluation report as a text table: one row per encoder, ``mean ± std`` for few-label numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .protocol import REPORT_METRICS

__all__ = ["format_report", "report_gains"]


def _columns(report: dict[str, dict[str, Any]], k: int, extra: Sequence[str]) -> list[tuple[str, str]]:
    cols = [(key, title.format(k=k)) for key, title in REPORT_METRICS]
    cols += [(key, key) for key in extra]
    return [(key, title) for key, title in cols if any(key in r for r in report.values())]


def _cell(entry: dict[str, Any], key: str) -> str:
    if key not in entry:
        return "-"
    std_key = key[: -len("_mean")] + "_std" if key.endswith("_mean") else None
    if std_key and std_key in entry:
        return f"{entry[key]:.1f} ± {entry[std_key]:.1f}"
    return f"{entry[key]:.1f}"


def report_gains(report: dict[str, dict[str, Any]], better: str, base: str) -> dict[str, float]:
    """``{metric: report[better][metric] - report[base][metric]}`` (points) for every numeric
    metric both entries hold (per-subset lists and spreads left out)."""
    a, b = report[better], report[base]
    return {
        key: float(a[key]) - float(b[key])
        for key in a
        if key in b and isinstance(a[key], (int, float)) and not key.endswith("_std")
    }


def format_report(
    report: dict[str, dict[str, Any]],
    labels_per_class: int,
    extra: Sequence[str] = (),
    gain_label: str = "gain (points)",
) -> str:
    """The table of a :func:`~omnimask.evaluation.compare_encoders` report (``extra``: other numeric
    keys to show, e.g. retrieval recalls); with exactly two encoders a last row, ``gain_label``,
    gives the first one's gain over the second, in points."""
    cols = _columns(report, labels_per_class, extra)
    width = max([24, len(gain_label) + 2, *(len(name) + 2 for name in report)])
    widths = [max(len(title), 13) + 2 for _, title in cols]
    lines = [f"  {'encoder':<{width}}" + "".join(f"{title:>{w}}" for (_, title), w in zip(cols, widths))]
    for name, entry in report.items():
        lines.append(f"  {name:<{width}}" + "".join(f"{_cell(entry, key):>{w}}" for (key, _), w in zip(cols, widths)))
    names = list(report)
    if len(names) == 2:
        gains = report_gains(report, names[0], names[1])
        cells = "".join(f"{f'{gains[key]:+.1f}' if key in gains else '-':>{w}}" for (key, _), w in zip(cols, widths))
        lines.append(f"  {gain_label:<{width}}" + cells)
    return "\n".join(lines)
