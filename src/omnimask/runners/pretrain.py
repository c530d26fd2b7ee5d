"""The pretraining recipe runner shared by every ``recipes/*.py`` script.

A recipe is a YAML file with five sections, each validated strictly (a typo names the key and the
valid ones)::

    model:  OmniMaskConfig fields (encoder, modalities)
    data:   {<modality key>: that modality's data config}
    optim:  omnimask.training.OptimConfig
    train:  omnimask.training.TrainConfig
    eval:   omnimask.evaluation.EvalConfig
    visualize_every: optimizer steps between reconstruction pictures (0 = only at the end)

``data`` keys are the model's modalities or registered multi-modality sources (``pairs``); each
section is validated into its typed config when the recipe is loaded. ``run(cfg)`` pretrains, saves
the final model with ``save_pretrained`` and, when ``eval.enabled``, measures on held-out data how
much pretraining helped against the same encoder from random init.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ..data.sources import SOURCES
from ..evaluation import EvalConfig, compare_encoders, encode_dataset, format_report, random_encoder
from ..model_config import OmniMaskConfig
from ..models import OmniMaskForPreTraining, OmniMaskModel
from ..registry import ConfigError, check_keys
from ..run_config import apply_overrides, from_dict, load_yaml, to_dict
from ..training import OptimConfig, TrainConfig, Trainer, is_main
from .common import build_dataset, data_configs, runner_main
from .mixed import RunSource, build_source, mixed_datasets, parse_sources, picture_samples, source_keys
from .paired_eval import evaluate_pairs

__all__ = ["RecipeConfig", "load_recipe", "run", "main"]

log = logging.getLogger("omnimask.recipe")


@dataclass
class RecipeConfig:
    """A loaded recipe: the raw ``model`` and ``data`` sections (what ``recipe.json`` records) and
    the typed sections. :attr:`model_config` and :attr:`data_configs` are built once, on first use."""

    model: dict
    data: dict
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    visualize_every: int = 200

    @cached_property
    def model_config(self) -> OmniMaskConfig:
        """The validated, completed model config (built once per run); errors name the recipe key."""
        try:
            return OmniMaskConfig(**self.model)
        except ConfigError as err:
            text = str(err)
            raise ConfigError(text if text.startswith("model.") else f"model.{text}") from None

    @cached_property
    def data_configs(self) -> dict[str, Any]:
        """``{key: typed data config}`` for every ``data`` key (a model modality or a source); for a
        mixed run (``data.sources``) ``{"mixing": MixingConfig, "sources": [RunSource, ...]}``."""
        if "sources" in self.data:
            mixing, sources = parse_sources(self.model_config, self.data)
            return {"mixing": mixing, "sources": sources}
        return data_configs(self.model_config, self.data)


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
    check_keys(cfg.model, ("encoder", "modalities", "budget", "joint_decoder", "contrastive"), "model")
    cfg.data_configs  # noqa: B018 - validates the model and every data section now, before any work starts
    return cfg


class ReconstructionHook:
    """Saves reconstruction pictures of fixed held-out samples (fixed masks) every ``every`` steps.

    ``groups`` holds one batch per data source (``{modality: (n, ...)}``); each modality of each
    group gets ``reconstruction_<key>.png`` (``_<source>`` added when two sources share a key). It
    runs the model in eval mode under ``no_grad`` with its own generator, so it never touches the
    training RNG: a resumed run stays identical to an uninterrupted one.
    """

    def __init__(
        self, groups: list[dict[str, torch.Tensor]], every: int, out_dir: Path, names: list[str] | None = None
    ) -> None:
        self.groups, self.every, self.out_dir = groups, every, out_dir
        self.names = names or [str(i) for i in range(len(groups))]
        self.generator = torch.Generator().manual_seed(1234)
        self.masks: list[dict[str, torch.Tensor]] = []
        seen: list[str] = [k for g in groups for k in g]
        self.suffix = [{k: f"_{n}" if seen.count(k) > 1 else "" for k in g} for g, n in zip(groups, self.names)]

    def __call__(self, trainer: Trainer, step: int, out: Any) -> None:
        # A sharded model runs only when every rank calls it (FSDP gathers each block's weights).
        if self.every and step % self.every == 0 and (is_main() or trainer.sharded):
            self.save(trainer.model, step, write=is_main())

    @torch.no_grad()
    def save(self, model: OmniMaskForPreTraining, step: int, write: bool = True) -> Path | None:
        """Reconstruct the groups (every rank of a sharded model calls it; only ``write`` saves)."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        path = None
        for i, group in enumerate(self.groups):
            batch = {k: v.to(device) for k, v in group.items()}
            if len(self.masks) <= i:  # drawn once with the model's own strategies, then reused
                out = model(batch, generator=self.generator)
                self.masks.append({k: m.cpu() for k, m in out.mask.items()})
            out = model(batch, masks={k: v.to(device) for k, v in self.masks[i].items()})
            if not write:
                continue
            for key in batch:
                img = model.visualize(key, batch[key], out)
                if img is None:
                    continue
                self.out_dir.mkdir(parents=True, exist_ok=True)
                name = f"reconstruction_{key}{self.suffix[i][key]}"
                path = self.out_dir / f"{name}_step{step:08d}.png"
                img.save(path)
                img.save(self.out_dir.parent / f"{name}.png")
        model.train(was_training)
        return path


