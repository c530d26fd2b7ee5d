"""Time to quality: accuracy of the pretrained encoder against wall-clock, omnimask vs transformers.

Every system pretrains the same encoder (the tiny digits recipe's: 32x32 RGB, patch 4, 128 wide,
4 blocks) on the embedded digits, in one process, on the same augmented data stream, one system
after the other (``--order sequential``, the default: each trains alone, as in use). ``--order
interleaved`` makes them take turns step by step instead, so that the load of a shared machine
falls on all of them alike; but then every step runs with the other models' weights and
activations in the caches, which slows the small models unevenly (measured: see docs/benchmarks.md). Each system's clock counts only its own training (loading,
augmentation, masking, forward, backward, optimiser step, and torch.compile where used); it stops
at every budget in ``--budgets`` for an evaluation of the frozen encoder that is not counted:

* kNN (cosine, k = 20, temperature-weighted votes as in DINO) of the held-out digits against every
  training digit: the headline number, it has no hyper-parameters;
* a linear probe (standardised features, logistic regression) on every training label.

Systems (``--systems``):

* ``omnimask``: ``recipes/configs/image/mae_vit_tiny_digits.yaml`` (MAE decoder 128x2, fp32);
* ``omnimask-fast``: ``mae_vit_tiny_digits_fast.yaml`` (the preset: see its comments);
* ``transformers``: ``ViTMAEForPreTraining`` with its own defaults (decoder 512 wide, 8 blocks,
  pixel loss without norm-pix, mask 0.75, fp32), the same encoder;
* ``transformers-small-decoder``: the same with omnimask's decoder shape (128 wide, 2 blocks), so
  the comparison does not rest on transformers' large default decoder alone;
* ``transformers-mae-init``: that one again with MAE's initialisation (xavier-uniform linear layers,
  as omnimask and the MAE paper's code; transformers draws them from N(0, 0.02)), so the comparison
  does not rest on the initialisation either;
* any ``transformers*`` name with ``-lr<k>x`` appended (``transformers-mae-init-lr2x``): that system
  at k times the recipe's lr, for a preset that tuned its own lr.

The target accuracy is the best that any ``transformers*`` system reaches at any budget.

All systems share the optimiser recipe of the default config (AdamW, ``base_lr x batch / 256``,
no weight decay on 1-D parameters and tokens, warm-up then cosine): the fast preset brings its own.
The schedule runs in wall-clock: warm-up over the recipe's warm-up fraction of the largest budget,
then a half cosine that reaches 0 at the largest budget, so every system anneals at the end of the
series whatever its (and the machine's) speed.
transformers' position tables are set to MAE's sin-cos (a ViTMAE built from a config has zero
tables until weights are loaded).

Also reported, measured in the same run: steps/s and samples/s of each system, FLOPs per step
(``torch.utils.flop_counter``, forward + backward) and MFU against a matmul peak measured at the
start (fp32, and bf16 for bf16 systems).

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_time_to_quality.py                      # the full series
    PYTHONPATH=src python benchmarks/bench_time_to_quality.py --budgets 5,10 --systems omnimask,transformers
    PYTHONPATH=src python benchmarks/bench_time_to_quality.py --seeds 1,2,3   # the series per seed, averaged
    PYTHONPATH=src python benchmarks/bench_time_to_quality.py --combine s1.json s2.json s3.json

With several seeds (each seeds the models' init, the data order and augmentation, and the masks)
every budget's accuracy is the mean over seeds with its sample std; the target and the times to
it are read from the mean curves. ``--combine`` averages one-seed JSONs of one series (the same
systems and budgets, run by separate processes, e.g. one seed per machine) without training.

Writes ``--out`` (JSON), ``docs/figures/time_to_quality.svg`` and the table between the markers in
``docs/benchmarks.md`` (``--no-docs`` to skip the two docs files).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from transformers import ViTMAEConfig, ViTMAEForPreTraining

sys.path.insert(0, str(Path(__file__).resolve().parent))
import omnimask  # noqa: E402
from omnimask import OmniMaskForPreTraining  # noqa: E402
from omnimask.backbone.blocks import init_vit_weights  # noqa: E402
from omnimask.evaluation import encode_dataset, knn_accuracy, logistic_probe_accuracy  # noqa: E402
from omnimask.runners.common import build_dataset  # noqa: E402
from omnimask.runners.pretrain import RecipeConfig, load_recipe  # noqa: E402
from omnimask.training.loop import resolve_bf16  # noqa: E402
from omnimask.training.optim import NO_DECAY_NAMES, param_groups  # noqa: E402
from tta_report import combine, write_docs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "recipes/configs/image/mae_vit_tiny_digits.yaml"
FAST_CONFIG = ROOT / "recipes/configs/image/mae_vit_tiny_digits_fast.yaml"
SYSTEMS = ("omnimask", "omnimask-fast", "transformers", "transformers-small-decoder", "transformers-mae-init")


# ---------------------------------------------------------------------------------------------
# Systems: a model, its loss on a batch of images, its features, and its training settings
# ---------------------------------------------------------------------------------------------


@dataclass
class System:
    name: str
    model: nn.Module
    loss: Callable[[Tensor], Tensor]  # (B, 3, H, W) normalised images -> scalar loss
    features: Callable[[Tensor], Tensor]  # (B, 3, H, W) -> (B, D), whole image, eval mode
    recipe: RecipeConfig  # optimiser and batch settings
    bf16: bool = False
    repeats: int = 1
    compile: bool = False
    notes: str = ""
    lr_scale: float = 1.0  # a "-lr<k>x" system: the recipe's lr times k


def omnimask_system(name: str, path: Path, overrides: list[str] | None = None) -> System:
    recipe = load_recipe(path, overrides or [])
    model = OmniMaskForPreTraining(recipe.model_config)
    train = recipe.train
    repeats = int(getattr(train, "mask_repeats", 1))
    compiled = bool(getattr(train, "compile", False))
    net: Callable[..., Any] = torch.compile(model) if compiled else model

    def loss(x: Tensor) -> Tensor:
        if repeats > 1:  # k masks of each loaded sample: the rows repeat, the model draws k masks
            x = x.repeat_interleave(repeats, dim=0)
        return net({"image": x}).loss

    def features(x: Tensor) -> Tensor:
        return model.omnimask({"image": x}).pooler_output

    dec = recipe.model["modalities"]["image"]["decoder"]
    notes = f"{path.name}{''.join(f' {o}' for o in overrides or [])}; decoder {dec.get('name')} {dec.get('dim')}x{dec.get('depth')}"
    if dec.get("decode_ratio", 1.0) != 1.0:
        notes += f", decode_ratio {dec['decode_ratio']}"
    bf16 = resolve_bf16(train.bf16, torch.device("cpu"))  # "auto" is fp32 on the CPU, as in a Trainer
    return System(name, model, loss, features, recipe, bf16, repeats, compiled, notes)


def hf_system(name: str, recipe: RecipeConfig, small_decoder: bool, mae_init: bool = False) -> System:
    enc = recipe.model["encoder"]
    image = recipe.model["modalities"]["image"]
    tok, dec = image["tokenizer"], image["decoder"]
    extra: dict[str, Any] = {}
    if small_decoder:
        extra = dict(
            decoder_hidden_size=dec["dim"],
            decoder_num_hidden_layers=dec["depth"],
            decoder_num_attention_heads=dec["num_heads"],
            decoder_intermediate_size=int(dec["dim"] * dec.get("mlp_ratio", 4.0)),
        )
    config = ViTMAEConfig(
        hidden_size=enc["dim"],
        num_hidden_layers=enc["depth"],
        num_attention_heads=enc["num_heads"],
        intermediate_size=int(enc["dim"] * enc.get("mlp_ratio", 4.0)),
        image_size=tok["image_size"],
        patch_size=tok["patch_size"],
        num_channels=tok.get("in_chans", 3),
        mask_ratio=image["masking"]["ratio"],
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **extra,
    )
    model = ViTMAEForPreTraining(config)
    if mae_init:  # MAE's (and omnimask's) initialisation of linear layers and norms
        model.apply(init_vit_weights)
        w = model.vit.embeddings.patch_embeddings.projection.weight
        nn.init.xavier_uniform_(w.data.view(w.shape[0], -1))
    # MAE's sin-cos tables: transformers 5 leaves them zero until weights are loaded.
    projection = model.vit.embeddings.patch_embeddings.projection
    kernel = projection.weight.detach().clone()
    projection._is_hf_initialized = False
    model.vit.embeddings.initialize_weights()  # also redraws the patch kernel and [CLS]: keep ours with mae_init
    if mae_init:
        projection.weight.data.copy_(kernel)
    model.decoder.initialize_weights(model.vit.embeddings.patch_embeddings.num_patches)
    if model.vit.embeddings.position_embeddings.abs().sum() == 0:
        raise RuntimeError("transformers' ViTMAE position table is still zero after initialize_weights()")

    def loss(x: Tensor) -> Tensor:
        return model(pixel_values=x).loss

    def features(x: Tensor) -> Tensor:
        ratio, model.config.mask_ratio = model.config.mask_ratio, 0.0  # every patch, for evaluation
        try:
            return model.vit(pixel_values=x).last_hidden_state[:, 1:].mean(1)
        finally:
            model.config.mask_ratio = ratio

    notes = f"ViTMAEForPreTraining, decoder {config.decoder_hidden_size}x{config.decoder_num_hidden_layers}"
    notes += ", MAE's init" if mae_init else ""
    notes += ", norm_pix_loss " + str(config.norm_pix_loss)
    return System(name, model, loss, features, recipe, notes=notes)


def build_system(name: str, default: RecipeConfig, configs: dict[str, Path] | None = None) -> System:
    if configs and name in configs:  # --config NAME=YAML: an omnimask system from any image recipe
        return omnimask_system(name, configs[name])
    if name == "omnimask":
        return omnimask_system(name, DEFAULT_CONFIG)
    if name == "omnimask-fast":
        return omnimask_system(name, FAST_CONFIG)
    base, _, factor = name.rpartition("-lr")
    if base.startswith("transformers") and factor.endswith("x"):
        # e.g. transformers-mae-init-lr2x: that system at twice its lr, so a tuned lr is not ours alone
        try:
            lr_scale = float(factor[:-1])
        except ValueError:
            raise SystemExit(f"unknown system {name!r}: expected -lr<number>x after a transformers system") from None
        system = build_system(base, default, configs)
        system.name, system.lr_scale, system.notes = name, lr_scale, f"{system.notes}, lr x{lr_scale:g}"
        return system
    if name in ("transformers", "transformers-small-decoder", "transformers-mae-init"):
        return hf_system(name, default, small_decoder=name != "transformers", mae_init=name.endswith("mae-init"))
    raise SystemExit(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")


# ---------------------------------------------------------------------------------------------
# Training under a wall-clock budget
# ---------------------------------------------------------------------------------------------


def optimizer_for(system: System) -> tuple[torch.optim.Optimizer, float]:
    """AdamW with MAE's groups (no decay on 1-D parameters and tokens; transformers' table is
    ``position_embeddings``) at ``base_lr x batch / 256``."""
    o = system.recipe.optim
    lr = (o.lr if o.lr is not None else o.base_lr * system.recipe.train.batch_size / 256) * system.lr_scale
    groups = param_groups(system.model, o.weight_decay, (*NO_DECAY_NAMES, "position_embeddings"))
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(o.betas)), lr


def lr_factor(clock: float, horizon: float, warmup_fraction: float) -> float:
    """The lr multiplier at ``clock`` seconds of training: linear warm-up over the first
    ``warmup_fraction`` of ``horizon``, then a half cosine to 0 at ``horizon``. In wall-clock, not
    steps, so a system's schedule does not depend on how fast the machine happens to be."""
    warm = warmup_fraction * horizon
    if clock < warm:
        return max(clock / warm, 1e-3)
    t = min(1.0, (clock - warm) / max(horizon - warm, 1e-9))
    return 0.5 * (1 + math.cos(math.pi * t))


