#!/usr/bin/env python
"""What 2 processes cost against 1 on this machine (issue 15): DDP and FSDP2 step times, measured
side by side through the real Trainer on the same model and the same global batch.

Setups (all CPU; the model is the image MAE at a small ViT size, in-memory random images):

* ``1 process, 2 threads``: global batch in one process (the machine's two cores in one process);
* ``1 process, 1 thread, half batch``: what each of the two processes computes alone: the
  floor against which the 2-process overhead (communication, synchronisation) is counted;
* ``2 x DDP``, ``2 x FSDP2``: torchrun, gloo, 1 thread per process, half the batch each.

Each setup runs ``--rounds`` times, alternating; a run's step time is the median over its timed
steps (after ``--warmup``), a setup's is the median over rounds. Writes
``benchmarks/results/distributed_cpu.json`` and prints a markdown table.

    python benchmarks/bench_distributed.py [--steps 12] [--warmup 3] [--rounds 2] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "recipes/configs/image/mae_vit_test.yaml"
# A small ViT (64x64 images, 8x8 patches: 64 tokens) so one step is long enough to time and short
# enough for a CPU: encoder 192 wide x 6 blocks, decoder 128 x 2.
MODEL = [
    "model.encoder.dim=192", "model.encoder.depth=6", "model.encoder.num_heads=3",
    "model.modalities.image.tokenizer.image_size=64",
    "model.modalities.image.decoder.dim=128", "model.modalities.image.decoder.depth=2",
    "model.modalities.image.decoder.num_heads=4",
]  # fmt: skip


def child(args: argparse.Namespace) -> None:
    """One training run; rank 0 writes its step times (seconds) to ``args.out``."""
    import torch

    from omnimask import OmniMaskForPreTraining
    from omnimask.runners.pretrain import load_recipe
    from omnimask.training import OptimConfig, TrainConfig, Trainer, cleanup, is_main

    torch.set_num_threads(args.threads)

    class Images(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.x = torch.randn(512, 3, 64, 64, generator=torch.Generator().manual_seed(0))

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> dict:
            return {"image": self.x[i]}

    stamps: list[float] = []
    torch.manual_seed(0)
    model = OmniMaskForPreTraining(load_recipe(CONFIG, MODEL).model_config)
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(epochs=1, max_steps=args.warmup + args.steps, batch_size=args.batch, num_workers=0,
                          output_dir=out, checkpoint_every=0, progress=False, tensorboard=False, metrics_every=0,
                          strategy=args.strategy)  # fmt: skip
        trainer = Trainer(model, Images(), cfg, OptimConfig(base_lr=1e-4, warmup_epochs=0),
                          hooks=[lambda *_: stamps.append(time.perf_counter())])  # fmt: skip
        trainer.fit()
    if is_main():
        times = [b - a for a, b in zip(stamps, stamps[1:])][args.warmup - 1 :]
        Path(args.out).write_text(json.dumps(times))
    cleanup()


def _launch(strategy: str, processes: int, threads: int, batch: int, args: argparse.Namespace) -> float:
    """Median step time (ms) of one run of a setup."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    script = [str(Path(__file__).resolve()), "--child", "--out", out, "--strategy", strategy, "--threads",
              str(threads), "--batch", str(batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, *script]
    if processes > 1:
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
               "--master_addr=127.0.0.1", f"--master_port={port}", *script]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{strategy} x{processes} failed:\n{proc.stderr[-3000:]}")
    times = json.loads(Path(out).read_text())
    os.unlink(out)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch", type=int, default=32, help="global batch (each of 2 processes takes half)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--strategy", default="ddp", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    half = args.batch // 2
    setups = {
        f"1 process, 2 threads, batch {args.batch}": ("ddp", 1, 2, args.batch),
        f"1 process, 1 thread, batch {half}": ("ddp", 1, 1, half),
        f"2 x DDP, 1 thread each, batch {half} each": ("ddp", 2, 1, half),
        f"2 x FSDP2, 1 thread each, batch {half} each": ("fsdp", 2, 1, half),
    }
    got: dict[str, list[float]] = {name: [] for name in setups}
    for r in range(args.rounds):
        for name, setup in setups.items():
            got[name].append(_launch(*setup, args))
            print(f"round {r + 1}: {name}: {got[name][-1]:.1f} ms/step", flush=True)
    med = {name: statistics.median(v) for name, v in got.items()}
    one, floor = list(med.values())[:2]
    rows = []
    for name, ms in med.items():
        rows.append({"setup": name, "ms_per_step": round(ms, 1), "rounds_ms": [round(x, 1) for x in got[name]],
                     "vs_1_process_2_threads": round(ms / one, 3), "vs_per_process_compute": round(ms / floor, 3)})  # fmt: skip
    result = {"model": "image MAE, 64x64 / patch 8, encoder 192x6, decoder 128x2", "global_batch": args.batch,
              "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "cpu_count": os.cpu_count(),
              "rows": rows}  # fmt: skip
    out = ROOT / "benchmarks/results/distributed_cpu.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| setup | ms/step | vs 1 process (2 threads) | vs one process's compute alone |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['setup']} | {r['ms_per_step']} | {r['vs_1_process_2_threads']:.2f}x | "
              f"{r['vs_per_process_compute']:.2f}x |")  # fmt: skip
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