def _print_report(report: dict[str, dict[str, Any]], cfg: EvalConfig, n_val: int) -> None:
    print(
        f"\nHeld-out evaluation: top-1 % on {n_val} samples never seen in pretraining "
        f"({cfg.labels_per_class} labels per class: mean ± std over {cfg.repeats} label subsets)"
    )
    print(format_report(report, cfg.labels_per_class, gain_label="pretraining gain (points)"))


def _datasets(cfg: RecipeConfig, keys: list[str]) -> tuple[Any, Any, Any]:
    """``(training set, picture set, source spec or None)``: a multi-modality source when the data
    section names one, else the model's single modality (pictures show held-out samples when there
    is a validation split, else un-augmented training ones)."""
    config = cfg.model_config
    sources = [k for k in cfg.data_configs if k in SOURCES]
    if sources:  # one dataset yields several modalities together
        if len(sources) > 1:
            raise ConfigError(f"data: this runner trains on one dataset, got sections {list(cfg.data_configs)}")
        source = SOURCES.get(sources[0])
        src_cfg = cfg.data_configs[sources[0]]
        train_set = source.build(src_cfg, config.modalities, "train")
        try:
            return train_set, source.build(src_cfg, config.modalities, "val"), source
        except ValueError as err:
            if cfg.eval.enabled:
                raise
            log.info("reconstruction pictures use the first training samples (%s)", err)
            return train_set, _first_items(train_set, 8), source
    if len(keys) > 1:
        raise ConfigError("this runner trains on one dataset: give paired data (data.pairs), or one modality")
    train_set = build_dataset(config, cfg.data_configs, keys[0], "train")
    if cfg.eval.enabled:
        return train_set, build_dataset(config, cfg.data_configs, keys[0], "val"), None
    try:
        return train_set, build_dataset(config, cfg.data_configs, keys[0], "val"), None
    except ValueError as err:
        log.info("reconstruction pictures use training samples (%s)", err)
        return train_set, build_dataset(config, cfg.data_configs, keys[0], "train_eval"), None


def _train_and_save(
    trainer: Trainer, hook: ReconstructionHook, out_dir: Path, resume: bool | str
) -> tuple[dict[str, Any], Path | None]:
    """Train, then (rank 0) save ``final/`` and the last picture: ``(summary, final dir or None)``."""
    result = trainer.fit(resume=resume)
    summary: dict[str, Any] = {
        "steps": result.steps,
        "final_loss": result.losses[-1] if result.losses else None,
        "final_losses": trainer.last_losses,
        "samples_per_sec": result.samples_per_sec,
        **({"sources": result.sources} if result.sources else {}),
        "last_checkpoint": result.last_checkpoint,
        "skipped_samples": result.skipped,
    }
    model = trainer.full_model()  # every rank: an FSDP run gathers the whole model to rank 0
    if model is None:
        return summary, None
    final = out_dir / "final"
    model.save_pretrained(final)
    picture = hook.save(model, result.steps)
    summary.update(final_model=str(final), reconstruction=str(picture) if picture else None)
    if result.skipped:
        print(f"\nThe dataset skipped {result.skipped} unreadable sample(s) (their paths are in the warnings above)")
    return summary, final


