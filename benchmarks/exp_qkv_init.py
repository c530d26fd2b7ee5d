"""Features at initialisation: how the q/k/v init changes the untrained digits encoder.

omnimask's default (``encoder.qkv_init: fused``, MAE's code: one xavier-uniform over the fused
(3 dim, dim) q/k/v matrix), ``qkv_init: split`` (q, k and v as three (dim, dim) xavier blocks, as
JAX ViT) and ``transformers-mae-init`` (transformers' ViTMAE with MAE's xavier init on its separate
q, k, v layers, from ``bench_time_to_quality.py``), each built under seeds 0..N-1 and evaluated
untrained with the time-to-quality protocol (kNN k = 20, T = 0.07, and the logistic probe, on the
359 held-out digits against the 1438 training digits). No training: this isolates the init.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/exp_qkv_init.py --seeds 5

Writes ``benchmarks/results/qkv_init.json`` (per seed and the means).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_time_to_quality as tta  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "omnimask (qkv_init: fused)": ("omnimask", "fused"),
    "omnimask (qkv_init: split)": ("omnimask", "split"),
    "transformers-mae-init": ("transformers-mae-init", None),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/qkv_init.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    digits = tta.load_digits()
    per_seed: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for seed in range(args.seeds):
        for name, (system, qkv_init) in VARIANTS.items():
            torch.manual_seed(seed)
            if qkv_init is None:
                built = tta.build_system(system, digits.recipe)
            else:
                built = tta.omnimask_system(name, tta.DEFAULT_CONFIG, [f"model.encoder.qkv_init={qkv_init}"])
            result = tta.evaluate(built, digits.data)
            per_seed[name].append(result)
            print(f"seed {seed}  {name:<28} kNN {result['knn']:.1f}  probe {result['probe']:.1f}", flush=True)
    means = {
        name: {m: statistics.fmean(r[m] for r in rows) for m in ("knn", "probe")} for name, rows in per_seed.items()
    }
    for name, m in means.items():
        print(f"mean  {name:<28} kNN {m['knn']:.1f}  probe {m['probe']:.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"seeds": args.seeds, "means": means, "per_seed": per_seed}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