def batches(dataset: Any, batch_size: int, seed: int) -> Iterator[Tensor]:
    """Endless shuffled batches of images, loaded and augmented in this process (so the clock
    counts loading: no worker runs ahead while the evaluation is paused)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=g, num_workers=0)
        for b in loader:
            yield b["image"]


@torch.no_grad()
def evaluate(system: System, data: dict[str, tuple[Tensor, Tensor]]) -> dict[str, float]:
    system.model.eval()
    feats = {}
    for split, (x, _) in data.items():
        feats[split] = torch.cat([system.features(x[i : i + 256]).float() for i in range(0, len(x), 256)])
    system.model.train()
    (ftr, ytr), (fva, yva) = (feats["train"], data["train"][1]), (feats["val"], data["val"][1])
    return {
        "knn": knn_accuracy(ftr, ytr, fva, yva, k=20, temperature=0.07),
        "probe": logistic_probe_accuracy(ftr, ytr, fva, yva),
    }


@dataclass
class Run:
    """One system's training state in the interleaved loop."""

    system: System
    stream: Iterator[Tensor]
    opt: torch.optim.Optimizer
    lr: float
    warmup_fraction: float
    clock: float = 0.0
    steps: int = 0
    samples: int = 0
    next_budget: int = 0
    times: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)