def _first_items(dataset: Any, n: int) -> list:
    """The first ``n`` items of a dataset that streams (for pictures)."""
    items = []
    for item in dataset:
        items.append(item)
        if len(items) == n:
            break
    return items


def run(cfg: RecipeConfig, resume: bool | str = False) -> dict[str, Any]:
    """Pretrain, save, picture, evaluate. Returns a summary dict (also written to ``summary.json``)."""
    if "sources" in cfg.data_configs:
        return run_mixed(cfg, resume)
    config = cfg.model_config
    out_dir = Path(cfg.train.output_dir)
    torch.manual_seed(cfg.train.seed)
    model = OmniMaskForPreTraining(config)
    keys = list(config.modalities)
    train_set, picture_set, source = _datasets(cfg, keys)
    # Evenly spaced samples, so a class-sorted folder shows several classes.
    picks = torch.linspace(0, len(picture_set) - 1, min(8, len(picture_set))).long().tolist()
    shown = keys if source is not None else keys[:1]
    samples = {k: torch.stack([picture_set[i][k] for i in picks]) for k in shown}
    hook = ReconstructionHook([samples], cfg.visualize_every, out_dir / "reconstructions")
    trainer = Trainer(model, train_set, cfg.train, cfg.optim, hooks=[hook])
    params = sum(p.numel() for p in model.parameters())
    log.info(
        "model: %.2fM parameters; %s training samples; %d optimizer steps",
        params / 1e6,
        len(train_set) if hasattr(train_set, "__len__") else "streamed",
        trainer.total_steps,
    )
    summary, final = _train_and_save(trainer, hook, out_dir, resume)
    if final is None:
        return summary
    print(f"\nSaved the pretrained model to {final} (load it with OmniMaskForPreTraining.from_pretrained or AutoModel)")
    if summary["reconstruction"]:
        print(f"Reconstruction picture: {summary['reconstruction']}")
    if cfg.eval.enabled and source is not None:
        src_cfg = cfg.data_configs[source.name]
        train_items = _probe_items(source, src_cfg, config, cfg.eval.max_samples)
        summary["eval"] = evaluate_pairs(
            config, final, _items(picture_set, cfg.eval.max_samples), source.keys(src_cfg), cfg.train.seed, train_items
        )
    elif cfg.eval.enabled:
        key = keys[0]
        limit = cfg.eval.max_samples
        train_eval = encode_dataset(_limit(build_dataset(config, cfg.data_configs, key, "train_eval"), limit), key)
        val = encode_dataset(_limit(picture_set, limit), key)
        initial = random_encoder(config, cfg.train.seed)  # the encoder pretraining started from
        encoders = {"pretrained (omnimask)": OmniMaskModel.from_pretrained(final), "random init": initial}
        report = compare_encoders(encoders, key, train_eval, val, cfg.eval, progress=cfg.train.progress)
        _print_report(report, cfg.eval, len(val[1]))
        summary["eval"] = report
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out_dir / "recipe.json").write_text(json.dumps(to_dict(cfg), indent=2, default=str))
    return summary


def _probe_items(source: Any, src_cfg: Any, config: OmniMaskConfig, n: int | None) -> list[dict] | None:
    """The training items a joint linear probe fits on, or None when the source streams (no probe)."""
    try:
        data = source.build(src_cfg, config.modalities, "train_eval")
    except ValueError as err:  # e.g. tar shards: the training split cannot be indexed
        log.info("no joint linear probe: %s", err)
        return None
    if isinstance(data, torch.utils.data.IterableDataset) or not hasattr(data, "__len__"):
        log.info("no joint linear probe: the training data streams (%s)", type(data).__name__)
        return None
    return _items(data, n)


def _items(dataset: Any, n: int | None) -> list[dict]:
    """The (at most ``n`` evenly spaced) items of a held-out or training-eval split."""
    part = _limit(dataset, n)
    return [part[i] for i in range(len(part))]


def main(argv: Sequence[str] | None = None, default_config: str | Path | None = None, prog: str | None = None) -> int:
    """``recipes/<name>.py``'s entry point: see :func:`~omnimask.runners.common.runner_main`."""
    return runner_main(
        argv,
        description="Run an omnimask pretraining recipe.",
        run=lambda path, overrides, resume: run(load_recipe(path, overrides), resume=resume),
        default_config=default_config,
        prog=prog,
    )


