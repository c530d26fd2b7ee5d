"""benchmarks/tta_report.py: averaging the time-to-quality series over seeds, and its table."""

from __future__ import annotations

import copy
import statistics

import pytest

from script_loader import load_script

tta = load_script("benchmarks/tta_report.py")


def _report(seed: int, knn: list[float], probe: list[float], steps_per_s: float) -> dict:
    points = [
        {"seconds": 10.0 * i + 0.1 * seed, "steps": 5 * i, "samples": 40 * i, "knn": k, "probe": p}
        for i, (k, p) in enumerate(zip(knn, probe))
    ]
    result = {
        "points": points,
        "steps_per_s": steps_per_s,
        "samples_per_s": 8 * steps_per_s,
        "mfu": 0.5,
        "steady_step_s": 1 / steps_per_s,
        "notes": "a system",
        "bf16": False,
        "repeats": 1,
        "compile": False,
    }
    return {
        "date": f"2026-12-0{seed}T00:00:00+00:00",
        "machine": {"platform": "p", "processor": "cpu", "threads": 2},
        "versions": {"torch": "t", "transformers": "x"},
        "seed": seed,
        "budgets_s": [10.0, 20.0],
        "eval": {"train_samples": 100, "val_samples": 50},
        "results": {"a": result, "b": copy.deepcopy(result)},
        "headline_metric": "knn",
    }


def test_combine_takes_every_budgets_mean_and_sample_std_over_seeds():
    runs = [_report(1, [10, 20, 30], [50, 60, 70], 2.0), _report(2, [12, 26, 30], [52, 60, 80], 4.0)]
    out = tta.combine(runs)
    assert out["seeds"] == [1, 2] and out["per_seed"] == runs and out["date"] == runs[1]["date"]
    point = out["results"]["a"]["points"][1]
    assert point["knn"] == 23 and point["knn_seeds"] == [20, 26]
    assert point["knn_std"] == pytest.approx(statistics.stdev([20, 26]))
    assert point["probe"] == 60 and point["probe_std"] == 0
    assert point["seconds"] == pytest.approx(10.15) and point["steps"] == 5
    assert out["results"]["a"]["steps_per_s"] == 3.0 and out["results"]["b"]["notes"] == "a system"
    assert runs[0]["results"]["a"]["points"][1]["knn"] == 20  # the inputs are left as they were


def test_combine_refuses_runs_of_different_series():
    other = _report(2, [1, 2, 3], [1, 2, 3], 1.0)
    other["budgets_s"] = [10.0, 40.0]
    with pytest.raises(ValueError, match="budgets or systems"):
        tta.combine([_report(1, [1, 2, 3], [1, 2, 3], 1.0), other])


def test_the_table_shows_spreads_for_averaged_runs_and_none_for_one_seed():
    runs = [_report(1, [10, 20, 30], [50, 60, 70], 2.0), _report(2, [12, 26, 30], [52, 60, 80], 4.0)]
    for report, spread in ((tta.combine(runs), True), (runs[0], False)):
        report = {**report, "summary": {}}
        text = tta.markdown(report, "figure.svg")
        assert ("30.0 ± 0.0" in text and "75.0 ± 7.1" in text) is spread
        assert ("seeds 1, 2" in text) is spread and ("one seed" in text) is not spread


def test_an_lr_scaled_transformers_system_trains_at_k_times_the_lr():
    """``transformers-mae-init-lr2x``: the baseline at the lr a tuned preset would get, named so the
    target (the best of any ``transformers*`` system) includes it."""
    bench = load_script("benchmarks/bench_time_to_quality.py")
    default = bench.load_recipe(bench.DEFAULT_CONFIG)
    base = bench.build_system("transformers-mae-init", default)
    scaled = bench.build_system("transformers-mae-init-lr2x", default)
    assert (scaled.name, scaled.lr_scale) == ("transformers-mae-init-lr2x", 2.0) and scaled.notes.endswith("lr x2")
    assert bench.optimizer_for(scaled)[1] == pytest.approx(2 * bench.optimizer_for(base)[1])
    assert bench.build_system("transformers-lr0.5x", default).lr_scale == 0.5
    with pytest.raises(SystemExit, match="-lr<number>x"):
        bench.build_system("transformers-lrfastx", default)
    with pytest.raises(SystemExit, match="unknown system 'omnimask-lr2x'"):
        bench.build_system("omnimask-lr2x", default)


def test_merge_keeps_every_system_of_both_runs():
    """A system of the earlier run that is neither built in nor in this run (an ``-lr2x`` one) was
    once dropped from the merged file."""
    bench = load_script("benchmarks/bench_time_to_quality.py")
    old = {"omnimask-fast": 1, "transformers-mae-init": 2, "transformers-mae-init-lr2x": 3, "omnimask": 4}
    results, merged = bench.merge_results(old, {"fast-lr2x": 5, "omnimask-fast": 6})
    assert merged == ["transformers-mae-init", "transformers-mae-init-lr2x", "omnimask"]
    assert results == {"omnimask": 4, "omnimask-fast": 6, "transformers-mae-init": 2,
                       "transformers-mae-init-lr2x": 3, "fast-lr2x": 5}  # fmt: skip
    assert list(results)[-2:] == ["transformers-mae-init-lr2x", "fast-lr2x"]
