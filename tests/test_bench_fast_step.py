"""benchmarks/bench_fast_step.py: both comparisons run and report what they timed."""

from __future__ import annotations

import json

from script_loader import load_script

bench = load_script("benchmarks/bench_fast_step.py")


def test_interleaved_times_every_variant_after_a_warm_up_round():
    calls = []
    t = bench.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=2, reps=3)
    assert set(t) == {"a", "b"} and all(v >= 0 for v in t.values())
    assert calls == ["a"] * 3 + ["b"] * 3 + ["b"] * 3 + ["a"] * 3 + ["a"] * 3 + ["b"] * 3  # reversed every other round


def test_the_script_writes_both_comparisons(tmp_path, monkeypatch, embedded_data_dir):
    monkeypatch.setenv("OMNIMASK_DATA_DIR", str(embedded_data_dir))
    out = tmp_path / "fast.json"
    assert bench.main(["--rounds", "1", "--steps", "1", "--batches", "1", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows, load = report["decoder_rows"], report["loading"]
    assert set(rows["step_s"]) == {"head_rows_only", "every_row"} and rows["batch_size"] == 128
    assert set(load["batch_s"]) == {"cached", "from_files"} and load["speedup"] > 0