def run_mixed(cfg: RecipeConfig, resume: bool | str = False) -> dict[str, Any]:
    """One model over every source of ``data.sources``; then each source's held-out evaluation of
    the mixed encoder against the same encoder at random init. Returns the summary."""
    config, out_dir = cfg.model_config, Path(cfg.train.output_dir)
    mixing, sources = cfg.data_configs["mixing"], cfg.data_configs["sources"]
    torch.manual_seed(cfg.train.seed)
    model = OmniMaskForPreTraining(config)
    dataset, plan = mixed_datasets(config, sources, mixing.mode, cfg.train.batch_size)
    hook = ReconstructionHook(
        picture_samples(config, sources), cfg.visualize_every, out_dir / "reconstructions", [s.name for s in sources]
    )
    trainer = Trainer(model, dataset, cfg.train, cfg.optim, hooks=[hook], mixing=plan)
    log.info(
        "model: %.2fM parameters; sources %s (weights %s, %s mixing); %d optimizer steps",
        sum(p.numel() for p in model.parameters()) / 1e6,
        dict(zip(dataset.names, dataset.sizes)),
        [round(w / sum(plan.weights), 3) for w in plan.weights],
        mixing.mode,
        trainer.total_steps,
    )
    summary, final = _train_and_save(trainer, hook, out_dir, resume)
    if final is None:
        return summary
    print(
        f"\nSaved the mixed model to {final}; it loads with from_pretrained and takes any subset of {list(config.modalities)}"
    )
    if cfg.eval.enabled:
        summary["eval"] = {s.name: _evaluate_source(cfg, config, final, s) for s in sources}
        _print_mixed_report(summary["eval"])
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out_dir / "recipe.json").write_text(json.dumps(to_dict(cfg), indent=2, default=str))
    return summary


def _evaluate_source(cfg: RecipeConfig, config: OmniMaskConfig, final: Path, src: RunSource) -> dict:
    """Held-out evaluation of one source: few-label probe/fine-tune for a labelled modality,
    retrieval for a paired source; pretrained encoder against the same encoder at random init."""
    keys = source_keys(src)
    print(f"\n== source {src.name!r} ({', '.join(keys)})")
    if len(keys) > 1:
        val, tr = (_items(build_source(config, src, split), cfg.eval.max_samples) for split in ("val", "train_eval"))
        return evaluate_pairs(config, final, val, keys, cfg.train.seed, tr)
    key = keys[0]
    train_eval = encode_dataset(_limit(build_source(config, src, "train_eval"), cfg.eval.max_samples), key)
    val = encode_dataset(_limit(build_source(config, src, "val"), cfg.eval.max_samples), key)
    initial = random_encoder(config, cfg.train.seed)  # before from_pretrained, which draws from the RNG
    encoders = {"pretrained (omnimask)": OmniMaskModel.from_pretrained(final), "random init": initial}
    report = compare_encoders(encoders, key, train_eval, val, cfg.eval, progress=cfg.train.progress)
    _print_report(report, cfg.eval, len(val[1]))
    return report


def _limit(dataset: Any, n: int | None) -> Any:
    """At most ``n`` evenly spaced items of ``dataset`` (all of them when ``n`` is None)."""
    if n is None or len(dataset) <= n:
        return dataset
    picks = torch.linspace(0, len(dataset) - 1, n).long().tolist()
    return torch.utils.data.Subset(dataset, picks)


def _print_mixed_report(reports: dict[str, dict]) -> None:
    """One line per source: the headline metric of the mixed encoder and of random init."""
    print("\nPer source, mixed encoder vs the same encoder at random init (held-out):")
    for name, report in reports.items():
        trained, initial = report.get("pretrained (omnimask)", {}), report.get("random init", {})
        metric = next((m for m in ("probe_few_mean", "finetune_mean", "probe_all", "i2t_R@1") if m in trained), None)
        if metric is None:
            continue
        print(f"  {name:<12} {metric:<16} {trained[metric]:6.1f}% vs {initial.get(metric, float('nan')):6.1f}%")
