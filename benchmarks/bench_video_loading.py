"""Video loading throughput: omnimask.data.VideoDataset through a torch DataLoader.

Two workloads:

* ``embedded``: the embedded dataset's video part (16 frames of 32x32 per file), read as 16 frames
  (stride 1) at 32x32;
* ``large``: videos this script generates with PyAV (default 320x240, 10 s at 25 fps, H.264 with
  x264's defaults, i.e. few keyframes: 2 to 4 per file; a panning textured
  background, moving shapes and grain, about 340 kbit/s, so compression is realistic), read
  as VideoMAE pre-training does: 16 frames with stride 4 (dense sampling), MultiScaleCrop to
  224x224, with ``repeats=1`` and ``repeats=4`` (one decode, four crops).

Every configuration runs with 0 DataLoader workers (main process, reference) and with 2 workers.
The loader wraps the dataset in ``SeededDataset`` with a shuffling ``ResumableSampler``, as the
trainer does. The first batch (worker start-up) and the batches the workers can have prefetched
meanwhile (2 per worker) are not timed; the timed batches arrive at the steady rate.
Reported: clips/s (training clips, repeats included) and decodes/s (one per dataset item).

    PYTHONPATH=src python benchmarks/bench_video_loading.py            # ~2 min on 2 cores (1 min cached)
    PYTHONPATH=src python benchmarks/bench_video_loading.py --quick    # smoke test
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from omnimask.data import collate_repeated, ensure_embedded_dataset
from omnimask.modalities.image import IMAGENET_MEAN, IMAGENET_STD
from omnimask.modalities.video import MultiScaleCrop, VideoDataset, dense_indices, read_video_list
from omnimask.training import ResumableSampler, SeededDataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from bench_mae_step import cpu_model  # noqa: E402  (shared with the other benchmarks)


def _smooth_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour field (a sum of random plane waves), (h, w, 3) float in 0..255."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((h, w, 3), np.float32)
    for _ in range(6):
        fy, fx = rng.uniform(-0.08, 0.08, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(10, 30, size=3)
        out += np.sin(fy * y + fx * x + phase)[..., None] * amp
    return np.clip(out + 128.0, 0, 255)


def write_large_video(
    path: Path, index: int, width: int, height: int, seconds: float, fps: int, codec: str, grain: float = 8.0
) -> None:
    """Write one synthetic video: panning texture + 3 moving rectangles + per-frame grain (std ``grain``)."""
    import av

    rng = np.random.default_rng([2024, index])
    n = int(round(seconds * fps))
    pan = rng.uniform(-1.5, 1.5, size=2)  # px per frame
    margin = int(np.ceil(np.abs(pan).max() * n)) + 1
    tex = _smooth_texture(rng, height + margin, width + margin)
    oy = 0 if pan[0] >= 0 else margin
    ox = 0 if pan[1] >= 0 else margin
    shapes = [(rng.uniform(0, height), rng.uniform(0, width), rng.uniform(-4, 4), rng.uniform(-4, 4),
               int(rng.integers(16, 48)), rng.uniform(0, 255, size=3)) for _ in range(3)]  # fmt: skip
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.thread_count = 1
        if codec == "mpeg4":
            s.options = {"flags": "+qscale", "global_quality": str(4 * 118)}
        for t in range(n):
            y0, x0 = int(oy + pan[0] * t), int(ox + pan[1] * t)
            frame = tex[y0 : y0 + height, x0 : x0 + width].copy()
            for sy, sx, vy, vx, size, colour in shapes:
                cy, cx = int((sy + vy * t) % height), int((sx + vx * t) % width)
                frame[cy : cy + size, cx : cx + size] = colour
            frame += rng.normal(0, grain, size=frame.shape).astype(np.float32)
            vf = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, fps)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def large_videos(args: argparse.Namespace, cache: Path) -> tuple[list[tuple[str, int]], float | None, int]:
    """Generate (or reuse) the large videos; returns (items, generation seconds or None if all cached, bytes)."""
    tag = f"{args.width}x{args.height}_{args.seconds:g}s_{args.fps}fps_{args.codec}"
    folder = cache / f"large_{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    items, t0, made = [], time.perf_counter(), 0
    for i in range(args.num_videos):
        path = folder / f"{i:03d}.mp4"
        if not path.exists() or path.stat().st_size == 0:
            tmp = path.with_suffix(".tmp.mp4")
            write_large_video(tmp, i, args.width, args.height, args.seconds, args.fps, args.codec)
            os.replace(tmp, path)
            made += 1
        items.append((str(path), i % 10))
    seconds = time.perf_counter() - t0
    if made:
        print(f"generated {made} videos in {seconds:.1f} s under {folder}", flush=True)
    return items, (seconds if made else None), sum(Path(p).stat().st_size for p, _ in items)


def _warmup(workers: int) -> int:
    """Untimed batches: the first one (worker start-up) plus what the workers can have prefetched
    meanwhile (``prefetch_factor`` 2 per worker); after them, batches arrive at the steady rate."""
    return 1 + 2 * workers


def time_loader(ds: VideoDataset, workers: int, batch_size: int, batches: int, seed: int = 0) -> dict:
    sampler = ResumableSampler(len(ds), seed=seed, shuffle=True, drop_last=False)
    loader = DataLoader(SeededDataset(ds), batch_size=batch_size, sampler=sampler, num_workers=workers,
                        collate_fn=collate_repeated, persistent_workers=False)  # fmt: skip
    assert len(sampler) >= (_warmup(workers) + batches) * batch_size, "one epoch must cover every batch"
    it = iter(loader)
    first = next(it)  # includes worker start-up: not timed
    for _ in range(_warmup(workers) - 1):
        next(it)  # batches the workers prefetched during start-up: not timed either
    clips = items = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
        clips += batch["video"].shape[0]
        items += batch["video"].shape[0] // ds.repeats
    dt = time.perf_counter() - t0
    del it, loader
    return {
        "clip_shape": list(first["video"].shape[1:]),
        "clips": clips,
        "decodes": items,
        "seconds": round(dt, 3),
        "clips_per_s": round(clips / dt, 2),
        "decodes_per_s": round(items / dt, 2),
    }


def stage_times(items: list[tuple[str, int]], n: int = 12) -> dict:
    """Main-process milliseconds per clip for decoding (open + 16 frames, stride 4) and for one
    MultiScaleCrop to 224 with normalisation, to see where the loader's time goes."""
    import decord

    crop, rng = MultiScaleCrop(224), np.random.default_rng(0)
    decode = transform = 0.0
    for k in range(n):
        t0 = time.perf_counter()
        vr = decord.VideoReader(items[k % len(items)][0], num_threads=1, ctx=decord.cpu(0))
        frames = vr.get_batch(dense_indices(len(vr), 16, 4, rng).tolist()).asnumpy()
        t1 = time.perf_counter()
        crop.apply(frames, crop.sample(*frames.shape[1:3], rng), IMAGENET_MEAN, IMAGENET_STD)
        transform += time.perf_counter() - t1
        decode += t1 - t0
    return {"decode_ms": round(decode / n * 1e3, 1), "crop_normalise_ms": round(transform / n * 1e3, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "omnimask_bench_video"),
                   help="where the embedded data and the generated videos are kept between runs")  # fmt: skip
    p.add_argument("--num-videos", type=int, default=24)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--codec", default="libx264", help="PyAV encoder for the large videos (libx264, mpeg4, ...)")
    p.add_argument("--batch-size", type=int, default=8, help="dataset items per batch (x repeats clips)")
    p.add_argument("--batches", type=int, default=12, help="timed batches per large-video row")
    p.add_argument("--embedded-batches", type=int, default=40, help="timed batches per embedded row")
    p.add_argument("--workers", default="0,2", help="comma-separated DataLoader worker counts")
    p.add_argument("--repeats", default="1,4", help="comma-separated repeats for the large videos")
    p.add_argument("--threads", type=int, default=1, help="torch threads in the main process")
    p.add_argument("--quick", action="store_true", help="small and short: a smoke test")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/video_loading.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.num_videos, args.seconds, args.batches, args.embedded_batches = 6, 4.0, 4, 10
    torch.set_num_threads(args.threads)
    workers = [int(w) for w in args.workers.split(",")]
    repeats = [int(r) for r in args.repeats.split(",")]
    cache = Path(args.cache_dir)

    cached = (cache / "embedded" / "v1" / "video" / "manifest.json").is_file()
    t0 = time.perf_counter()
    emb_root = ensure_embedded_dataset(cache / "embedded", parts=("video",), progress=False)
    emb_build = None if cached else round(time.perf_counter() - t0, 2)  # None: reused from the cache
    emb_items = read_video_list(emb_root / "v1" / "video" / "train.csv")
    items, gen_s, nbytes = large_videos(args, cache)

    load_start = os.getloadavg()
    stages = stage_times(items)
    print(f"main process, per clip: decode {stages['decode_ms']} ms, crop+normalise {stages['crop_normalise_ms']} ms")
    rows = []
    configs = [("embedded", emb_items, dict(num_frames=16, stride=1, size=32), 1, args.embedded_batches)]
    configs += [("large", items, dict(num_frames=16, stride=4, size=224), r, args.batches) for r in repeats]
    for name, its, kw, r, nb in configs:
        # One epoch must cover every timed batch: a new epoch would restart the workers and time
        # their start-up. Small file sets are listed several times (the crops still differ).
        its = its * -(-(nb + _warmup(max(workers))) * args.batch_size // len(its))
        for w in workers:
            ds = VideoDataset(its, repeats=r, **kw)
            res = time_loader(ds, w, args.batch_size, nb)
            row = {"data": name, "workers": w, "repeats": r, "batch_clips": args.batch_size * r, **res}
            rows.append(row)
            print(f"{name:9s} workers={w} repeats={r}: {res['clips_per_s']:8.1f} clips/s "
                  f"{res['decodes_per_s']:8.1f} decodes/s  clip {res['clip_shape']}", flush=True)  # fmt: skip

    import av
    import decord

    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "decord": decord.__version__,
        "av": av.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads_main": args.threads,
        "batch_size": args.batch_size,
        # Other processes' load: on a shared machine, worker scaling is limited by the free cores.
        "load_avg_1min_start": round(load_start[0], 2),
        "load_avg_1min_end": round(os.getloadavg()[0], 2),
        "large_stage_ms": stages,
        "quick": args.quick,
        "embedded_build_s": emb_build,
        "embedded_clips": len(emb_items),
        "large": {
            "num_videos": args.num_videos,
            "width": args.width,
            "height": args.height,
            "seconds": args.seconds,
            "fps": args.fps,
            "codec": args.codec,
            "total_mb": round(nbytes / 2**20, 2),
            "kbit_per_s": round(nbytes * 8 / 1000 / (args.num_videos * args.seconds), 1),
            "generation_s": None if gen_s is None else round(gen_s, 2),
        },  # fmt: skip
    }
    header = "| data | clip (C,T,H,W) | workers | repeats | clips/s | decodes/s |\n|---|---|---|---|---|---|\n"
    table = header + "".join(
        f"| {r['data']} | {tuple(r['clip_shape'])} | {r['workers']} | {r['repeats']} | "
        f"{r['clips_per_s']:.1f} | {r['decodes_per_s']:.1f} |\n"
        for r in rows
    )
    lg = meta["large"]
    notes = (
        f"\n{meta['date']}, {meta['cpu']} ({meta['cpu_count']} cores), torch {meta['torch']}, decord "
        f"{meta['decord']}, PyAV {meta['av']}; batch {args.batch_size} items; main-process torch threads "
        f"{args.threads}.\nembedded: {len(emb_items)} train clips of 16x32x32 ("
        + (f"part built in {emb_build:.1f} s" if emb_build is not None else "part reused from the cache")
        + f"). large: {lg['num_videos']} videos {lg['width']}x{lg['height']}, "
        f"{lg['seconds']:g} s at {lg['fps']} fps, {lg['codec']}, {lg['total_mb']} MiB (~{lg['kbit_per_s']:.0f} kbit/s); dense 16 frames stride 4, "
        f"MultiScaleCrop to 224.\nlarge, main process, per clip: decode {stages['decode_ms']} ms, one crop + "
        f"normalise {stages['crop_normalise_ms']} ms. 1-min load average {meta['load_avg_1min_start']} at the start, "
        f"{meta['load_avg_1min_end']} at the end (other processes on the machine).\n"
    )
    print("\n" + table + notes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text("# Video loading throughput\n\n" + table + notes, encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
