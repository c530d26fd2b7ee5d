"""Writes the time-to-quality results into ``docs/benchmarks.md`` and an SVG plot (no plotting
library needed: the figure is a few dozen SVG elements)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

START, END = "<!-- time-to-quality:start -->", "<!-- time-to-quality:end -->"
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _fmt(v: float | None, spec: str = ".0f", none: str = "not reached") -> str:
    return none if v is None else format(v, spec)


def _acc(point: dict[str, Any], metric: str) -> str:
    """``85.0``, or ``85.0 ± 1.2`` for a point averaged over seeds (sample std)."""
    std = point.get(f"{metric}_std")
    return f"{point[metric]:.1f}" + (f" ± {std:.1f}" if std is not None else "")


def _best(points: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    return max(points, key=lambda p: p[metric])


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def combine(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from runs of the same systems and budgets under different seeds: every budget's
    point is the mean over seeds (``knn_std``/``probe_std`` the sample std, ``knn_seeds`` the values),
    throughput and MFU are means; ``per_seed`` keeps each run. The caller recomputes the summary on
    the mean curves."""
    first = reports[0]
    for r in reports[1:]:
        if r["budgets_s"] != first["budgets_s"] or list(r["results"]) != list(first["results"]):
            raise ValueError("combine: runs differ in budgets or systems; pass runs of one series")
    results: dict[str, Any] = {}
    for name, head in first["results"].items():
        runs = [r["results"][name] for r in reports]
        points = []
        for i in range(len(head["points"])):
            at = [run["points"][i] for run in runs]
            point: dict[str, Any] = {k: statistics.fmean(p[k] for p in at) for k in ("seconds", "steps", "samples")}
            for m in ("knn", "probe"):
                point[m], point[f"{m}_std"] = _mean_std([p[m] for p in at])
                point[f"{m}_seeds"] = [p[m] for p in at]
            points.append(point)
        mean = {
            k: statistics.fmean(run[k] for run in runs)
            for k in ("steps_per_s", "samples_per_s", "mfu", "steady_step_s")
        }
        results[name] = {**head, **mean, "points": points}
    return {
        **first,
        "results": results,
        "seeds": [r.get("seed") for r in reports],
        "per_seed": reports,
        "date": max(r["date"] for r in reports),
    }


def markdown(report: dict[str, Any], figure: str) -> str:
    metric = report["headline_metric"]
    res, summ = report["results"], report["summary"].get(metric)
    summ_p = report["summary"].get("probe")
    budgets = ", ".join(f"{b:g}" for b in report["budgets_s"])
    ev = report["eval"]
    seeds = report.get("seeds")
    lines = [
        f"Measured {report['date']} ({report['machine']['processor'] or report['machine']['platform']}, "
        f"{report['machine']['threads']} threads; torch {report['versions']['torch']}, transformers "
        f"{report['versions']['transformers']}), budgets {budgets} s of training per system, evaluated on "
        f"{ev['val_samples']} held-out digits against {ev['train_samples']} training digits "
        f"(`benchmarks/results/time_to_quality.json`)"
        + (f"; mean ± sample std over seeds {', '.join(map(str, seeds))}." if seeds else "; one seed."),
        "",
        "| system | what | steps/s | samples/s | MFU | best kNN | best probe | s to kNN target | s to probe target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in res.items():
        best_k, best_p = _acc(_best(r["points"], "knn"), "knn"), _acc(_best(r["points"], "probe"), "probe")
        t = summ["systems"][name]["seconds_to_target"] if summ else None
        tp = summ_p["systems"][name]["seconds_to_target"] if summ_p else None
        what = r["notes"] + (", bf16" if r["bf16"] else "") + (", compiled" if r["compile"] else "")
        if r["repeats"] > 1:
            what += f", {r['repeats']} masks per sample"
        lines.append(
            f"| {name} | {what} | {r['steps_per_s']:.2f} | {r['samples_per_s']:.0f} | "
            f"{100 * r['mfu']:.1f} % | {best_k} | {best_p} | {_fmt(t)} | {_fmt(tp)} |"
        )
    for m, sm in (
        (metric, summ),
        ("probe" if metric != "probe" else "knn", report["summary"].get("probe" if metric != "probe" else "knn")),
    ):
        if not sm:
            continue
        speed = ", ".join(
            f"{n} {s['speedup_vs_reference']:.2f}x" if s["speedup_vs_reference"] else f"{n} not reached"
            for n, s in sm["systems"].items()
            if n != sm["reference"]
        )
        lines += ["", f"Target ({m}): the best of any `transformers*` system, `{sm['reference']}` at {sm['target']:.1f} %. "
                  f"Time to it against `{sm['reference']}`: {speed}."]  # fmt: skip
    lines += ["", "Accuracy (kNN / probe, %) at each budget:", ""]
    lines.append("| system | " + " | ".join(f"{p['seconds']:.0f} s" for p in next(iter(res.values()))["points"]) + " |")
    lines.append("|---|" + "---|" * len(next(iter(res.values()))["points"]))
    for name, r in res.items():
        lines.append(f"| {name} | " + " | ".join(f"{_acc(p, 'knn')} / {_acc(p, 'probe')}" for p in r["points"]) + " |")
    lines += ["", f"![{metric} accuracy against training wall-clock]({figure})"]
    return "\n".join(lines)


def svg(report: dict[str, Any], width: int = 640, height: int = 380) -> str:
    metric = report["headline_metric"]
    res = report["results"]
    xmax = max(p["seconds"] for r in res.values() for p in r["points"]) or 1.0
    vals = [p[metric] for r in res.values() for p in r["points"]]
    ylo, yhi = 5 * (min(vals) // 5), 5 * (max(vals) // 5 + 1)
    left, right, top, bottom = 60, 190, 20, 50
    pw, ph = width - left - right, height - top - bottom

    def xy(s: float, v: float) -> tuple[float, float]:
        return left + pw * s / xmax, top + ph * (1 - (v - ylo) / (yhi - ylo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="black"/>',
    ]
    for i in range(6):
        s = xmax * i / 5
        x, _ = xy(s, ylo)
        out.append(f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle">{s:.0f}</text>')
        v = ylo + (yhi - ylo) * i / 5
        _, y = xy(0, v)
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.0f}</text>')
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 12}" text-anchor="middle">training wall-clock (s)</text>')
    out.append(
        f'<text x="14" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {top + ph / 2})">'
        f"held-out {metric} top-1 (%)</text>"
    )
    for i, (name, r) in enumerate(res.items()):
        c = COLOURS[i % len(COLOURS)]
        pts = " ".join("{:.1f},{:.1f}".format(*xy(p["seconds"], p[metric])) for p in r["points"])
        out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
        for p in r["points"]:
            x, y = xy(p["seconds"], p[metric])
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{c}"/>')
        ly = top + 10 + 20 * i
        out.append(
            f'<line x1="{left + pw + 12}" y1="{ly}" x2="{left + pw + 32}" y2="{ly}" stroke="{c}" stroke-width="2"/>'
        )
        out.append(f'<text x="{left + pw + 38}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out)


def write_docs(report: dict[str, Any], doc: Path, figure: Path) -> None:
    """Replace the section between the markers in ``doc`` (appended if absent) and write the figure."""
    figure.parent.mkdir(parents=True, exist_ok=True)
    figure.write_text(svg(report))
    body = f"{START}\n{markdown(report, figure.relative_to(doc.parent).as_posix())}\n{END}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Time to quality: omnimask against transformers' ViTMAE\n\n" + body + "\n"
    doc.write_text(text)
