"""The pretraining recipe runner shared by every ``recipes/*.py`` script.

A recipe is a YAML file with five sections, each validated strictly (a typo names the key and the
valid ones)::

    model:  OmniMaskConfig fields (encoder, modalities)
    data:   {<modality key>: that modality's data config}
    optim:  omnimask.training.OptimConfig
    train:  omnimask.training.TrainConfig
    eval:   omnimask.evaluation.EvalConfig
    visualize_every: optimizer steps between reconstruction pictures (0 = only at the end)

``run(cfg)`` pretrains, saves the final model with ``save_pretrained`` and, when ``eval.enabled``,
measures on held-out data how much pretraining helped against the same encoder from random init.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from .config import apply_overrides, from_dict, load_yaml, to_dict
from .configuration import OmniMaskConfig
from .data.errors import DataReadError
from .data.pairs import PairsDataConfig, build_pairs_dataset
from .data.wrappers import RenamedKeys
from .evaluation import EvalConfig, compare_encoders, encode_dataset
from .modalities import MODALITIES
from .models import OmniMaskForPreTraining, OmniMaskModel
from .registry import ConfigError, check_keys
from .training import CheckpointError, NonFiniteLossError, OptimConfig, TrainConfig, Trainer, is_main

__all__ = ["RecipeConfig", "load_recipe", "run", "main"]

log = logging.getLogger("omnimask.recipe")


@dataclass
class RecipeConfig:
    model: dict
    data: dict
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    visualize_every: int = 200


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> RecipeConfig:
    """Read a recipe YAML, apply ``key=value`` overrides and validate every section."""
    raw = apply_overrides(load_yaml(path), list(overrides))
    check_keys(raw, RecipeConfig.__dataclass_fields__, f"recipe {path}")
    for section in ("model", "data"):
        if not isinstance(raw.get(section), dict):
            raise ConfigError(f"recipe {path}: section {section!r} is required and must be a mapping")
    cfg = RecipeConfig(
        model=raw["model"],
        data=raw["data"],
        optim=from_dict(OptimConfig, raw.get("optim") or {}, "optim"),
        train=from_dict(TrainConfig, raw.get("train") or {}, "train"),
        eval=from_dict(EvalConfig, raw.get("eval") or {}, "eval"),
        visualize_every=int(raw.get("visualize_every", 200)),
    )
    check_keys(cfg.model, ("encoder", "modalities"), "model")
    OmniMaskConfig(**cfg.model)  # validate the model section now, before any work starts
    check_keys(cfg.data, [*cfg.model.get("modalities", {"image": {}}), "pairs"], "data (keys must be model modalities, or pairs)")
    return cfg


def build_dataset(config: OmniMaskConfig, data: dict, key: str, split: str) -> Any:
    m = config.modalities[key]
    spec = MODALITIES.get(m["type"])
    if spec.build_dataset is None:
        raise ConfigError(f"modality type {m['type']!r} has no dataset reader yet")
    ds = spec.build_dataset(data.get(key) or {}, m, split)
    return ds if key == m["type"] else RenamedKeys(ds, {m["type"]: key})


class ReconstructionHook:
    """Saves a reconstruction picture of fixed held-out samples (fixed masks) every ``every`` steps.

    It runs the model in eval mode under ``no_grad`` with its own generator, so it never touches
    the training RNG: a resumed run stays identical to an uninterrupted one.
    """

    def __init__(self, samples: dict[str, torch.Tensor], every: int, out_dir: Path) -> None:
        self.samples, self.every, self.out_dir = samples, every, out_dir
        self.generator = torch.Generator().manual_seed(1234)
        self.masks: dict[str, torch.Tensor] = {}

    def __call__(self, trainer: Trainer, step: int, out: Any) -> None:
        if self.every and step % self.every == 0 and is_main():
            self.save(trainer.model, step)

    @torch.no_grad()
    def save(self, model: OmniMaskForPreTraining, step: int) -> Path | None:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in self.samples.items()}
        if not self.masks:  # drawn once with the model's own strategies, then reused for every picture
            tokens = model.omnimask.embed(batch)
            self.masks = {
                k: model.maskings[k](t.tokens.shape[0], t.grid, generator=self.generator, coords=t.coords).mask for k, t in tokens.items()
            }
        out = model(batch, masks={k: v.to(device) for k, v in self.masks.items()})
        model.train(was_training)
        path = None
        for key in batch:
            img = model.visualize(key, batch[key], out)
            if img is None:
                continue
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = self.out_dir / f"reconstruction_{key}_step{step:08d}.png"
            img.save(path)
            img.save(self.out_dir.parent / f"reconstruction_{key}.png")
        return path


def _print_report(report: dict[str, dict[str, Any]], cfg: EvalConfig, n_val: int) -> None:
    k = cfg.labels_per_class
    print(f"\nHeld-out evaluation: top-1 % on {n_val} samples never seen in pretraining "
          f"({k} labels per class: mean of {cfg.repeats} label subsets)")
    cols = [("probe_few_mean", f"probe, {k}/class"), ("finetune_mean", f"fine-tune, {k}/class"), ("probe_all", "probe, all labels")]
    cols = [(key, title) for key, title in cols if any(key in r for r in report.values())]
    print(f"  {'encoder':<24}" + "".join(f"{title:>22}" for _, title in cols))
    for name, r in report.items():
        print(f"  {name:<24}" + "".join(f"{r[key]:>21.1f}%" if key in r else f"{'-':>22}" for key, _ in cols))
    names = list(report)
    if len(names) == 2:
        a, b = report[names[0]], report[names[1]]
        gains = ", ".join(f"{title} {a[key] - b[key]:+.1f}" for key, title in cols if key in a and key in b)
        print(f"  pretraining gain (points): {gains}")


def run(cfg: RecipeConfig, resume: bool | str = False) -> dict[str, Any]:
    """Pretrain, save, picture, evaluate. Returns a summary dict (also written to ``summary.json``)."""
    config = OmniMaskConfig(**cfg.model)
    out_dir = Path(cfg.train.output_dir)
    torch.manual_seed(cfg.train.seed)
    model = OmniMaskForPreTraining(config)
    keys = list(config.modalities)
    pairs = from_dict(PairsDataConfig, cfg.data["pairs"], "data.pairs") if "pairs" in cfg.data else None
    if pairs is not None:  # one dataset yields image and caption together
        train_sets = [build_pairs_dataset(pairs, config.modalities, "train")]
        picture_set = build_pairs_dataset(pairs, config.modalities, "val")
    else:
        train_sets = [build_dataset(config, cfg.data, k, "train") for k in keys]
        if len(train_sets) > 1:
            raise ConfigError("this runner trains on one dataset: give paired data (data.pairs), or one modality")
        # Pictures show held-out samples when there is a validation split, else un-augmented training ones.
        if cfg.eval.enabled:
            picture_set = build_dataset(config, cfg.data, keys[0], "val")
        else:
            try:
                picture_set = build_dataset(config, cfg.data, keys[0], "val")
            except ValueError as err:
                log.info("reconstruction pictures use training samples (%s)", err)
                picture_set = build_dataset(config, cfg.data, keys[0], "train_eval")
    # Evenly spaced samples, so a class-sorted folder shows several classes.
    picks = torch.linspace(0, len(picture_set) - 1, min(8, len(picture_set))).long().tolist()
    shown = keys if pairs is not None else keys[:1]
    samples = {k: torch.stack([picture_set[i][k] for i in picks]) for k in shown}
    hook = ReconstructionHook(samples, cfg.visualize_every, out_dir / "reconstructions")
    trainer = Trainer(model, train_sets[0], cfg.train, cfg.optim, hooks=[hook])
    params = sum(p.numel() for p in model.parameters())
    log.info("model: %.2fM parameters; %d training samples; %d optimizer steps", params / 1e6, len(train_sets[0]), trainer.total_steps)
    result = trainer.fit(resume=resume)
    summary: dict[str, Any] = {"steps": result.steps, "final_loss": result.losses[-1] if result.losses else None,
                               "samples_per_sec": result.samples_per_sec, "last_checkpoint": result.last_checkpoint,
                               "skipped_samples": result.skipped}
    if not is_main():
        return summary
    final = out_dir / "final"
    model.save_pretrained(final)
    picture = hook.save(model, result.steps)
    summary.update(final_model=str(final), reconstruction=str(picture) if picture else None)
    if result.skipped:
        print(f"\nThe dataset skipped {result.skipped} unreadable sample(s) (their paths are in the warnings above)")
    print(f"\nSaved the pretrained model to {final} (load it with OmniMaskForPreTraining.from_pretrained or AutoModel)")
    if picture:
        print(f"Reconstruction picture: {picture}")
    if cfg.eval.enabled and pairs is not None:
        summary["eval"] = _evaluate_pairs(cfg, config, final, picture_set, pairs)
    elif cfg.eval.enabled:
        key = keys[0]
        train_eval = encode_dataset(build_dataset(config, cfg.data, key, "train_eval"), key)
        val = encode_dataset(picture_set, key)
        # Re-seeding and building the encoder first reproduces the exact encoder pretraining started
        # from (OmniMaskForPreTraining builds its OmniMaskModel before anything else).
        torch.manual_seed(cfg.train.seed)
        initial = OmniMaskModel(config)
        encoders = {"pretrained (omnimask)": OmniMaskModel.from_pretrained(final), "random init": initial}
        report = compare_encoders(encoders, key, train_eval, val, cfg.eval, progress=cfg.train.progress)
        _print_report(report, cfg.eval, len(val[1]))
        summary["eval"] = report
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out_dir / "recipe.json").write_text(json.dumps(to_dict(cfg), indent=2, default=str))
    return summary


def _evaluate_pairs(cfg: RecipeConfig, config: OmniMaskConfig, final: Path, val_set: Any, pairs: PairsDataConfig) -> dict:
    """Held-out image <-> text retrieval (each modality encoded alone, mean-pooled) and text-only
    masked-token accuracy, for the pretrained model against the model it started from."""
    from .evaluation import compare_retrieval, masked_token_accuracy

    items = [val_set[i] for i in range(len(val_set))]
    images = torch.stack([it[pairs.image] for it in items])
    texts = torch.stack([it[pairs.text] for it in items])
    torch.manual_seed(cfg.train.seed)
    initial = OmniMaskForPreTraining(config)
    trained = OmniMaskForPreTraining.from_pretrained(final)
    models = {"pretrained (omnimask)": trained, "random init": initial}
    report = compare_retrieval({k: m.omnimask for k, m in models.items()}, images, texts, pairs.image, pairs.text)
    for name, m in models.items():
        report[name]["masked_token_acc"] = masked_token_accuracy(m, pairs.text, texts, seed=cfg.eval.seed)
        report[name]["masked_token_acc_with_image"] = masked_token_accuracy(
            m, pairs.text, texts, seed=cfg.eval.seed, context={pairs.image: images}
        )
    print(f"\nHeld-out retrieval on {len(images)} image-caption pairs (each modality encoded alone, mean-pooled, cosine):")
    cols = ["i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10"]
    print(f"  {'encoder':<24}" + "".join(f"{c:>10}" for c in cols) + f"{'masked-token acc: text alone':>30}{'with the image':>16}")
    for name, r in report.items():
        print(f"  {name:<24}" + "".join(f"{r[c]:>9.1f}%" for c in cols)
              + f"{r['masked_token_acc']:>29.1f}%{r['masked_token_acc_with_image']:>15.1f}%")
    return report


def _find_config(path: str | Path) -> Path:
    """A config path as given, or relative to the recipes folder (as ``omnimask list`` prints them)."""
    p = Path(path)
    if p.is_file() or p.is_absolute():
        return p
    from .cli import recipes_dir

    try:
        alt = recipes_dir() / p
    except FileNotFoundError:
        return p
    return alt if alt.is_file() else p


def main(argv: Sequence[str] | None = None, default_config: str | Path | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Run an omnimask pretraining recipe.")
    parser.add_argument("--config", default=default_config, required=default_config is None, help="recipe YAML")
    parser.add_argument("--resume", action="store_true", help="continue exactly from the latest checkpoint in train.output_dir")
    parser.add_argument("--resume-from", default=None, metavar="DIR", help="continue from this checkpoint directory")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=5 optim.base_lr=1e-3")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        cfg = load_recipe(_find_config(args.config), args.overrides)
        run(cfg, resume=args.resume_from or args.resume)
    except DataReadError as err:
        if os.environ.get("OMNIMASK_DEBUG"):
            raise
        print(f"error: {err}\n(set data.<modality>.on_error=skip to skip unreadable files and count them)", file=sys.stderr)
        return 2
    except (ConfigError, KeyError, FileNotFoundError, ValueError, CheckpointError) as err:
        if os.environ.get("OMNIMASK_DEBUG"):  # show the traceback when chasing a bug
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"training stopped: {err}", file=sys.stderr)
        return 1
    return 0
