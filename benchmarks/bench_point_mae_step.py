"""Point-MAE pretraining step: omnimask vs a Point-MAE-architecture peer, same weights, clouds and masks.

Point-MAE itself needs CUDA extensions (pointnet2_ops, knn_cuda, chamfer_dist) that do not build
on a CPU, so the peer is ``tests/point_mae_reference.py``: Point-MAE's modules as its code builds
them (kernel-1 ``Conv1d`` mini-PointNet on ``(B*G, C, k)``, timm-style blocks, ``block(x + pos)``,
boolean-mask gathers, ``Conv1d`` head). Its grouping is swapped for omnimask's FPS + kNN, standing
in for the CUDA kernels, so the two differ only in the model code. The weights are copied with the
``point-mae`` converter, and the benchmark checks that both give the same loss before timing.

Per batch size it reports clouds/s of a full step (grouping, forward, Chamfer L2, backward,
AdamW), interleaved rounds, median per step; and the share of omnimask's step spent in grouping.

    PYTHONPATH=src:tests python benchmarks/bench_point_mae_step.py                 # B = 32, 2 threads
    PYTHONPATH=src:tests python benchmarks/bench_point_mae_step.py --batch-sizes 32,64 --threads 1
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import point_mae_reference as ref  # noqa: E402
from bench_mae_step import cpu_model  # noqa: E402
from omnimask import OmniMaskForPreTraining  # noqa: E402
from omnimask.convert.point_mae import point_mae_state_to_omnimask  # noqa: E402
from omnimask.ops.geometry import farthest_point_sample, gather_points, group_points  # noqa: E402

DIM, DEPTH, HEADS, DEC_DEPTH, GROUPS, GROUP_SIZE, POINTS = 384, 12, 6, 4, 64, 32, 1024


class FastGroup(torch.nn.Module):
    """The peer's grouping through omnimask's ops (the CUDA kernels' stand-in)."""

    def forward(self, xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = farthest_point_sample(xyz, GROUPS, min_norm_sq=1e-3, ties="pointnet2")
        centres = gather_points(xyz, idx)
        return group_points(xyz, centres, GROUP_SIZE)[0], centres


def build_pair() -> tuple[torch.nn.Module, OmniMaskForPreTraining]:
    torch.manual_seed(0)
    peer = ref.PointMAE(DIM, DEPTH, HEADS, DEC_DEPTH, GROUPS, GROUP_SIZE)
    peer.group_divider = FastGroup()
    config, state, _ = point_mae_state_to_omnimask(
        peer.state_dict(), num_points=POINTS, num_groups=GROUPS, drop_path=0.0
    )
    ours = OmniMaskForPreTraining(config)
    ours.load_state_dict(state)
    return peer, ours


def clouds(batch: int, seed: int) -> torch.Tensor:
    x = torch.randn(batch, POINTS, 3, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=-1, keepdim=True).amax(1, keepdim=True)


def masks(batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(batch, GROUPS, dtype=torch.bool)
    for b in range(batch):
        m[b, torch.randperm(GROUPS, generator=g)[: int(0.6 * GROUPS)]] = True
    return m


def run(batch: int, rounds: int) -> dict:
    peer, ours = build_pair()
    x, m = clouds(batch, 1), masks(batch, 2)
    with torch.no_grad():
        a, b = float(peer(x, m)[0]), float(ours({"points": x}, masks={"points": m}).loss)
    assert abs(a - b) < 1e-4 * max(1.0, a), f"losses differ: peer {a} vs omnimask {b}"
    steps = {
        "omnimask": (ours, lambda: ours({"points": x}, masks={"points": m}).loss),
        "peer": (peer, lambda: peer(x, m)[0]),
    }
    opts = {k: torch.optim.AdamW(model.parameters(), lr=1e-4) for k, (model, _) in steps.items()}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(rounds + 1):  # round 0 warms up
        for k, (_, loss_fn) in steps.items():
            t = time.perf_counter()
            loss = loss_fn()
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
            if r:
                times[k].append(time.perf_counter() - t)
    tok = ours.omnimask.tokenizers["points"]
    group_t = []
    for _ in range(3):
        t = time.perf_counter()
        tok.group(x)
        group_t.append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "batch": batch,
        "omnimask_clouds_per_s": round(batch / med["omnimask"], 2),
        "peer_clouds_per_s": round(batch / med["peer"], 2),
        "ratio": round(med["peer"] / med["omnimask"], 3),
        "grouping_ms": round(1000 * statistics.median(group_t), 1),
        "grouping_share": round(statistics.median(group_t) / med["omnimask"], 3),
        "step_ms": {k: round(1000 * v, 1) for k, v in med.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", default="32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "point_mae_step.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    start = os.getloadavg()[0]
    rows = [run(int(b), args.rounds) for b in args.batch_sizes.split(",")]
    result = {
        "date": _dt.date.today().isoformat(),
        "device": cpu_model(),
        "torch": torch.__version__,
        "threads": args.threads,
        "rounds": args.rounds,
        "load_avg_start": round(start, 2),
        "load_avg_end": round(os.getloadavg()[0], 2),
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    lines = [
        f"Point-MAE step (384/12/6 encoder, 4-block decoder, 1024 points, 64 x 32 groups, mask 0.6, fp32, AdamW), "
        f"{result['device']}, torch {result['torch']}, {args.threads} thread(s), median of {args.rounds} interleaved rounds; "
        f"load average {result['load_avg_start']} -> {result['load_avg_end']}.",
        "",
        "| batch | omnimask clouds/s | peer clouds/s | ratio (omnimask / peer speed) | grouping ms (share of step) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']} | {r['omnimask_clouds_per_s']} | {r['peer_clouds_per_s']} | {r['ratio']} | "
            f"{r['grouping_ms']} ({100 * r['grouping_share']:.0f} %) |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
