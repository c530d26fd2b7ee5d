"""``omnimask eval CHECKPOINT``: the held-out protocol on any saved model, outside a recipe run.

CHECKPOINT is one of:

* a ``save_pretrained`` folder of a pretraining model (a recipe's ``final/``) or of an encoder
  (``OmniMaskModel``, e.g. what the fine-tuning runner saves): its encoder is evaluated;
* a training checkpoint, ``checkpoints/`` or output directory (its latest checkpoint, sharded or
  not, read as ``omnimask export`` reads it);
* with ``--random-init``, also a recipe YAML: only the model config is used.

The data come from a recipe's ``data`` section (``--data`` names the YAML or a recipe); the
protocols are those of :func:`~omnimask.evaluation.compare_encoders` (kNN, linear probes, few-label
fine-tuning) for a labelled single-modality dataset, and retrieval for paired data (``data.pairs``).
``--grid`` instead runs :func:`~omnimask.evaluation.finetune_grid` on the encoder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import torch

from ..data.sources import SOURCES
from ..evaluation import (
    DEFAULT_GRID_LRS,
    EvalConfig,
    best_cell,
    compare_encoders,
    compare_retrieval,
    encode_dataset,
    finetune_grid,
    format_report,
    random_encoder,
    report_gains,
)
from ..model_config import OmniMaskConfig
from ..models import OmniMaskForPreTraining, OmniMaskModel
from ..models.export import MODEL_CLASSES, architecture
from ..models.hub import CONFIG_NAME, WEIGHTS_NAME, read_config
from ..recipe_index import list_recipes, recipes_dir
from ..run_config import from_dict, load_yaml
from ..training.checkpoint import STATE_FILE, CheckpointError, load_model_weights, resolve_checkpoint
from .common import build_dataset, data_configs, find_config
from .paired_eval import direction_names
from .pretrain import _limit

__all__ = ["PROTOCOLS", "add_eval_arguments", "load_encoder", "resolve_data", "run_eval", "main"]

log = logging.getLogger("omnimask.eval")

PROTOCOLS = ("knn", "probe", "finetune", "retrieval")
_RANDOM, _CKPT = "random init", "checkpoint"


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``omnimask eval`` (docs/evaluation.md)."""
    parser.add_argument("checkpoint", help="final/ or encoder folder, training checkpoint or output dir")
    parser.add_argument("--data", default=None, help="recipe YAML whose data section is used, or a recipe name")
    parser.add_argument("--protocols", default=None, help=f"comma-separated subset of {','.join(PROTOCOLS)}")
    parser.add_argument("--labels-per-class", type=int, default=None, help="labels per class (few-label)")
    parser.add_argument("--repeats", type=int, default=None, help="label subsets for few-label numbers")
    parser.add_argument("--max-samples", type=int, default=None, help="at most this many train/held-out samples")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (eval.epochs)")
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (eval.lr)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-init encoder (train.seed)")
    parser.add_argument("--random-init", action="store_true", help="evaluate the config at random init")
    parser.add_argument(
        "--compare-random-init", action="store_true", help="also evaluate its random init; report the gains"
    )
    parser.add_argument("--grid", action="store_true", help="fine-tuning lr x epochs grid instead of the protocols")
    parser.add_argument("--grid-lrs", default=",".join(f"{lr:g}" for lr in DEFAULT_GRID_LRS), help="grid lrs")
    parser.add_argument("--grid-epochs", default=None, help="grid epoch counts (default: epochs, 2 x epochs)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the results to this JSON file")


def _build(config: OmniMaskConfig, name: str, where: Path) -> torch.nn.Module:
    if name not in MODEL_CLASSES:
        raise ValueError(
            f"{where / CONFIG_NAME} names the class {name!r}: omnimask eval reads {sorted(MODEL_CLASSES)} checkpoints"
        )
    return MODEL_CLASSES[name](config)


