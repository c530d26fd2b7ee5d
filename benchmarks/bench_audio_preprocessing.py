"""Audio preprocessing throughput: omnimask.data.AudioDataset through a torch DataLoader.

Each item is AudioMAE's evaluation front end on one 10 s clip: decode (soundfile), downmix, resample
to 16 kHz (torchaudio), 128-bin Kaldi fbank, pad to 1024 frames, normalise; the output is
``(1, 1024, 128)`` float32. The clips are 16-bit PCM mono WAV files the script writes itself
(tones, chirps and noise), at 16 kHz (no resampling) and at 44.1 kHz (resampled to 16 kHz).

Every rate runs with 0 DataLoader workers (main process) and with 2 workers. The loader wraps the
dataset in ``SeededDataset`` with a shuffling ``ResumableSampler``, as the trainer does. The first
batch (worker start-up) and the batches the workers can have prefetched meanwhile (2 per worker)
are not timed. It also times each stage in the main process (milliseconds per clip, median over
the clips) with 1 and with 2 torch threads, to show what the intra-op threads cost on a busy machine.

    PYTHONPATH=src python benchmarks/bench_audio_preprocessing.py           # ~1 min on 2 cores
    PYTHONPATH=src python benchmarks/bench_audio_preprocessing.py --quick   # smoke test
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from omnimask.modalities.audio import (
    AudioDataset,
    AudioFeatureConfig,
    downmix,
    kaldi_fbank,
    normalize_fbank,
    pad_or_cut,
    read_audio_file,
    resample_waveform,
)
from omnimask.training import ResumableSampler, SeededDataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from bench_mae_step import cpu_model  # noqa: E402  (shared with the other benchmarks)


def synth_clip(index: int, rate: int, seconds: float) -> np.ndarray:
    """A busy 10 s clip: a few decaying tones, a chirp and background noise, peak about 0.8."""
    rng = np.random.default_rng([2025, index])
    t = np.arange(int(rate * seconds)) / rate
    x = rng.normal(0.0, 0.02, t.size)
    for _ in range(6):
        start, f = rng.uniform(0, seconds - 1), rng.uniform(100, 4000)
        on = t >= start
        x[on] += rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * f * (t[on] - start)) * np.exp(-(t[on] - start) * 2)
    f0, f1 = rng.uniform(200, 1000), rng.uniform(1000, 6000)
    x += 0.1 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds)))
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


def make_clips(folder: Path, rate: int, n: int, seconds: float) -> tuple[list[tuple[str, int]], float | None]:
    """Write (or reuse) ``n`` clips at ``rate``; returns the items and the generation time (None if cached)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    items, made, t0 = [], 0, time.perf_counter()
    for i in range(n):
        path = folder / f"{i:03d}.wav"
        if not path.exists():
            tmp = path.with_suffix(".tmp.wav")
            sf.write(tmp, synth_clip(i, rate, seconds), rate, subtype="PCM_16")
            os.replace(tmp, path)
            made += 1
        items.append((str(path), i % 10))
    return items, (round(time.perf_counter() - t0, 2) if made else None)


def _warmup(workers: int) -> int:
    """Untimed batches: the first (worker start-up) plus what the workers prefetched meanwhile."""
    return 1 + 2 * workers


def time_loader(ds: AudioDataset, workers: int, batch_size: int, batches: int) -> dict:
    sampler = ResumableSampler(len(ds), seed=0, shuffle=True, drop_last=False)
    loader = DataLoader(SeededDataset(ds), batch_size=batch_size, sampler=sampler, num_workers=workers)
    assert len(sampler) >= (_warmup(workers) + batches) * batch_size, "one epoch must cover every batch"
    it = iter(loader)
    first = next(it)
    for _ in range(_warmup(workers) - 1):
        next(it)
    clips, t0 = 0, time.perf_counter()
    for _ in range(batches):
        clips += next(it)["audio"].shape[0]
    dt = time.perf_counter() - t0
    del it, loader
    return {"item_shape": list(first["audio"].shape[1:]), "clips": clips, "seconds": round(dt, 3),
            "clips_per_s": round(clips / dt, 2)}  # fmt: skip


