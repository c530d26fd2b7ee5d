"""Precision and compile: steps/s of fp32, bf16 autocast, torch.compile and compile + bf16, and the
loss of fp32 against bf16 training from the same seed.

Models: the image recipe's digits MAE (``recipes/configs/image/mae_vit_tiny_digits.yaml``, its batch
128) and a ViT-S/16 MAE (``bench_mae_step``'s ``vit-s16``: 224 px, 12x384 encoder, 8x512 decoder) at
batch 16. A step is forward + backward + ``AdamW.step()`` on one fixed batch with fixed masking
noise. The four variants of one model start from the same weights, run in one process and are timed
in interleaved rounds (order reversed every other round), so load from other processes affects them
alike; only ratios from one run mean anything. Compiling happens in the warm-up round and is reported
as the first call's time.

Quality: the digits MAE trains ``--quality-steps`` steps on the real digits (sklearn's 8x8 scans
upsampled 4x to 32x32 RGB, ImageNet-normalised, as the embedded dataset's images) in fp32 and in
bf16 autocast, from the same seed with the same batches and masks; the mean loss over the last 20
steps is compared.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_precision.py                  # everything, ~20 min on 2 busy cores
    PYTHONPATH=src python benchmarks/bench_precision.py --models digits --steps 2 --quality-steps 20
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mae_step import CONFIGS, available_cores, build_omnimask, cpu_model  # noqa: E402
from omnimask import OmniMaskForPreTraining  # noqa: E402
from omnimask.runners.pretrain import load_recipe  # noqa: E402

DIGITS = ROOT / "recipes" / "configs" / "image" / "mae_vit_tiny_digits.yaml"
VARIANTS = {"fp32": (False, False), "bf16": (True, False), "compile": (False, True), "compile+bf16": (True, True)}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def build(name: str) -> tuple[OmniMaskForPreTraining, int, int]:
    """``(model, batch size, image size)`` of a benchmark model, initialised from seed 0."""
    torch.manual_seed(0)
    if name == "digits":
        recipe = load_recipe(DIGITS)
        return OmniMaskForPreTraining(recipe.model_config), recipe.train.batch_size, 32
    torch.manual_seed(0)
    return build_omnimask(CONFIGS["vit-s16"]), 16, 224


def step_fn(model: nn.Module, call: Callable[..., Any], bf16: bool, batch: dict, noise: dict) -> Callable[[], float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = call(batch, noise=noise).loss
        loss.backward()
        opt.step()
        value = float(loss.detach())
        if value != value:
            raise RuntimeError("non-finite loss")
        return value

    return step


def bench_speed(name: str, steps: int) -> dict[str, Any]:
    base, batch_size, size = build(name)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    batch = {"image": torch.randn(batch_size, 3, size, size, generator=g)}
    n = math.prod(base.omnimask.tokenizers["image"].base_grid)
    noise = {"image": torch.rand(batch_size, n, generator=g)}
    steps_of, first, times = {}, {}, {v: [] for v in VARIANTS}
    for variant, (bf16, compiled) in VARIANTS.items():
        model = build(name)[0]
        model.load_state_dict(state)
        call = torch.compile(model) if compiled else model
        steps_of[variant] = step_fn(model, call, bf16, batch, noise)
        t = time.perf_counter()
        steps_of[variant]()  # warm-up: AdamW state; compiling for the compiled variants
        first[variant] = time.perf_counter() - t
        print(f"{name} {variant}: first step {first[variant]:.1f} s", flush=True)
    order = list(VARIANTS)
    for r in range(steps):
        for variant in order if r % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            steps_of[variant]()
            times[variant].append(time.perf_counter() - t)
    out: dict[str, Any] = {"batch_size": batch_size, "params": sum(p.numel() for p in base.parameters())}
    for variant in VARIANTS:
        med = statistics.median(times[variant])
        out[variant] = {"median_step_s": med, "min_step_s": min(times[variant]), "steps_per_s": 1 / med,
                        "first_step_s": first[variant],
                        "compile_s": max(first[variant] - med, 0.0) if VARIANTS[variant][1] else None,
                        "step_times_s": times[variant]}  # fmt: skip
    fp32 = out["fp32"]["steps_per_s"]
    out["speedup_vs_fp32"] = {v: out[v]["steps_per_s"] / fp32 for v in VARIANTS}
    # The fastest step of each: on a machine shared with other work, the least disturbed estimate.
    out["speedup_vs_fp32_min"] = {v: out["fp32"]["min_step_s"] / out[v]["min_step_s"] for v in VARIANTS}
    print(f"{name}: " + ", ".join(f"{v} {out[v]['steps_per_s']:.3f} steps/s" for v in VARIANTS), flush=True)
    return out


def digits_images() -> Tensor:
    """The 1797 sklearn digits as 32x32 RGB, ImageNet-normalised (N, 3, 32, 32)."""
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().images, dtype=torch.float32) / 16.0  # (N, 8, 8) in [0, 1]
    x = x.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1).expand(-1, 3, -1, -1)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def bench_quality(steps: int) -> dict[str, Any]:
    images = digits_images()
    curves = {}
    for variant in ("fp32", "bf16"):
        model, batch_size, _ = build("digits")
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3 * batch_size / 256, betas=(0.9, 0.95), weight_decay=0.05)
        g = torch.Generator().manual_seed(2)  # the same batches and masks for both
        losses = []
        for _ in range(steps):
            idx = torch.randint(len(images), (batch_size,), generator=g)
            noise = {"image": torch.rand(batch_size, 64, generator=g)}
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
                loss = model({"image": images[idx]}, noise=noise).loss
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        curves[variant] = losses
    tail = min(20, steps)
    mean = {v: statistics.mean(c[-tail:]) for v, c in curves.items()}
    rel = abs(mean["bf16"] - mean["fp32"]) / mean["fp32"]
    print(f"quality after {steps} steps: fp32 {mean['fp32']:.4f}, bf16 {mean['bf16']:.4f} (rel diff {rel:.2e})")
    return {"steps": steps, "tail_steps": tail, "tail_mean_loss": mean, "rel_diff": rel, "losses": curves}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="digits,vit-s16", help="comma-separated: digits, vit-s16")
    p.add_argument("--steps", type=int, default=6, help="timed steps per variant after one warm-up step")
    p.add_argument("--quality-steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the cores available)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "precision.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads or available_cores())
    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "steps": args.steps,
        "method": "one warm-up step (compiles), then interleaved rounds, median step time",
    }
    results: dict[str, Any] = {"meta": meta, "speed": {}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        results["speed"][name] = bench_speed(name, args.steps)
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # each part as soon as it is measured
    if args.quality_steps > 0:
        results["quality_digits"] = bench_quality(args.quality_steps)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