def load_encoder(path: str | Path) -> tuple[OmniMaskModel, str]:
    """``(encoder, kind)`` of a checkpoint (module notes); kind is ``pretraining``, ``encoder`` or
    ``training checkpoint``.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: something that is not an omnimask checkpoint of a known class.
        CheckpointError: a checkpoint whose weights cannot be read.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no checkpoint at {str(p)!r}")
    if not p.is_dir():
        raise ValueError(f"{p} is a file: give a checkpoint folder (or a recipe YAML with --random-init)")
    if (p / CONFIG_NAME).is_file() and not (p / STATE_FILE).is_file():
        config = read_config(p)
        name = architecture(config)
        if name not in MODEL_CLASSES:
            _build(config, name, p)  # raises, naming the class
        if not (p / WEIGHTS_NAME).is_file():
            raise ValueError(f"{p} has {CONFIG_NAME} but no {WEIGHTS_NAME}: not a save_pretrained folder")
        kind = "pretraining" if name == "OmniMaskForPreTraining" else "encoder"
        return OmniMaskModel.from_pretrained(p), kind
    try:
        ckpt = resolve_checkpoint(p)
    except CheckpointError as err:
        if "no checkpoint at" not in str(err):
            raise  # a damaged checkpoint: an I/O error
        raise ValueError(
            f"{p} is not a model omnimask eval can read: expected a save_pretrained folder "
            f"({CONFIG_NAME} + {WEIGHTS_NAME}), a training checkpoint ({STATE_FILE}) or an output dir "
            "with checkpoints/latest"
        ) from None
    if not (ckpt / CONFIG_NAME).is_file():
        raise ValueError(f"{ckpt} has no {CONFIG_NAME}: not a checkpoint of an omnimask model")
    config = read_config(ckpt)
    model = _build(config, architecture(config), ckpt)
    load_model_weights(model, ckpt)
    encoder = model.omnimask if isinstance(model, OmniMaskForPreTraining) else model
    return encoder.eval(), "training checkpoint"


def _recipe_default(script: Path) -> Path | None:
    """The ``DEFAULT_CONFIG`` a recipe script names (``Path(__file__).parent / "configs" / ...``)."""
    m = re.search(r"DEFAULT_CONFIG\s*=\s*Path\(__file__\)\.parent((?:\s*/\s*\"[^\"]+\")+)", script.read_text())
    return script.parent.joinpath(*re.findall(r"\"([^\"]+)\"", m.group(1))) if m else None


def _modality_types(modalities: dict) -> dict[str, str]:
    return {k: (m or {}).get("type", k) for k, m in modalities.items()}


def _shipped_config(config: OmniMaskConfig) -> Path:
    """The default config of the recipe whose model has the checkpoint's modalities (same keys and types)."""
    wanted = _modality_types(config.modalities)
    for name in list_recipes():
        path = _recipe_default(recipes_dir() / f"{name}.py")
        if path is None or not path.is_file():
            continue
        model = (load_yaml(path) or {}).get("model") or {}
        if _modality_types(model.get("modalities") or {}) == wanted:
            return path
    raise ValueError(
        f"no --data given and no shipped recipe has the modalities {wanted}: pass --data with a recipe YAML "
        "(its data section is used) or a recipe name (omnimask list)"
    )


def resolve_data(data: str | None, config: OmniMaskConfig) -> tuple[Path, dict]:
    """``(recipe YAML, its raw data section)`` for ``--data`` (a YAML path, or a recipe name)."""
    if data is None:
        path = _shipped_config(config)
    elif data.endswith((".yaml", ".yml")):
        path = find_config(data)
        if not path.is_file():
            raise FileNotFoundError(f"--data: no recipe config at {data!r}")
    else:
        script = recipes_dir() / f"{data}.py"
        path = _recipe_default(script) if script.is_file() else None
        if path is None:
            raise ValueError(f"--data: unknown recipe {data!r}; give a recipe YAML or one of {sorted(list_recipes())}")
    section = (load_yaml(path) or {}).get("data")
    if not isinstance(section, dict) or not section:
        raise ValueError(f"--data: {path} has no data section")
    if "sources" in section:
        raise ValueError(f"--data: {path} is a mixed run (data.sources): give the recipe of one source")
    return path, section


