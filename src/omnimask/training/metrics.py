"""What a team watches while a run trains: the progress bar, a log line, and metrics files.

Rank 0 writes one row every ``train.metrics_every`` optimizer steps (default: ``train.log_every``;
0 = none) to ``<output_dir>/metrics.jsonl`` and ``<output_dir>/metrics.csv`` and, when the
``tensorboard`` package is importable (``pip install omnimask[tensorboard]``) and
``train.tensorboard`` is on, as scalars to ``<output_dir>/tensorboard/``. A row holds:

============================ ================================================================
``step``, ``epoch``          optimizer step; epochs done as a fraction (step / steps per epoch)
``loss``, ``loss/<name>``    the step's loss and per-modality losses (mean over ranks)
``lr``                       the scheduled peak-group lr of the step
``grad_norm``                total L2 norm of the gradients (before clipping)
``samples_per_sec``          samples over all ranks per second, since the previous row
``data_wait_fraction``       share of that time rank 0 waited for the next batch
``step_time``                seconds per optimizer step since the previous row
``mfu``                      model FLOPs utilisation (see :class:`FlopCounter`), when known
``source/<name>/samples``    mixed runs: samples seen per source over all ranks (and ``/epochs``)
============================ ================================================================

JSONL rows carry every key; the CSV gains a column (the file is rewritten once) when a key first
appears. A resumed run drops the rows after its checkpoint's step first, so the files hold each step
once; TensorBoard's own ``purge_step`` does the same for its events.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

__all__ = ["MetricsWriter", "Reporter", "FlopCounter", "grad_norm", "measure_peak_flops", "tensorboard_available"]

logger = logging.getLogger(__name__)

METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def grad_norm(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor | None:
    """Total L2 norm of the parameters' gradients (a device tensor: no host sync), None without any."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return None
    total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6: fused per device and dtype
    if total_norm is not None:
        return total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


@functools.cache
def measure_peak_flops(device: str, dtype: str = "float32", n: int = 1024) -> float:
    """FLOP/s of an ``n x n`` matmul in ``dtype`` on ``device``, measured once per process.

    What this device reaches on a dense matmul, not its data-sheet peak (usually higher): MFU
    against it reads high. ``train.peak_tflops`` replaces the measurement with a known peak.
    """
    dev, dt = torch.device(device), getattr(torch, dtype)
    a = torch.full((n, n), 0.5, device=dev, dtype=dt)  # no RNG draw: the run's streams stay as they are

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    a @ a
    sync()
    reps = 1
    while True:
        t = time.perf_counter()
        for _ in range(reps):
            a @ a
        sync()
        elapsed = time.perf_counter() - t
        if elapsed >= 0.05 or reps >= 1024:
            return 2 * n**3 * reps / max(elapsed, 1e-9)
        reps *= 2


