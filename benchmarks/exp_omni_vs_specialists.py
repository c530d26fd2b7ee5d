#!/usr/bin/env python
"""Does one mixed model match the specialists? (issue 12, OmniMAE's claim, on the embedded data)

Trains the omni model (``omni_tiny.yaml``) on all five sources for ``--steps`` optimizer steps,
then, for each source, a specialist: the very same model config (same encoder size, same decoders)
trained on that source alone for the same number of steps at the same batch size and the same lr
schedule in steps — the same total compute, all of it spent on one modality. Every model is evaluated on its source(s) with the
recipe's held-out protocol (few-label probe and fine-tuning, all-label probe; retrieval for the
captions) against the same encoder at random init. Writes ``benchmarks/results/omni_vs_specialists.json``
and prints the table for ``docs/recipes.md``.

    python benchmarks/exp_omni_vs_specialists.py [--steps 600] [--out runs/omni_vs_specialists]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from omnimask.runners.mixed import build_source
from omnimask.runners.pretrain import load_recipe, run

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "recipes/configs/omni/omni_tiny.yaml"
METRICS = ("probe_few_mean", "finetune_mean", "probe_all", "i2t_R@1", "t2i_R@1", "masked_token_acc_with_image")


def _run(overrides: list[str]) -> tuple[dict, float]:
    cfg = load_recipe(CONFIG, overrides)
    t0 = time.perf_counter()
    summary = run(cfg)
    return summary, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", default=str(ROOT / "runs/omni_vs_specialists"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mixed-dir", default=None, help="reuse a finished mixed run of the same config and steps "
                        "(its summary.json), e.g. the main job's runs/omni_tiny")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = [f"train.max_steps={args.steps}", "train.progress=false", "train.checkpoint_every=0"]
    sources = list(load_recipe(CONFIG).data["sources"])
    results: dict = {"steps": args.steps, "config": str(CONFIG.relative_to(ROOT)), "runs": {}}
    if args.mixed_dir:
        mixed, seconds = json.loads((Path(args.mixed_dir) / "summary.json").read_text()), None
        if mixed["steps"] != args.steps:
            raise SystemExit(f"{args.mixed_dir} ran {mixed['steps']} steps, not --steps {args.steps}")
    else:
        mixed, seconds = _run([*base, f"train.output_dir={args.out}/mixed"])
        seconds = round(seconds)
    results["runs"]["mixed"] = {"seconds": seconds, "eval": mixed["eval"], "sources": mixed["sources"]}
    cfg = load_recipe(CONFIG)
    mixed_spe = 0
    sizes, batches = {}, {}
    for src in cfg.data_configs["sources"]:
        sizes[src.name] = len(build_source(cfg.model_config, src, "train"))
        batches[src.name] = src.batch_size or cfg.train.batch_size
    mixed_spe = math.floor(sum(sizes.values()) / (sum(batches.values()) / len(batches)))  # equal weights
    warmup_steps = cfg.optim.warmup_epochs * mixed_spe
    for name in sources:
        # the same number of steps, and the same schedule in steps (warm-up, then cosine to the end)
        spe = max(1, sizes[name] // batches[name])
        epochs, warmup = math.ceil(args.steps / spe), warmup_steps / spe
        drop = [f"~data.sources.{other}" for other in sources if other != name]
        schedule = [f"train.epochs={epochs}", f"optim.warmup_epochs={warmup}"]
        spec, seconds = _run([*base, *drop, *schedule, f"train.output_dir={args.out}/{name}"])
        results["runs"][name] = {"seconds": round(seconds), "eval": spec["eval"]}
        print(f"specialist {name}: {round(seconds)} s", flush=True)
    out = ROOT / "benchmarks/results/omni_vs_specialists.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print("\n| source | metric | mixed | specialist | random init |\n|---|---|---|---|---|")
    for name in sources:
        m = results["runs"]["mixed"]["eval"][name]
        s = results["runs"][name]["eval"][name]
        for metric in METRICS:
            if metric in m.get("pretrained (omnimask)", {}):
                row = (m["pretrained (omnimask)"][metric], s["pretrained (omnimask)"][metric], m["random init"][metric])
                print(f"| {name} | {metric} | {row[0]:.1f} | {row[1]:.1f} | {row[2]:.1f} |")


if __name__ == "__main__":
    main()