def _protocols(text: str | None, paired: bool) -> list[str]:
    if text is None:
        return ["retrieval"] if paired else ["knn", "probe", "finetune"]
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown or not names:
        raise ValueError(f"--protocols: unknown protocol(s) {unknown or [text]}; valid: {','.join(PROTOCOLS)}")
    if paired and names != ["retrieval"]:
        raise ValueError(f"--protocols: paired data (data.pairs) supports retrieval only, got {names}")
    if not paired and "retrieval" in names:
        raise ValueError("--protocols: retrieval needs paired data (a data.pairs section); this data has one modality")
    return names


def _eval_config(path: Path, args: argparse.Namespace, protocols: list[str]) -> EvalConfig:
    """The recipe's ``eval`` section (protocol defaults where absent) with the command's options."""
    raw = dict((load_yaml(path) or {}).get("eval") or {})
    raw.update(enabled=True, knn="knn" in protocols, linear_probe="probe" in protocols)
    raw["finetune"] = "finetune" in protocols
    for name in ("labels_per_class", "repeats", "max_samples", "epochs", "lr"):
        if getattr(args, name) is not None:
            raw[name] = getattr(args, name)
    return from_dict(EvalConfig, raw, "eval")


def _labelled(config: OmniMaskConfig, typed: dict, key: str, n: int | None, source: Path) -> tuple[tuple, tuple]:
    """``((X, y) training, (X, y) held out)`` of modality ``key`` (at most ``n`` evenly spaced each)."""
    out = []
    for split in ("train_eval", "val"):
        data = _limit(build_dataset(config, typed, key, split), n)
        if len(data) == 0:
            raise ValueError(f"--data: {source} data.{key} has no {split} samples")
        if "label" not in data[0]:
            raise ValueError(
                f"--data: the samples of {source} data.{key} carry no labels; kNN, probe and fine-tuning need them"
            )
        out.append(encode_dataset(data, key))
    return out[0], out[1]


def _retrieval(config: OmniMaskConfig, typed: dict, encoders: dict, n: int | None) -> dict[str, dict[str, float]]:
    name = next(k for k in typed if k in SOURCES)
    source, cfg = SOURCES.get(name), typed[name]
    a, b = source.keys(cfg)
    val = _limit(source.build(cfg, config.modalities, "val"), n)
    xa, xb = (torch.stack([val[i][k] for i in range(len(val))]) for k in (a, b))
    ab, ba = direction_names(a, b)
    recalls = compare_retrieval(encoders, xa, xb, a, b, median=True)
    return {m: {k.replace("i2t", ab).replace("t2i", ba): v for k, v in r.items()} for m, r in recalls.items()}


def _encoders(args: argparse.Namespace) -> tuple[dict[str, OmniMaskModel], OmniMaskConfig, str, Path | None]:
    """``({row name: encoder}, config, kind, recipe YAML given as CHECKPOINT or None)``."""
    path = Path(args.checkpoint)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        if not args.random_init:
            raise ValueError(f"{path} is a recipe config, which holds no weights: add --random-init")
        model = (load_yaml(path) or {}).get("model")
        if not isinstance(model, dict):
            raise ValueError(f"{path} has no model section")
        config = OmniMaskConfig(**model)
        return {_RANDOM: random_encoder(config, args.seed)}, config, "recipe config", path
    encoder, kind = load_encoder(path)
    if args.random_init:
        return {_RANDOM: random_encoder(encoder.config, args.seed)}, encoder.config, kind, None
    encoders = {_CKPT: encoder}
    if args.compare_random_init:
        encoders[_RANDOM] = random_encoder(encoder.config, args.seed)
    return encoders, encoder.config, kind, None