class FlopCounter:
    """A training step's FLOPs: 3x its forward passes' FLOPs (the backward costs about twice the forward).

    A forward's FLOPs (matmuls, convolutions, attention; :class:`torch.utils.flop_counter.FlopCounterMode`)
    are counted the first time its inputs have a given set of shapes and reused after, so counting
    costs one slower forward per shape. Data-dependent work (a masking ratio that changes over the
    run) is counted as it was then.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.known: dict[tuple, float] = {}
        self.total = 0.0  # FLOPs since the last take()

    def forward(self, inputs: dict[str, Any]) -> AbstractContextManager[Any]:
        if not self.enabled:
            return nullcontext()
        key = tuple(sorted((k, tuple(getattr(v, "shape", ()))) for k, v in inputs.items()))
        if key in self.known:
            self.total += self.known[key]
            return nullcontext()
        return self._count(key)

    @contextmanager
    def _count(self, key: tuple) -> Any:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as mode:
            yield
        self.known[key] = 3.0 * mode.get_total_flops()
        self.total += self.known[key]

    def take(self) -> float:
        total, self.total = self.total, 0.0
        return total


def _read_rows(path: Path, kind: str) -> tuple[list[str], list[Any]]:
    """``(csv header, rows)`` of a metrics file; unreadable lines (a write cut short) are dropped."""
    rows: list[Any] = []
    header: list[str] = []
    with path.open(encoding="utf-8", newline="") as f:
        if kind == "csv":
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = [r for r in reader if None not in r and None not in r.values() and _step_of(r["step"]) is not None]
        else:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and _step_of(row.get("step")) is not None:
                    rows.append(row)
    return header, rows


def _step_of(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _rewrite(path: Path, header: list[str], rows: list[Any], kind: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        if kind == "csv":
            writer = csv.DictWriter(f, fieldnames=header, restval="")
            writer.writeheader()
            writer.writerows(rows)
        else:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(tmp, path)


class MetricsWriter:
    """Appends metrics rows to ``metrics.jsonl``, ``metrics.csv`` and TensorBoard under ``output_dir``.

    Rows of steps after ``start_step`` (from the run a resume continues, or any earlier run in the
    folder when ``start_step`` is 0) are removed first.
    """

    def __init__(self, output_dir: str | Path, start_step: int = 0, tensorboard: bool = True) -> None:
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl, self.csv = self.dir / METRICS_JSONL, self.dir / METRICS_CSV
        self.columns: list[str] = []
        for path, kind in ((self.jsonl, "jsonl"), (self.csv, "csv")):
            if path.is_file():
                header, rows = _read_rows(path, kind)
                _rewrite(path, header, [r for r in rows if _step_of(r["step"]) <= start_step], kind)
                if kind == "csv":
                    self.columns = header
        self.tb: Any = None
        if tensorboard and tensorboard_available():
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(self.dir / TENSORBOARD_DIR), purge_step=start_step + 1)
            except Exception as err:  # noqa: BLE001 - a broken tensorboard install must not stop training
                logger.warning("TensorBoard disabled: cannot open its writer (%s)", err)

    def write(self, row: dict[str, Any]) -> None:
        with self.jsonl.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        new = [k for k in row if k not in self.columns]
        if new:  # a key not seen before (a modality's first loss): widen the CSV once
            old = _read_rows(self.csv, "csv")[1] if self.csv.is_file() and self.columns else []
            self.columns += new
            _rewrite(self.csv, self.columns, old, "csv")
        with self.csv.open("a", encoding="utf-8", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, restval="").writerow(row)
        if self.tb is not None:
            step = int(row["step"])
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


class Reporter:
    """Rank 0's progress bar, log line (every ``log_every`` steps) and metrics rows (every
    ``metrics_every``); on other ranks it only counts. ``cfg`` is the :class:`TrainConfig`."""

    def __init__(
        self, cfg: Any, *, main: bool, start_step: int, total_steps: int, steps_per_epoch: int,
        effective_batch: float, device: torch.device,
    ) -> None:  # fmt: skip
        self.log_every = cfg.log_every if main else 0
        every = cfg.log_every if cfg.metrics_every is None else cfg.metrics_every
        self.every = every if main else 0
        self.total_steps, self.steps_per_epoch, self.batch = total_steps, steps_per_epoch, effective_batch
        self.start_step = self.last_step = start_step
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", dynamic_ncols=True,
                        disable=not (cfg.progress and main))  # fmt: skip
        self.writer = MetricsWriter(cfg.output_dir, start_step, cfg.tensorboard) if self.every > 0 else None
        self.flops = FlopCounter(enabled=self.writer is not None)
        self.peak: float | None = None
        if self.writer is not None:
            peak = cfg.peak_tflops * 1e12 if cfg.peak_tflops else None
            self.peak = peak or measure_peak_flops(str(device), "bfloat16" if cfg.bf16 else "float32")
        self.wait = 0.0  # seconds rank 0 waited for batches since the last row
        self.t0 = self.t_last = time.perf_counter()

    def due(self, step: int) -> bool:
        """A metrics row is written at this step (so its gradient norm is wanted)."""
        return self.every > 0 and step % self.every == 0

    def step(
        self, step: int, loss: float, lr: float, losses: dict[str, float], norm: torch.Tensor | None,
        sources: Callable[[], dict[str, dict[str, float]]],
    ) -> None:  # fmt: skip
        now = time.perf_counter()
        rate = (step - self.start_step) * self.batch / max(now - self.t0, 1e-9)
        self.bar.set_postfix({"loss": f"{loss:.4f}", "lr": f"{lr:.2e}", "samples/s": f"{rate:.1f}"}, refresh=False)
        self.bar.update(1)
        if self.log_every > 0 and step % self.log_every == 0:
            parts = " ".join(f"{k} {v:.4f}" for k, v in sorted(losses.items()))
            logger.info("step %d/%d epoch %.2f loss %.4f (%s) lr %.3e %.1f samples/s", step, self.total_steps,
                        step / self.steps_per_epoch, loss, parts, lr, rate)  # fmt: skip
            if stats := sources():
                logger.info("sources: %s", ", ".join(f"{n} {v['samples']} ({v['epochs']:.2f} ep)" for n, v in stats.items()))  # fmt: skip
        if self.writer is not None and self.due(step):
            self.writer.write(self._row(step, loss, lr, losses, norm, sources(), now))

    def _row(self, step: int, loss: float, lr: float, losses: dict[str, float], norm: torch.Tensor | None,
             sources: dict[str, dict[str, float]], now: float) -> dict[str, Any]:  # fmt: skip
        dt, steps = max(now - self.t_last, 1e-9), max(step - self.last_step, 1)
        row: dict[str, Any] = {"step": step, "epoch": round(step / self.steps_per_epoch, 6), "loss": loss}
        row.update({f"loss/{k}": v for k, v in sorted(losses.items())})
        row.update(lr=lr, grad_norm=None if norm is None else float(norm))
        row.update(samples_per_sec=steps * self.batch / dt, data_wait_fraction=min(self.wait / dt, 1.0),
                   step_time=dt / steps)  # fmt: skip
        flops = self.flops.take()
        if flops > 0 and self.peak:
            row["mfu"] = flops / dt / self.peak
        for name, stats in sources.items():
            row.update({f"source/{name}/{k}": v for k, v in stats.items()})
        self.t_last, self.last_step, self.wait = now, step, 0.0
        return row

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