def start(system: System, dataset: Any, data: dict[str, tuple[Tensor, Tensor]], seed: int) -> Run:
    torch.manual_seed(seed)
    opt, lr = optimizer_for(system)
    train, optim = system.recipe.train, system.recipe.optim
    run = Run(system, batches(dataset, train.batch_size, seed), opt, lr, optim.warmup_epochs / max(train.epochs, 1))
    run.points.append({"seconds": 0.0, "steps": 0, "samples": 0, **evaluate(system, data)})
    print(f"  {system.name}: at 0 s  kNN {run.points[0]['knn']:.1f}  probe {run.points[0]['probe']:.1f}", flush=True)
    return run


def step(run: Run, horizon: float) -> None:
    """One optimiser step of ``run``'s system, loading included, on its own clock."""
    system = run.system
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if system.bf16 else contextlib.nullcontext()
    t0 = time.perf_counter()
    x = next(run.stream)
    for group in run.opt.param_groups:
        group["lr"] = run.lr * lr_factor(run.clock, horizon, run.warmup_fraction)
    with autocast:
        loss = system.loss(x)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    value = float(loss.detach())
    dt = time.perf_counter() - t0
    if not math.isfinite(value):
        raise RuntimeError(f"{system.name}: non-finite loss at step {run.steps}")
    run.clock, run.steps, run.samples = run.clock + dt, run.steps + 1, run.samples + len(x)
    run.times.append(dt)
    run.losses.append(value)