def _progress() -> bool:
    """Progress bars of the fine-tuning runs on a terminal only (not in logs or captured output)."""
    return sys.stderr.isatty()


def _numbers(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated numbers, got {text!r}") from None


def _print_grid(cells: list[dict[str, Any]], name: str, n_val: int) -> None:
    print(f"\nFine-tuning grid of the {name} encoder: top-1 % (held-out: {n_val} samples; mean ± std over subsets)")
    print(f"  {'lr':>8} {'epochs':>7} {'train (fit)':>12} {'held-out':>14}")
    for c in cells:
        held = f"{c['val_mean']:.1f} ± {c['val_std']:.1f}"
        print(f"  {c['lr']:>8g} {c['epochs']:>7d} {c['train_acc_mean']:>11.1f}% {held:>14}")
    best = best_cell(cells)
    print(f"  best held-out: lr {best['lr']:g}, {best['epochs']} epochs ({best['val_mean']:.1f} %)")


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    """``omnimask eval``: evaluate, print the table, write ``--json``; returns the JSON document."""
    encoders, config, kind, recipe = _encoders(args)
    path, section = resolve_data(args.data if args.data is not None or recipe is None else str(recipe), config)
    typed = data_configs(config, section)
    paired = any(k in SOURCES for k in typed)
    protocols = _protocols(args.protocols, paired)
    cfg = _eval_config(path, args, protocols)
    doc: dict[str, Any] = {"checkpoint": str(args.checkpoint), "kind": kind, "data": str(path), "seed": args.seed}
    doc.update(protocols=protocols, eval_config=dataclasses.asdict(cfg))
    if paired:
        if args.grid:
            raise ValueError("--grid needs a labelled single-modality dataset, not paired data")
        doc["results"] = _retrieval(config, typed, encoders, cfg.max_samples)
        print(f"\nRetrieval on the held-out pairs of {path} (each modality alone, mean-pooled, cosine):")
        print(format_report(doc["results"], cfg.labels_per_class, extra=list(next(iter(doc["results"].values())))))
    else:
        if len(typed) != 1:
            raise ValueError(f"--data: {path} has several data sections {list(typed)}; give a recipe of one modality")
        key = next(iter(typed))
        train, val = _labelled(config, typed, key, cfg.max_samples, path)
        doc.update(modality=key, n_train=len(train[1]), n_val=len(val[1]))
        if args.grid:
            name, encoder = next(iter(encoders.items()))
            lrs, epochs = _numbers(args.grid_lrs, "--grid-lrs"), args.grid_epochs
            epochs = [int(e) for e in _numbers(epochs, "--grid-epochs")] if epochs else None
            doc["grid"] = finetune_grid(encoder, key, train, val, cfg, lrs, epochs, progress=_progress())
            _print_grid(doc["grid"], name, len(val[1]))
        else:
            doc["results"] = compare_encoders(encoders, key, train, val, cfg, progress=_progress())
            print(
                f"\nHeld-out top-1 % on {len(val[1])} samples of {path} ({cfg.labels_per_class} labels per class: "
                f"mean ± std over {cfg.repeats} subsets)"
            )
            print(format_report(doc["results"], cfg.labels_per_class))
    if "results" in doc and len(encoders) == 2:
        doc["gains"] = report_gains(doc["results"], _CKPT, _RANDOM)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2))
        print(f"wrote {out}")
    return doc


def main(argv: list[str] | None = None) -> int:
    """``omnimask eval``'s arguments (without the command name) -> exit status 0; errors raise, and
    :func:`omnimask.cli.main` prints them as one line with the documented exit code."""
    parser = argparse.ArgumentParser(
        prog="omnimask eval", description="Evaluate a checkpoint on held-out data (docs/evaluation.md)."
    )
    add_eval_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    run_eval(args)
    return 0
