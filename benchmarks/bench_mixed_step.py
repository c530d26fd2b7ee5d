#!/usr/bin/env python
"""A mixed step against the single-modality steps it mixes (issue 12), measured side by side.

The omni model (``recipes/configs/omni/omni_tiny.yaml``) trains through the real Trainer on
in-memory copies of the five embedded sources, so data decoding does not blur the comparison:

* **single**: each source alone (``data.sources`` = that source), ``--steps`` optimizer steps;
* **mixed, per_step**: all five sources, the same number of steps; its expected time is the mix of
  the single-source step times weighted by how often the plan drew each source;
* **per_sample padding**: in ``per_sample`` mode a batch mixes sources, so every modality's tokens
  are padded for the samples without it; the waste is the share of encoder tokens that are padding.

Rounds alternate single and mixed runs; the overhead is the median over rounds.
Writes ``benchmarks/results/mixed_step.json``.

    python benchmarks/bench_mixed_step.py [--steps 30] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from omnimask import OmniMaskForPreTraining
from omnimask.data.mixing import MixedDataset, collate_mixed
from omnimask.runners.mixed import build_source, source_keys
from omnimask.runners.pretrain import load_recipe
from omnimask.training import MixedBatchSampler, Mixing, OptimConfig, TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "recipes/configs/omni/omni_tiny.yaml"


class InMemory(torch.utils.data.Dataset):
    """The first ``n`` items of a dataset, decoded once."""

    def __init__(self, dataset, n: int, keys) -> None:
        self.items = []
        for i in range(min(n, len(dataset))):
            item = dataset[i]
            item = item[0] if isinstance(item, list) else item
            self.items.append({k: item[k] for k in keys})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return dict(self.items[i])


def _fit(config, datasets, names, keys, plan: Mixing, steps: int, mode: str = "per_step") -> tuple[float, list[int]]:
    torch.manual_seed(0)
    model = OmniMaskForPreTraining(config)
    ds = MixedDataset(datasets, names, keys)
    with tempfile.TemporaryDirectory() as out:
        train = TrainConfig(epochs=1000, max_steps=steps + 2, batch_size=plan.batch_sizes[0], num_workers=0,
                            output_dir=out, progress=False, checkpoint_every=0, log_every=0)  # fmt: skip
        times: list[float] = []
        last = [0.0]

        def clock(trainer, step, out):  # step times after two warm-up steps
            now = time.perf_counter()
            if step > 2:
                times.append(now - last[0])
            last[0] = now

        trainer = Trainer(model, ds, train, OptimConfig(warmup_epochs=0), hooks=[clock], mixing=plan)
        trainer.fit()
        drawn = [trainer.sampler.source_of_step(t) for t in range(2, steps + 2)] if mode == "per_step" else []
    return sum(times) / len(times), drawn


def padding_waste(config, datasets, names, keys, batch: int, batches: int = 50) -> float:
    """Share of encoder tokens that are padding under per_sample mixing (visible tokens of the
    modalities a sample lacks, over all visible tokens plus [CLS])."""
    torch.manual_seed(0)
    model = OmniMaskForPreTraining(config)
    visible = {}
    for k, tok in model.omnimask.tokenizers.items():
        n = 1
        for g in tok.base_grid:
            n *= g
        strategy = model.maskings[k]
        visible[k] = strategy.num_keep(n) if hasattr(strategy, "num_keep") else n
    sampler = MixedBatchSampler([len(d) for d in datasets], [1.0] * len(datasets), [batch], 1, batches, batches,
                                mode="per_sample")  # fmt: skip
    collate, ds = collate_mixed(list(visible)), MixedDataset(datasets, names, keys)
    pad = total = 0
    for t in range(batches):
        (micro,) = sampler.step_batches(t)
        offsets = [sum(ds.sizes[:s]) for s in range(len(ds.sizes))]
        items = collate([ds[offsets[s] + i] for s, i, _ in micro])
        for k, rows in items["present"].items():
            pad += int((~rows).sum()) * visible[k]
            total += len(rows) * visible[k]
        total += batch  # [CLS]
    return pad / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--items", type=int, default=256, help="in-memory items per source")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_recipe(CONFIG)
    config, sources = cfg.model_config, cfg.data_configs["sources"]
    data = [InMemory(build_source(config, s, "train"), args.items, source_keys(s)) for s in sources]
    names, keys = [s.name for s in sources], [source_keys(s) for s in sources]
    batches = [s.batch_size or cfg.train.batch_size for s in sources]
    single: dict[str, list[float]] = {n: [] for n in names}
    overheads, mixed_times = [], []
    for r in range(args.rounds):
        for i, n in enumerate(names):
            t, _ = _fit(config, [data[i]], [n], [keys[i]], Mixing([1.0], [batches[i]]), args.steps)
            single[n].append(t)
            print(f"round {r}: {n:<10} {t * 1e3:7.1f} ms/step", flush=True)
        t, drawn = _fit(config, data, names, keys, Mixing([1.0] * len(names), batches), args.steps)
        expected = sum(statistics.median(single[names[s]]) for s in drawn) / len(drawn)
        overheads.append(t / expected - 1.0)
        mixed_times.append(t)
        print(
            f"round {r}: mixed      {t * 1e3:7.1f} ms/step, expected {expected * 1e3:.1f} -> overhead {overheads[-1]:+.1%}"
        )
    waste = padding_waste(config, data, names, keys, cfg.train.batch_size)
    result = {
        "config": str(CONFIG.relative_to(ROOT)),
        "threads": args.threads,
        "steps": args.steps,
        "rounds": args.rounds,
        "single_ms_per_step": {n: round(statistics.median(v) * 1e3, 2) for n, v in single.items()},
        "mixed_ms_per_step": round(statistics.median(mixed_times) * 1e3, 2),
        "per_step_overhead": round(statistics.median(overheads), 4),
        "per_step_overhead_rounds": [round(o, 4) for o in overheads],
        "per_sample_padding_fraction": round(waste, 4),
    }
    out = ROOT / "benchmarks/results/mixed_step.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
