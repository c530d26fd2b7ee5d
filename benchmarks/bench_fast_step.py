"""What the fast digits preset's step is made of, and what two savings are worth, side by side.

Two comparisons, each timed in one process in interleaved rounds (the order reversed every other
round), so the machine's load affects both sides alike; only the ratios mean anything:

* **decoder rows**: a training step (forward, backward, ``AdamW.step()``) of the fast preset
  (``mae_vit_tiny_digits_fast.yaml``) on one fixed batch, with its decoder's last block updating
  only the rows the head reads (``queries``, the default) against the same block run over every row
  (a forward pre-hook drops ``queries``); the predictions are the same either way.
* **loading**: one batch of 128 augmented digits from the embedded training set, decoded once and
  kept in memory (``data.image.cache``, the default for the digits) against read and decoded from
  the PNG files each time.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_fast_step.py            # about a minute on 2 cores
    PYTHONPATH=src python benchmarks/bench_fast_step.py --rounds 2 --steps 3 --out /tmp/f.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_time_to_quality as tta  # noqa: E402
from omnimask.runners.common import build_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int, reps: int) -> dict[str, float]:
    """Median seconds per call of each variant, over ``rounds`` alternating rounds of ``reps`` calls
    (the first round is a warm-up and not counted)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for r in range(rounds + 1):
        for name in order if r % 2 == 0 else order[::-1]:
            for _ in range(reps):
                t0 = time.perf_counter()
                variants[name]()
                if r:
                    times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def train_set(recipe: Any, cache: bool) -> Any:
    """The default recipe's augmented digits training set, decoded once or read from the files."""
    sections = recipe.data_configs
    return build_dataset(
        recipe.model_config, {**sections, "image": replace(sections["image"], cache=cache)}, "image", "train"
    )


def decoder_rows(recipe: Any, rounds: int, steps: int) -> dict[str, Any]:
    system = tta.build_system("omnimask-fast", recipe)
    x = next(tta.batches(train_set(recipe, cache=True), system.recipe.train.batch_size, 0))
    opt, _ = tta.optimizer_for(system)
    last = system.model.decoders["image"].blocks[-1]

    def every_row(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, {**kwargs, "queries": None}

    def step() -> None:
        loss = system.loss(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def full() -> None:
        handle = last.register_forward_pre_hook(every_row, with_kwargs=True)
        try:
            step()
        finally:
            handle.remove()

    t = interleaved({"head_rows_only": step, "every_row": full}, rounds, steps)
    return {"step_s": t, "speedup": t["every_row"] / t["head_rows_only"], "batch_size": len(x)}


def loading(recipe: Any, rounds: int, batches: int) -> dict[str, Any]:
    size = recipe.train.batch_size
    streams = {
        name: tta.batches(train_set(recipe, cache), size, 0)
        for name, cache in (("cached", True), ("from_files", False))
    }
    t = interleaved({name: (lambda s=s: next(s)) for name, s in streams.items()}, rounds, batches)
    return {"batch_s": t, "speedup": t["from_files"] / t["cached"], "batch_size": size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6, help="timed rounds per comparison (after one warm-up)")
    ap.add_argument("--steps", type=int, default=10, help="training steps per variant per round")
    ap.add_argument("--batches", type=int, default=10, help="loaded batches per variant per round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/fast_step.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = tta.load_recipe(tta.DEFAULT_CONFIG)
    report = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {args.threads} threads",
        "versions": {"torch": torch.__version__},
        "decoder_rows": decoder_rows(recipe, args.rounds, args.steps),
        "loading": loading(recipe, args.rounds, args.batches),
    }
    rows, load = report["decoder_rows"], report["loading"]
    print(f"fast preset step: {rows['step_s']['head_rows_only'] * 1e3:.0f} ms with the last decoder block on the "
          f"head's rows, {rows['step_s']['every_row'] * 1e3:.0f} ms on every row ({rows['speedup']:.2f}x)")  # fmt: skip
    print(f"128 digits: {load['batch_s']['cached'] * 1e3:.0f} ms from memory, {load['batch_s']['from_files'] * 1e3:.0f} "
          f"ms from the files ({load['speedup']:.2f}x)")  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
