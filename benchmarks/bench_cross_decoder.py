"""Step time of MAE's transformer decoder against CrossMAE's cross-attention decoder.

One step is forward + backward of ``OmniMaskForPreTraining`` on one fixed image batch (75 % random
masking, fixed noise). Every model has the same ViT encoder; only the decoder differs: MAE's
transformer decoder (all N positions), CrossMAE's cross decoder at ``decode_ratio`` 1.0 / 0.5 / 0.25
of the hidden positions, and MAE's decoder with decoder-side masking (``decode_ratio`` 0.5 / 0.25:
visible tokens + the chosen mask tokens, VideoMAE's arrangement). The models are timed in turns,
step by step, so that load from other processes on the machine affects them alike; the result is
the median step time of each and its ratio to MAE's decoder. Absolute times depend on the machine
and its load: only the ratios from one run mean anything. The first (warm-up) step of each model
also counts its floating-point operations (``torch.utils.flop_counter``), which do not depend on the
machine: on a loaded CPU the time ratios stay above the FLOP ratios (norms, copies and
element-wise ops do not shrink as much as the matrix products).

    PYTHONPATH=src python benchmarks/bench_cross_decoder.py                     # ViT-S/16, 224^2, batch 16
    PYTHONPATH=src python benchmarks/bench_cross_decoder.py --image-size 112 --steps 2   # quicker

Writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from omnimask import OmniMaskConfig, OmniMaskForPreTraining

REPO = Path(__file__).resolve().parents[1]
DECODER = {"dim": 512, "depth": 8, "num_heads": 16}
VARIANTS = {
    "mae": {"name": "transformer"},
    "mae-0.5": {"name": "transformer", "decode_ratio": 0.5},
    "mae-0.25": {"name": "transformer", "decode_ratio": 0.25},
    "cross-1.0": {"name": "cross", "decode_ratio": 1.0},
    "cross-0.5": {"name": "cross", "decode_ratio": 0.5},
    "cross-0.25": {"name": "cross", "decode_ratio": 0.25},
}


def build(decoder: dict, args: argparse.Namespace) -> OmniMaskForPreTraining:
    torch.manual_seed(0)
    cfg = OmniMaskConfig(
        encoder={"dim": args.dim, "depth": args.depth, "num_heads": args.heads},
        modalities={
            "image": {
                "tokenizer": {"image_size": args.image_size, "patch_size": args.patch_size},
                "masking": {"name": "random", "ratio": 0.75},
                "decoder": {**DECODER, **decoder},
            }
        },
    )
    return OmniMaskForPreTraining(cfg).train()


def step(model: OmniMaskForPreTraining, x: torch.Tensor, noise: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    out = model({"image": x}, noise={"image": noise}, generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per model (>= 1; the first counts FLOPs)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/cross_decoder.json")
    args = p.parse_args()
    if args.warmup < 1:
        p.error("--warmup must be at least 1 (the first step counts the operations)")
    torch.set_num_threads(args.threads)
    models = {name: build(dec, args) for name, dec in VARIANTS.items()}
    n = (args.image_size // args.patch_size) ** 2
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, generator=gen)
    noise = torch.rand(args.batch_size, n, generator=gen)
    times: dict[str, list[float]] = {name: [] for name in models}
    flops: dict[str, int] = {}
    for name, model in models.items():  # the first warm-up step also counts the operations
        with FlopCounterMode(display=False) as counter:
            step(model, x, noise)
        flops[name] = counter.get_total_flops()
    for i in range(args.warmup + args.steps - 1):
        for name, model in models.items():  # in turns: machine load hits every model alike
            t = step(model, x, noise)
            if i >= args.warmup - 1:
                times[name].append(t)
        print(f"round {i + 2}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items() if v), flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads},
        "torch": torch.__version__,
        "shape": {
            "image_size": args.image_size,
            "patch_size": args.patch_size,
            "tokens": n,
            "mask_ratio": 0.75,
            "encoder": {"dim": args.dim, "depth": args.depth, "heads": args.heads},
            "decoder": DECODER,
            "batch_size": args.batch_size,
        },
        "step": "forward + backward, one fixed batch",
        "steps": args.steps,
        "median_s": median,
        "ratio_to_mae": {k: v / median["mae"] for k, v in median.items()},
        "gflops": {k: v / 1e9 for k, v in flops.items()},
        "flop_ratio_to_mae": {k: v / flops["mae"] for k, v in flops.items()},
        "times_s": times,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in median.items():
        print(f"{k:>10}: {v:.3f} s  ({v / median['mae']:.2f} x MAE decoder; FLOPs {flops[k] / flops['mae']:.2f} x)")


if __name__ == "__main__":
    main()
