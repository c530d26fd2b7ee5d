"""Equal steps, different decoders: what each decoder does to the encoder's held-out quality.

The time-to-quality series (``bench_time_to_quality.py``) mixes two things: how fast a system steps
and what a step is worth. This separates the second: every variant trains the digits encoder for a
fixed number of optimiser steps (its lr warmed up and annealed by a cosine over those steps, as
a run of that length would be) from the same seed, then the frozen encoder is evaluated with the
time-to-quality protocol (kNN k = 20, T = 0.07, and the logistic probe on the 1438 training digits,
both on the 359 held-out ones). No clock is involved, so variants can run side by side on a busy
machine (``--threads 1`` in parallel processes, one JSON line per run, ``--summarise`` averages them).

Variants (``--variants``; ``NAME`` from the table below): the default and CrossMAE digits recipes
with their decoder, init or lr changed by recipe overrides, and ``transformers-mae-init`` from the
time-to-quality bench.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/exp_decoder_steps.py --seed 1 --variants default,cross-dr1 >> runs.jsonl
    PYTHONPATH=src python benchmarks/exp_decoder_steps.py --summarise runs.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_time_to_quality as tta  # noqa: E402
from omnimask.runners.pretrain import load_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEC = "model.modalities.image.decoder."
# The fast preset before issue 14's third series: CrossMAE decoder 128x2 at decode_ratio 0.25.
CROSSMAE_CONFIG = ROOT / "recipes/configs/image/mae_vit_tiny_digits_fast_crossmae.yaml"
# name: (base recipe or the transformers system, recipe overrides, optimiser steps)
VARIANTS: dict[str, tuple[str, list[str], int]] = {
    "default": ("default", [], 390),
    "default-depth1": ("default", [DEC + "depth=1"], 390),
    "default-dim64": ("default", [DEC + "dim=64"], 390),
    "default-dr0.5": ("default", [DEC + "decode_ratio=0.5"], 390),
    "default-dr0.25": ("default", [DEC + "decode_ratio=0.25"], 390),
    "default-depth1-dr0.25": ("default", [DEC + "decode_ratio=0.25", DEC + "depth=1"], 390),
    "default-split": ("default", ["model.encoder.qkv_init=split"], 390),
    "default-split-eps12": ("default", ["model.encoder.qkv_init=split", "model.encoder.norm_eps=1.0e-12"], 390),
    "cross-dr1": ("crossmae", [DEC + "decode_ratio=1.0"], 390),
    "crossmae": ("crossmae", [], 330),
    "crossmae-lr2x": ("crossmae", ["optim.base_lr=2.0e-3"], 330),
    "crossmae-dr0.5": ("crossmae", [DEC + "decode_ratio=0.5"], 280),
    "crossmae-mix4": ("crossmae", [DEC + "layer_mix=4"], 330),
    "crossmae-split-eps12": ("crossmae", ["model.encoder.norm_eps=1.0e-12", "model.encoder.qkv_init=split"], 330),
    "transformers-mae-init": ("transformers", [], 390),
    "transformers-mae-init-lr2x": ("transformers", ["optim.base_lr=2.0e-3"], 390),
}
BASES = {"default": tta.DEFAULT_CONFIG, "crossmae": CROSSMAE_CONFIG}


def build(name: str) -> tuple[tta.System, int]:
    base, overrides, steps = VARIANTS[name]
    if base == "transformers":  # the bench's transformers-mae-init, with the overridden optimiser
        recipe = load_recipe(tta.DEFAULT_CONFIG, overrides)
        return tta.hf_system(name, recipe, small_decoder=True, mae_init=True), steps
    return tta.omnimask_system(name, BASES[base], overrides), steps


def run(name: str, seed: int, digits: tta.Digits, steps: int | None = None) -> dict[str, Any]:
    """Train variant ``name`` for its steps from ``seed`` and evaluate the frozen encoder."""
    torch.manual_seed(seed)
    system, default_steps = build(name)
    steps = steps or default_steps
    opt, lr = tta.optimizer_for(system)
    train, optim = system.recipe.train, system.recipe.optim
    warmup = optim.warmup_epochs / max(train.epochs, 1)
    stream = tta.batches(digits.train_set, train.batch_size, seed)
    t0 = time.perf_counter()
    for i in range(steps):
        x = next(stream)
        for group in opt.param_groups:
            group["lr"] = lr * tta.lr_factor(i, steps, warmup)
        loss = system.loss(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    result = tta.evaluate(system, digits.data)
    return {"name": name, "seed": seed, "steps": steps, "loss": float(loss.detach()), "seconds": seconds,
            "notes": system.notes, **result}  # fmt: skip


def summarise(paths: list[str]) -> dict[str, Any]:
    """Mean and sample std of kNN and probe per variant over the JSON lines in ``paths``."""
    rows = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines() if line.startswith("{")]
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["name"] for r in rows):
        mine = [r for r in rows if r["name"] == name]
        out[name] = {"steps": mine[0]["steps"], "seeds": [r["seed"] for r in mine], "runs": mine}
        for m in ("knn", "probe", "loss"):
            values = [r[m] for r in mine]
            out[name][m] = statistics.fmean(values)
            out[name][f"{m}_std"] = statistics.stdev(values) if len(values) > 1 else None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="default,cross-dr1,crossmae,transformers-mae-init")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None, help="override every variant's step count")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--summarise", nargs="+", metavar="JSONL", help="train nothing: average these runs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/decoder_steps.json"))
    args = ap.parse_args(argv)
    if args.summarise:
        summary = summarise(args.summarise)
        for name, s in summary.items():
            print(f"{name:<28} {s['steps']:>4} steps  kNN {s['knn']:.1f}  probe {s['probe']:.1f}  (seeds {s['seeds']})")
        Path(args.out).write_text(json.dumps(summary, indent=2))
        print(f"wrote {args.out}")
        return 0
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    digits = tta.load_digits()
    for name in names:
        print(json.dumps(run(name, args.seed, digits, args.steps)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