def stage_times(items: list[tuple[str, int]], cfg: AudioFeatureConfig, threads: int) -> dict:
    """Main-process median milliseconds per clip of each stage, with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    times: dict[str, list[float]] = {"decode": [], "resample": [], "fbank": [], "pad_normalise": []}
    for path, _ in items:
        t0 = time.perf_counter()
        w, rate = read_audio_file(path)
        w = downmix(w)
        t1 = time.perf_counter()
        w = resample_waveform(w, rate, cfg.sample_rate)
        t2 = time.perf_counter()
        fb = kaldi_fbank(w, cfg.sample_rate, cfg.num_mel_bins)
        t3 = time.perf_counter()
        normalize_fbank(pad_or_cut(fb, cfg.target_length), cfg.mean, cfg.std)
        t4 = time.perf_counter()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[key].append(dt * 1e3)
    out = {k: round(statistics.median(v), 2) for k, v in times.items()}
    out["total"] = round(sum(out.values()), 2)
    return out


def model_step_rate(config: Path, batch: int, threads: int, steps: int) -> dict:
    """clips/s of a full pretraining step (forward, loss, backward, AdamW) of a recipe's model."""
    from omnimask import OmniMaskConfig, OmniMaskForPreTraining
    from omnimask.runners.pretrain import load_recipe

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = OmniMaskConfig(**load_recipe(config).model)
    model = OmniMaskForPreTraining(cfg)
    tok = cfg.modalities["audio"]["tokenizer"]
    x = torch.randn(batch, 1, tok["target_length"], tok["num_mel_bins"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):  # the first step warms up
        t = time.perf_counter()
        loss = model({"audio": x}).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    return {
        "config": config.name,
        "batch": batch,
        "threads": threads,
        "step_s": round(step, 3),
        "clips_per_s": round(batch / step, 2),
    }


def _table(rows: list[dict], stages: dict) -> str:
    head = "| clip rate | workers | item (C,T,F) | clips/s | audio s per wall s |\n|---|---|---|---|---|\n"
    body = "".join(f"| {r['rate']} Hz | {r['workers']} | {tuple(r['item_shape'])} | {r['clips_per_s']:.1f} | "
                   f"{r['clips_per_s'] * r['clip_seconds']:.0f} |\n" for r in rows)  # fmt: skip
    st = (
        "\n| clip rate | torch threads | decode | resample | fbank | pad+normalise | total (ms/clip) |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    st += "".join(f"| {rate} Hz | {th} | {s['decode']} | {s['resample']} | {s['fbank']} | {s['pad_normalise']} | "
                  f"{s['total']} |\n" for (rate, th), s in stages.items())  # fmt: skip
    return head + body + st


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "omnimask_bench_audio"),
                   help="where the generated clips are kept between runs")  # fmt: skip
    p.add_argument("--num-clips", type=int, default=48, help="clips per sample rate (listed repeatedly if needed)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rates", default="16000,44100", help="comma-separated sample rates of the files")
    p.add_argument("--target-length", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=12, help="timed batches per row")
    p.add_argument("--workers", default="0,2", help="comma-separated DataLoader worker counts")
    p.add_argument("--threads", type=int, default=1, help="torch threads in the main process for the loader rows")
    p.add_argument("--stage-threads", default="1,2", help="torch thread counts for the per-stage timings")
    p.add_argument("--quick", action="store_true", help="few short clips and batches: a smoke test")
    p.add_argument(
        "--model-steps", type=int, default=3, help="timed pretraining steps per model row (0: no model rows)"
    )
    p.add_argument("--out", default=str(REPO / "benchmarks/results/audio_preprocessing.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.num_clips, args.seconds, args.batches = 8, 2.0, 3
    rates = [int(r) for r in args.rates.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    cfg = AudioFeatureConfig(target_length=args.target_length)
    load_start = os.getloadavg()

    rows, stages, generation = [], {}, {}
    for rate in rates:
        folder = Path(args.cache_dir) / f"{rate}hz_{args.seconds:g}s"
        items, gen_s = make_clips(folder, rate, args.num_clips, args.seconds)
        generation[rate] = gen_s
        for th in (int(t) for t in args.stage_threads.split(",")):
            stages[(rate, th)] = stage_times(items, cfg, th)
            print(f"{rate} Hz, {th} thread(s), ms per clip: {stages[(rate, th)]}", flush=True)
        torch.set_num_threads(args.threads)
        # One epoch must cover every timed batch (a new epoch restarts the workers): repeat the list.
        items = items * -(-(args.batches + _warmup(max(workers))) * args.batch_size // len(items))
        for w in workers:
            res = time_loader(AudioDataset(items, cfg), w, args.batch_size, args.batches)
            rows.append({"rate": rate, "workers": w, "clip_seconds": args.seconds, **res})
            print(f"{rate} Hz workers={w}: {res['clips_per_s']:.1f} clips/s", flush=True)

    models = []
    if args.model_steps:
        for name, batch in (("audiomae_vit_b_as2m.yaml", 4), ("audiomae_tiny_digits.yaml", 64)):
            models.append(model_step_rate(REPO / "recipes/configs/audio" / name, batch, 2, args.model_steps))
            print(f"model step {models[-1]}", flush=True)

    import soundfile
    import torchaudio

    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": sys.version.split()[0], "torch": torch.__version__, "torchaudio": torchaudio.__version__,
        "soundfile": soundfile.__version__, "libsndfile": soundfile.__libsndfile_version__,
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads_main": args.threads,
        "batch_size": args.batch_size, "clip_seconds": args.seconds, "num_clips": args.num_clips,
        "target_length": args.target_length, "quick": args.quick, "generation_s": generation,
        "load_avg_1min_start": round(load_start[0], 2), "load_avg_1min_end": round(os.getloadavg()[0], 2),
    }  # fmt: skip
    table = _table(rows, stages)
    if models:
        table += (
            "\n| model (pretraining step, fp32, 2 threads) | batch | s/step | clips/s |\n|---|---|---|---|\n"
            + "".join(f"| {m['config']} | {m['batch']} | {m['step_s']} | {m['clips_per_s']} |\n" for m in models)
        )
    notes = (
        f"\n{meta['date']}, {meta['cpu']} ({meta['cpu_count']} cores), torch {meta['torch']}, torchaudio "
        f"{meta['torchaudio']}, soundfile {meta['soundfile']} (libsndfile {meta['libsndfile']}); "
        f"{args.num_clips} clips of {args.seconds:g} s per rate, 16-bit PCM mono WAV -> 16 kHz, 128 mel bins, "
        f"target_length {args.target_length}; batch {args.batch_size}; main-process torch threads {args.threads} "
        f"(workers use 1).\n1-minute load average {meta['load_avg_1min_start']} at the start, "
        f"{meta['load_avg_1min_end']} at the end (above about 1, other jobs share the 2 cores and the numbers are noisy).\n"
    )
    print("\n" + table + notes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage_rows = [{"rate": r, "threads": t, **s} for (r, t), s in stages.items()]
    result = {"meta": meta, "results": rows, "stages_ms": stage_rows, "model_steps": models}
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text("# Audio preprocessing throughput\n\n" + table + notes, encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
