"""Time omnimask's pure-PyTorch point-cloud ops at Point-MAE's pretraining shapes.

Per batch size (32, 64, 128 clouds of 1024 points) it times, each on its own:

- **FPS**: ``farthest_point_sample(xyz, 64)`` + ``gather_points`` (the 64 group centres);
- **kNN group**: ``group_points(xyz, centers, 32)`` (exact 32-NN per centre, centre-relative);
- **Chamfer L2 fwd+bwd**: ``chamfer_l2`` between predicted and target groups of the
  ``int(0.6 * 64) = 38`` masked groups per cloud (``38 * B`` groups of 32 points), forward and
  ``backward()`` to the prediction;

and their sum (**total**), the point-side work of one Point-MAE pretraining step. Each row reports
the median of ``--repeats`` timed runs after ``--warmup`` untimed ones (``time.perf_counter``).
Clouds are random Gaussian points normalised as ShapeNet-55 is (centroid at the origin, max radius 1).

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_point_ops.py                    # 2 threads, B = 32, 64, 128
    PYTHONPATH=src python benchmarks/bench_point_ops.py --threads 2,1      # one set of rows per thread count
    PYTHONPATH=src python benchmarks/bench_point_ops.py --batch-sizes 8 --repeats 2 --out /tmp/p.json  # smoke

Writes ``--out`` (JSON) and the same path with ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_mae_step import cpu_model  # noqa: E402  (shared with the other benchmarks)
from omnimask.ops.geometry import chamfer_l2, default_chunk_elements, farthest_point_sample, gather_points, group_points

NUM_POINTS, NUM_GROUPS, GROUP_SIZE, MASK_RATIO = 1024, 64, 32, 0.6


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def make_clouds(batch: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randn(batch, NUM_POINTS, 3, generator=g)
    xyz = xyz - xyz.mean(1, keepdim=True)
    xyz = xyz / xyz.norm(dim=-1).amax(1).view(-1, 1, 1)
    return xyz.to(device)


def timed(fn: Callable[[], Any], warmup: int, repeats: int, device: torch.device) -> list[float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def bench_batch(batch: int, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    xyz = make_clouds(batch, device)
    masked = int(MASK_RATIO * NUM_GROUPS)

    def fps() -> torch.Tensor:
        return gather_points(xyz, farthest_point_sample(xyz, NUM_GROUPS, chunk_elements=args.chunk_elements))

    centers = fps()

    def knn() -> torch.Tensor:
        return group_points(xyz, centers, GROUP_SIZE, chunk_elements=args.chunk_elements)[0]

    neighborhood = knn()
    g = torch.Generator().manual_seed(1)
    order = torch.rand(batch, NUM_GROUPS, generator=g).argsort(1)[:, :masked].to(device)
    target = torch.gather(neighborhood, 1, order[:, :, None, None].expand(-1, -1, GROUP_SIZE, 3)).reshape(
        -1, GROUP_SIZE, 3
    )
    pred0 = target + 0.05 * torch.randn(target.shape, generator=g).to(device)

    def chamfer() -> None:
        pred = pred0.clone().requires_grad_()
        chamfer_l2(pred, target, chunk_elements=args.chunk_elements).backward()

    row: dict[str, Any] = {
        "batch": batch,
        "points": NUM_POINTS,
        "groups": NUM_GROUPS,
        "group_size": GROUP_SIZE,
        "chamfer_groups": int(target.shape[0]),
        "threads": torch.get_num_threads(),
    }
    for name, fn in (("fps", fps), ("knn_group", knn), ("chamfer_l2_fwd_bwd", chamfer)):
        times = timed(fn, args.warmup, args.repeats, device)
        row[f"{name}_ms"] = statistics.median(times) * 1e3
        row[f"{name}_times_ms"] = [t * 1e3 for t in times]
    row["total_ms"] = row["fps_ms"] + row["knn_group_ms"] + row["chamfer_l2_fwd_bwd_ms"]
    return row


def write_markdown(path: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    lines = [
        f"Point ops at Point-MAE shapes ({NUM_POINTS} points, {NUM_GROUPS} groups x {GROUP_SIZE}, Chamfer over "
        f"int({MASK_RATIO} * {NUM_GROUPS}) masked groups per cloud), {meta['device']} ({meta['cpu']}), torch {meta['torch']}; "
        f"chunk_elements {meta['chunk_elements']}; median of {meta['repeats']} runs after {meta['warmup']} warm-up; 1-min load average "
        f"{meta['loadavg_start']} at the start, {meta['loadavg_end']} at the end.",
        "",
        "| batch | threads | FPS (ms) | kNN group (ms) | Chamfer L2 fwd+bwd (ms) | Chamfer groups | total (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']} | {r['threads']} | {r['fps_ms']:.1f} | {r['knn_group_ms']:.1f} | "
            f"{r['chamfer_l2_fwd_bwd_ms']:.1f} | {r['chamfer_groups']} | {r['total_ms']:.1f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-sizes", default="32,64,128", help="comma-separated clouds per batch")
    p.add_argument("--threads", default="2", help="comma-separated torch thread counts; one set of rows each")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (the median is reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--chunk-elements",
        type=int,
        default=None,
        help="the ops' chunk_elements (default: geometry.default_chunk_elements, 2**15 on CPU)",
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/point_ops.json"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    meta: dict[str, Any] = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "dtype": "float32",
        "chunk_elements": args.chunk_elements or default_chunk_elements(device),
        "loadavg_start": loadavg(),
    }
    rows = []
    for nt in threads:
        torch.set_num_threads(nt)
        for b in batches:
            row = bench_batch(b, args, device)
            rows.append(row)
            print(
                f"B={b:4d} threads={nt}: fps {row['fps_ms']:8.1f} ms  knn {row['knn_group_ms']:8.1f} ms  "
                f"chamfer {row['chamfer_l2_fwd_bwd_ms']:8.1f} ms  total {row['total_ms']:8.1f} ms",
                flush=True,
            )
    meta["loadavg_end"] = loadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    write_markdown(args.out.with_suffix(".md"), meta, rows)
    print()
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