def train_interleaved(
    systems: list[System], dataset: Any, data: dict[str, tuple[Tensor, Tensor]], budgets: list[float], seed: int
) -> dict[str, dict[str, Any]]:
    """Train every system to the last budget, one step each in turn (the order reversed every
    round), so that the machine's load affects all of them alike; each stops at each of its
    budgets for an evaluation that its clock does not count."""
    runs = [start(s, dataset, data, seed) for s in systems]
    rnd = 0
    while any(r.next_budget < len(budgets) for r in runs):
        for run in runs if rnd % 2 == 0 else runs[::-1]:
            if run.next_budget == len(budgets):
                continue
            step(run, budgets[-1])
            if run.clock >= budgets[run.next_budget]:
                point = {"seconds": round(run.clock, 2), "steps": run.steps, "samples": run.samples}
                point.update(evaluate(run.system, data), loss=statistics.mean(run.losses[-10:]))
                run.points.append(point)
                run.next_budget += 1
                print(f"  {run.system.name}: at {run.clock:.0f} s ({run.steps} steps)  kNN {point['knn']:.1f}  "
                      f"probe {point['probe']:.1f}  loss {point['loss']:.4f}", flush=True)  # fmt: skip
        rnd += 1
    out = {}
    for run in runs:
        steady = statistics.median(run.times[len(run.times) // 4 :])
        out[run.system.name] = {
            "points": run.points,
            "lr": run.lr,
            "batch_size": run.system.recipe.train.batch_size,
            "steady_step_s": steady,
            "steps_per_s": 1 / steady,
            "samples_per_s": run.system.recipe.train.batch_size / steady,
            "first_step_s": run.times[0],
            "compile_overhead_s": max(0.0, run.times[0] - steady) if run.system.compile else 0.0,
        }
    return out


def step_flops(system: System, x: Tensor) -> int:
    """FLOPs of one training step's forward + backward (matmuls, attention, convolutions)."""
    model = system.model
    counter = FlopCounterMode(display=False)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if system.bf16 else contextlib.nullcontext()
    inputs = x.repeat_interleave(system.repeats, dim=0) if system.repeats > 1 else x
    with counter, autocast:
        out = model({"image": inputs}).loss if isinstance(model, OmniMaskForPreTraining) else model(pixel_values=x).loss
        out.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Measured matmul rate (FLOP/s) of this machine in ``dtype``: best of ``reps``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


# ---------------------------------------------------------------------------------------------
# Time to the reference accuracy
# ---------------------------------------------------------------------------------------------


def time_to(points: list[dict[str, Any]], metric: str, target: float) -> float | None:
    """Seconds at which the accuracy curve first reaches ``target`` (linear between budgets)."""
    for a, b in zip(points, points[1:]):
        if b[metric] >= target:
            if a[metric] >= target:
                return a["seconds"]
            return a["seconds"] + (target - a[metric]) / (b[metric] - a[metric]) * (b["seconds"] - a["seconds"])
    return None


def summarise(results: dict[str, dict[str, Any]], prefix: str, metric: str) -> dict[str, Any]:
    """Time for every system to reach the best ``metric`` of any system named ``prefix*``."""
    refs = [n for n in results if n.startswith(prefix)]
    best = {n: max(p[metric] for p in r["points"]) for n, r in results.items()}
    ref = max(refs, key=lambda n: best[n])
    target = best[ref]
    ref_time = time_to(results[ref]["points"], metric, target)
    out = {"reference": ref, "metric": metric, "target": target, "systems": {}}
    for name, r in results.items():
        t = time_to(r["points"], metric, target)
        out["systems"][name] = {
            "best": best[name],
            "seconds_to_target": t,
            "speedup_vs_reference": (ref_time / t) if (t and ref_time) else None,
        }
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="20,40,80,160", help="wall-clock budgets in seconds, comma separated")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=YAML",
        help="also run an omnimask system NAME from this image recipe (repeatable; a name of --systems "
        "takes this config instead of its own)",
    )
    ap.add_argument("--reference", default="transformers", help="target: the best accuracy of the systems named so*")
    ap.add_argument("--metric", default="knn", choices=("knn", "probe"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--order",
        default="sequential",
        choices=("sequential", "interleaved"),
        help="train the systems one after the other (each alone, as in use) or in turns step by step",
    )
    ap.add_argument("--seeds", default="0", help="comma separated: the whole series once per seed, then averaged")
    ap.add_argument("--max-eval", type=int, default=None, help="at most this many training samples for the kNN/probe")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/time_to_quality.json"))
    ap.add_argument(
        "--merge",
        default=None,
        help="a previous JSON of this script: its systems not run now join the report (sequential order, one seed)",
    )
    ap.add_argument(
        "--combine",
        nargs="+",
        default=None,
        metavar="JSON",
        help="train nothing: average these one-seed results of one series (same systems and budgets) into --out",
    )
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md and the figure")
    return ap.parse_args(argv)


@dataclass
class Digits:
    """The default recipe, its augmented training set, and the evaluation features' inputs
    (``{"train": (X, y), "val": (X, y)}``): built once, shared by every seed and system."""

    recipe: RecipeConfig
    train_set: Any
    data: dict[str, tuple[Tensor, Tensor]]


def load_digits(max_eval: int | None = None) -> Digits:
    default = load_recipe(DEFAULT_CONFIG)
    config, sections = default.model_config, default.data_configs
    data = {
        "train": encode_dataset(build_dataset(config, sections, "image", "train_eval"), "image", max_eval),
        "val": encode_dataset(build_dataset(config, sections, "image", "val"), "image"),
    }
    return Digits(default, build_dataset(config, sections, "image", "train"), data)


def merge_results(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """An earlier one-seed run's systems joined with this run's (this run wins a name both have):
    the built-in systems first in their usual order, then the others as they came. Returns the
    results and the names taken from the earlier run."""
    merged = [n for n in old if n not in new]
    results = {**{n: old[n] for n in merged}, **new}
    return {n: results[n] for n in dict.fromkeys([*SYSTEMS, *merged, *new]) if n in results}, merged


def parse_systems(args: argparse.Namespace) -> tuple[list[str], dict[str, Path]]:
    """``--systems`` and the ``--config NAME=YAML`` systems: (names in order, {name: recipe path})."""
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    configs = {}
    for item in args.config:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"--config {item!r}: expected NAME=PATH to an existing recipe YAML")
        configs[name] = Path(path)
        names += [name] if name not in names else []
    return names, configs


def measure(args: argparse.Namespace, seed: int, digits: Digits) -> dict[str, Any]:
    """One series (every system, every budget) under ``seed``: the report of one seed."""
    budgets = sorted(float(b) for b in args.budgets.split(","))
    names, configs = parse_systems(args)
    default, train_set, data = digits.recipe, digits.train_set, digits.data
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"seed {seed}; matmul peak: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    systems = []
    for name in names:
        torch.manual_seed(seed)
        systems.append(build_system(name, default, configs))
        print(f"{name}: {systems[-1].notes}", flush=True)
    if args.order == "interleaved":
        results = train_interleaved(systems, train_set, data, budgets, seed)
    else:  # one after the other, as each would train alone
        results = {k: v for s in systems for k, v in train_interleaved([s], train_set, data, budgets, seed).items()}
    merged = []
    if args.merge:
        old = json.loads(Path(args.merge).read_text())
        if old.get("order", "sequential") != "sequential" or args.order != "sequential":
            raise SystemExit("--merge joins sequential runs only")
        if old["budgets_s"] != budgets:
            raise SystemExit(f"--merge: {args.merge} has budgets {old['budgets_s']}, this run {budgets}")
        results, merged = merge_results(old["results"], results)
    for system in systems:
        r = results[system.name]
        flops = step_flops(system, next(batches(train_set, system.recipe.train.batch_size, seed)))
        peak = peaks["bf16" if system.bf16 else "fp32"]
        r.update(notes=system.notes, bf16=system.bf16, repeats=system.repeats, compile=system.compile,
                 flops_per_step=flops, mfu=flops / r["steady_step_s"] / peak)  # fmt: skip
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": args.threads},
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "omnimask": omnimask.__version__,
        },
        "seed": seed,
        "budgets_s": budgets,
        "eval": {
            "train_samples": len(data["train"][1]),
            "val_samples": len(data["val"][1]),
            "knn_k": 20,
            "knn_t": 0.07,
        },
        "matmul_peak_flops": peaks,
        "results": results,
        "headline_metric": args.metric,
        "order": args.order,
        "merged": {"from": args.merge, "systems": merged} if merged else None,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.combine:
        reports = [json.loads(Path(f).read_text()) for f in args.combine]
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
        if args.merge and len(seeds) > 1:
            raise SystemExit("--merge joins one-seed runs only")
        parse_systems(args)  # a bad --config stops before the data is built
        digits = load_digits(args.max_eval)
        reports = [measure(args, seed, digits) for seed in seeds]
    report = combine(reports) if len(reports) > 1 else reports[0]
    report["summary"] = {
        m: summarise(report["results"], args.reference, m)
        for m in ("knn", "probe")
        if any(n.startswith(args.reference) for n in report["results"])
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    if not args.no_docs:
        write_docs(report, ROOT / "docs/benchmarks.md", ROOT / "docs/figures/time_to_quality.svg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
