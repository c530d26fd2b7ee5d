"""Metrics a team can watch (issue 15): rank 0's metrics.jsonl / metrics.csv rows (loss per modality,
lr, grad norm, samples/s, data-wait fraction, MFU, per-source counts), TensorBoard scalars when the
package is installed, and resumed runs that hold each step once."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import pytest

from omnimask.data.mixing import MixedDataset
from omnimask.training import MetricsWriter, Mixing, OptimConfig, Trainer
from test_training import OPTIM, NoisyData, _cfg, _model

KEYS = {"step", "epoch", "loss", "loss/x", "lr", "grad_norm", "samples_per_sec", "data_wait_fraction", "step_time"}


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _csv(out: Path) -> list[dict]:
    with (out / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_row_per_step_and_a_resume_keeps_each_step_once(tmp_path):
    cfg = dict(max_steps=4, checkpoint_every=2, metrics_every=1, tensorboard=False)
    first = Trainer(_model(), NoisyData(), _cfg(tmp_path, **cfg), OPTIM).fit()
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and [r["loss"] for r in rows] == first.losses
    for r in rows:
        assert KEYS | {"mfu"} <= set(r) and r["loss/x"] == r["loss"] and r["epoch"] == r["step"] / 4
        assert math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0  # clip_grad is set: the clipping norm
        assert 0 <= r["data_wait_fraction"] <= 1 and r["samples_per_sec"] > 0 and r["mfu"] > 0
    assert [int(r["step"]) for r in _csv(tmp_path)] == [1, 2, 3, 4]
    assert [float(r["loss"]) for r in _csv(tmp_path)] == first.losses

    cfg["max_steps"] = 6  # resume from step 2: rows 3 and 4 are written again, not twice
    ckpt = tmp_path / "checkpoints" / "step_00000002"
    second = Trainer(_model(), NoisyData(), _cfg(tmp_path, **cfg), OPTIM).fit(resume=str(ckpt))
    again = _rows(tmp_path)
    assert [r["step"] for r in again] == [1, 2, 3, 4, 5, 6] and again[:2] == rows[:2]
    assert [r["loss"] for r in again[2:]] == second.losses
    assert [int(r["step"]) for r in _csv(tmp_path)] == [1, 2, 3, 4, 5, 6]
    assert not (tmp_path / "tensorboard").exists()


def test_metrics_every_and_the_grad_norm_without_clipping(tmp_path):
    optim = OptimConfig(base_lr=1e-2, warmup_epochs=1.0, clip_grad=None)
    Trainer(_model(), NoisyData(), _cfg(tmp_path / "a", metrics_every=2, tensorboard=False), optim).fit()
    rows = _rows(tmp_path / "a")
    assert [r["step"] for r in rows] == [2, 4, 6] and all(r["grad_norm"] > 0 for r in rows)
    Trainer(_model(), NoisyData(), _cfg(tmp_path / "b", metrics_every=0), optim).fit()
    Trainer(_model(), NoisyData(), _cfg(tmp_path / "c", log_every=0), optim).fit()  # metrics_every follows it
    for off in ("b", "c"):
        assert not list((tmp_path / off).glob("metrics.*")) and not (tmp_path / off / "tensorboard").exists()


def test_mfu_counts_the_model_flops(tmp_path):
    """ToyAE's forward on 4 samples: two 4x8x16 matmuls, 2048 FLOPs; a step is 3x that per micro-batch."""
    cfg = _cfg(tmp_path, max_steps=3, metrics_every=1, peak_tflops=1e-6, tensorboard=False)  # 1 MFLOP/s
    Trainer(_model(), NoisyData(), cfg, OPTIM).fit()
    for r in _rows(tmp_path):
        assert r["mfu"] * 1e6 * r["step_time"] == pytest.approx(3 * 2048 * 2, rel=1e-6)


class SlowData(NoisyData):
    def __getitem__(self, i: int) -> dict:
        time.sleep(0.05)  # far above the toy model's step, also on a loaded machine
        return super().__getitem__(i)


def test_data_wait_fraction_sees_a_slow_loader(tmp_path):
    cfg = _cfg(tmp_path, max_steps=3, accum_steps=1, metrics_every=1, tensorboard=False)
    Trainer(_model(), SlowData(), cfg, OPTIM).fit()
    assert all(r["data_wait_fraction"] > 0.5 for r in _rows(tmp_path))


def test_mixed_runs_count_samples_per_source(tmp_path):
    data = MixedDataset([NoisyData(), NoisyData(20)], ["big", "small"], [["x"], ["x"]])
    cfg = _cfg(tmp_path, accum_steps=1, metrics_every=1, tensorboard=False)
    trainer = Trainer(_model(), data, cfg, OPTIM, mixing=Mixing([1.0, 1.0], [4, 4]))
    trainer.fit()
    rows = _rows(tmp_path)
    last = rows[-1]
    assert last["source/big/samples"] + last["source/small/samples"] == 4 * last["step"]
    assert last["source/small/epochs"] == trainer.source_stats()["small"]["epochs"]
    assert "source/big/samples" in _csv(tmp_path)[0]


def test_writer_widens_the_csv_and_drops_rows_cut_short(tmp_path):
    w = MetricsWriter(tmp_path, tensorboard=False)
    w.write({"step": 1, "loss": 1.0})
    w.write({"step": 2, "loss": 0.5, "loss/image": 0.25})  # a key seen first now: a new column
    w.close()
    assert [list(r.items()) for r in _csv(tmp_path)] == [
        [("step", "1"), ("loss", "1.0"), ("loss/image", "")],
        [("step", "2"), ("loss", "0.5"), ("loss/image", "0.25")],
    ]
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "lo')  # a process killed while writing
    with (tmp_path / "metrics.csv").open("a") as f:
        f.write("3,0.")
    MetricsWriter(tmp_path, start_step=10, tensorboard=False).write({"step": 11, "loss": 0.1})
    assert [r["step"] for r in _rows(tmp_path)] == [1, 2, 11]
    assert [r["step"] for r in _csv(tmp_path)] == ["1", "2", "11"]
    MetricsWriter(tmp_path, start_step=1, tensorboard=False)  # a resume from step 1
    assert [r["step"] for r in _rows(tmp_path)] == [1] and len(_csv(tmp_path)) == 1


def test_tensorboard_scalars_and_a_resume(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = dict(max_steps=4, checkpoint_every=2, metrics_every=1)
    Trainer(_model(), NoisyData(), _cfg(tmp_path, **cfg), OPTIM).fit()
    ckpt = tmp_path / "checkpoints" / "step_00000002"
    Trainer(_model(), NoisyData(), _cfg(tmp_path, **{**cfg, "max_steps": 6}), OPTIM).fit(resume=str(ckpt))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"loss", "loss/x", "lr", "grad_norm", "samples_per_sec", "data_wait_fraction", "mfu"} <= set(
        events.Tags()["scalars"]
    )
    loss = events.Scalars("loss")
    assert [e.step for e in loss] == [1, 2, 3, 4, 5, 6]  # the first run's steps 3 and 4 were purged
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in _rows(tmp_path)], rel=1e-6)
