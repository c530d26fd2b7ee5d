"""Supervised fine-tuning of a pretrained encoder: the runner behind ``recipes/finetune.py``.

A fine-tuning recipe is a YAML file like a pretraining one, plus ``init`` and ``finetune``::

    init:     a pretrained omnimask directory (``final/`` of a pretraining run, or a converted
              checkpoint); null trains the ``model`` section from scratch
    model:    overrides merged onto the pretrained config (e.g. another ``target_length``, the
              fine-tuning set's ``processor`` normalisation); the whole model when ``init`` is null
    data:     {<modality key>: that modality's data config} (``train`` split with its augmentation,
              ``val`` split for the metric)
    finetune: FinetuneConfig (head, loss, layer decay, drop path, masking during training)
    optim, train: as for pretraining

The classifier is MAE's: the encoder, a pooled feature (mean of the tokens, or ``[CLS]``), a
LayerNorm and a linear head (AudioMAE, MAE). Training reuses :class:`~omnimask.training.Trainer`
(checkpoints, exact resume, DDP, bf16); the labels travel with the batch. At the end the ``val``
split is scored: top-1 accuracy for single-label sets, mean average precision for multi-label ones
(AudioSet), written to ``summary.json``.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..masking import build_masking
from ..model_config import OmniMaskConfig
from ..models import OmniMaskModel
from ..registry import ConfigError, check_keys
from ..run_config import apply_overrides, from_dict, load_yaml, to_dict
from ..training import OptimConfig, TrainConfig, Trainer
from ..training.optim import layer_decay_groups
from .common import build_dataset, data_configs, runner_main

__all__ = ["FinetuneConfig", "FinetuneRecipe", "ClassifierModel", "mean_average_precision", "run", "main"]

log = logging.getLogger("omnimask.finetune")

_LOSSES = ("ce", "bce")
_POOLS = ("mean", "cls")


@dataclass
class FinetuneConfig:
    """The ``finetune`` section.

    Attributes:
        modality: the model input to classify (default: the model's only modality).
        num_classes: classes; ``null`` reads them from the training set's labels.
        pool: ``mean`` of the modality's tokens (AudioMAE, MAE fine-tuning) or ``cls``.
        loss: ``ce`` (single label; soft targets after mixup) or ``bce`` (multi-label, AudioSet).
        label_smoothing: for ``ce`` with integer labels.
        layer_decay: lr scale ``layer_decay ** (depth + 1 - layer)`` per block (MAE: 0.75).
        drop_path: the encoder's stochastic depth while fine-tuning.
        masking: a masking config applied to the encoder's input during training only, removing
            tokens (AudioMAE's fine-tuning: ``{name: time_freq, time_ratio: 0.2, freq_ratio: 0.2}``).
        eval_batch_size: batch size for scoring ``val``.
    """

    modality: str | None = None
    num_classes: int | None = None
    pool: str = "mean"
    loss: str = "ce"
    label_smoothing: float = 0.0
    layer_decay: float = 0.75
    drop_path: float = 0.1
    masking: dict | None = None
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        if self.loss not in _LOSSES:
            raise ValueError(f"finetune.loss must be one of {_LOSSES}, got {self.loss!r}")
        if self.pool not in _POOLS:
            raise ValueError(f"finetune.pool must be one of {_POOLS}, got {self.pool!r}")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"finetune.layer_decay must be in (0, 1], got {self.layer_decay}")


@dataclass
class FinetuneRecipe:
    data: dict
    init: str | None = None
    model: dict = field(default_factory=dict)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class ClassifierOutput:
    loss: Tensor
    losses: dict[str, Tensor]
    logits: Tensor


class ClassifierModel(nn.Module):
    """Encoder -> pooled feature -> LayerNorm -> linear head, with the loss computed inside.

    ``model({key: x}, labels=y)``; ``y`` holds ints (cross-entropy) or float vectors (soft targets
    for ``ce`` after mixup, or multi-hot targets for ``bce``). The Trainer passes ``labels`` because
    :attr:`label_key` names the batch field.
    """

    label_key = "label"

    def __init__(self, encoder: OmniMaskModel, modality: str, num_classes: int, cfg: FinetuneConfig) -> None:
        super().__init__()
        if modality not in encoder.modalities:
            raise ConfigError(f"finetune.modality {modality!r} is not a model modality {encoder.modalities}")
        if cfg.pool == "cls" and encoder.cls_token is None:
            raise ConfigError("finetune.pool=cls needs a model with encoder.cls_token: true")
        self.encoder, self.modality, self.cfg = encoder, modality, cfg
        self.modalities = [modality]
        self.fc_norm = nn.LayerNorm(encoder.dim)
        self.head = nn.Linear(encoder.dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)  # MAE / AudioMAE fine-tuning
        nn.init.zeros_(self.head.bias)
        self.masking = build_masking(cfg.masking, "finetune.masking") if cfg.masking else None

    def logits(self, inputs: dict[str, Tensor]) -> Tensor:
        x = inputs[self.modality]
        tokenized = self.encoder.embed({self.modality: x})
        masks = None
        if self.training and self.masking is not None:
            t = tokenized[self.modality]  # the mask is drawn from its grid (and coordinates, for points)
            masks = {self.modality: self.masking(x.shape[0], t.grid, device=x.device, coords=t.coords).mask}
        out = self.encoder.encode_tokenized(tokenized, masks)
        feature = out.cls if self.cfg.pool == "cls" else out.hidden[self.modality].mean(dim=1)
        return self.head(self.fc_norm(feature))

    def forward(self, inputs: dict[str, Tensor], labels: Tensor | None = None) -> ClassifierOutput:
        logits = self.logits(inputs)
        loss = logits.new_zeros(()) if labels is None else self.loss(logits, labels)
        return ClassifierOutput(loss, {self.modality: loss}, logits)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        if self.cfg.loss == "bce":
            if labels.dtype != torch.float32 and not labels.is_floating_point():
                labels = F.one_hot(labels.long(), logits.shape[-1]).float()
            return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        if labels.is_floating_point():  # soft targets (mixup) or one-hot vectors
            return torch.sum(-labels.float() * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        return F.cross_entropy(logits.float(), labels.long(), label_smoothing=self.cfg.label_smoothing)


def mean_average_precision(scores: Tensor, targets: Tensor) -> float:
    """Mean over classes (with at least one positive) of the average precision, in % (AudioSet's mAP)."""
    from sklearn.metrics import average_precision_score

    t, s = targets.numpy() > 0.5, scores.numpy()
    keep = t.any(0)
    if not keep.any():
        raise ValueError("mAP: no class has a positive example in the evaluation set")
    return 100.0 * float(average_precision_score(t[:, keep], s[:, keep], average="macro"))


@torch.no_grad()
def evaluate(model: ClassifierModel, dataset: Any, batch_size: int, device: torch.device) -> dict[str, float]:
    """Top-1 accuracy (int labels) or mAP (label vectors) of ``model`` on ``dataset``, in %."""
    model.eval()
    logits, labels = [], []
    for i in range(0, len(dataset), batch_size):
        items = [dataset[j] for j in range(i, min(len(dataset), i + batch_size))]
        x = torch.stack([it[model.modality] for it in items]).to(device)
        logits.append(model.logits({model.modality: x}).float().cpu())
        labels.append(torch.stack([torch.as_tensor(it["label"]) for it in items]))
    scores, targets = torch.cat(logits), torch.cat(labels)
    if targets.is_floating_point() and targets.ndim == 2:
        return {"mAP": mean_average_precision(torch.sigmoid(scores), targets), "samples": len(targets)}
    return {"top1": 100.0 * float((scores.argmax(-1) == targets).float().mean()), "samples": len(targets)}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def build_encoder(recipe: FinetuneRecipe) -> OmniMaskModel:
    """The encoder to fine-tune: ``init``'s weights under its config merged with ``model`` (or a fresh one)."""
    if recipe.init is None:
        if not recipe.model:
            raise ConfigError("fine-tuning needs init (a pretrained model directory) or a model section")
        cfg = _merge(recipe.model, {"encoder": {"drop_path": recipe.finetune.drop_path}})
        return OmniMaskModel(OmniMaskConfig(**cfg))
    pretrained = OmniMaskModel.from_pretrained(recipe.init)
    base = {"encoder": dict(pretrained.config.encoder), "modalities": copy.deepcopy(pretrained.config.modalities)}
    cfg = _merge(_merge(base, recipe.model), {"encoder": {"drop_path": recipe.finetune.drop_path}})
    encoder = OmniMaskModel(OmniMaskConfig(**cfg))
    own = encoder.state_dict()
    theirs = pretrained.state_dict()
    changed = sorted(
        k for k in set(own) | set(theirs) if k not in own or k not in theirs or own[k].shape != theirs[k].shape
    )
    if changed:
        raise ConfigError(
            f"{recipe.init}: the model overrides change the pretrained weights' names or shapes: {changed[:8]}"
        )
    encoder.load_state_dict(theirs)
    return encoder


def load_finetune_recipe(path: str | Path, overrides: Sequence[str] = ()) -> FinetuneRecipe:
    raw = apply_overrides(load_yaml(path), list(overrides))
    check_keys(raw, FinetuneRecipe.__dataclass_fields__, f"fine-tuning recipe {path}")
    if not isinstance(raw.get("data"), dict):
        raise ConfigError(f"fine-tuning recipe {path}: section 'data' is required and must be a mapping")
    return FinetuneRecipe(
        data=raw["data"],
        init=raw.get("init"),
        model=raw.get("model") or {},
        finetune=from_dict(FinetuneConfig, raw.get("finetune") or {}, "finetune"),
        optim=from_dict(OptimConfig, raw.get("optim") or {}, "optim"),
        train=from_dict(TrainConfig, raw.get("train") or {}, "train"),
    )


def _num_classes(dataset: Any, given: int | None) -> int:
    if given is not None:
        return given
    labels = (
        [dataset.targets[i] for i in range(len(dataset))]
        if hasattr(dataset, "targets")
        else [dataset[i]["label"] for i in range(len(dataset))]
    )
    first = labels[0]
    if isinstance(first, Tensor) and first.ndim == 1:
        return int(first.shape[0])
    return int(max(int(y) for y in labels)) + 1


def run(recipe: FinetuneRecipe, resume: bool | str = False) -> dict[str, Any]:
    """Fine-tune, score ``val``, save; returns the summary (also ``summary.json``)."""
    torch.manual_seed(recipe.train.seed)
    encoder = build_encoder(recipe)
    modality = recipe.finetune.modality or (encoder.modalities[0] if len(encoder.modalities) == 1 else None)
    if modality is None:
        raise ConfigError(f"finetune.modality is required for a model with several modalities {encoder.modalities}")
    data = data_configs(encoder.config, recipe.data)
    train_set = build_dataset(encoder.config, data, modality, "train")
    val_set = build_dataset(encoder.config, data, modality, "val")
    num_classes = _num_classes(train_set, recipe.finetune.num_classes)
    model = ClassifierModel(encoder, modality, num_classes, recipe.finetune)
    groups = layer_decay_groups(model, recipe.optim.weight_decay, recipe.finetune.layer_decay)
    trainer = Trainer(model, train_set, recipe.train, recipe.optim, param_groups=groups)
    log.info(
        "fine-tuning %s: %d classes, %d training / %d held-out samples, %d steps",
        modality,
        num_classes,
        len(train_set),
        len(val_set),
        trainer.total_steps,
    )
    result = trainer.fit(resume=resume)
    summary: dict[str, Any] = {
        "steps": result.steps,
        "final_loss": result.losses[-1] if result.losses else None,
        "num_classes": num_classes,
        "skipped_samples": result.skipped,
    }
    # Every rank: an FSDP run gathers the whole classifier to rank 0 (into a fresh copy).
    whole = trainer.full_model(lambda: ClassifierModel(build_encoder(recipe), modality, num_classes, recipe.finetune))
    if whole is None:
        return summary
    model = whole  # type: ignore[assignment]
    encoder = model.encoder
    out = Path(recipe.train.output_dir)
    metrics = evaluate(model, val_set, recipe.finetune.eval_batch_size, trainer.device)
    summary["val"] = metrics
    encoder.save_pretrained(out / "final")
    torch.save(
        {
            "fc_norm": model.fc_norm.state_dict(),
            "head": model.head.state_dict(),
            "modality": modality,
            "pool": recipe.finetune.pool,
            "num_classes": num_classes,
        },
        out / "final" / "classifier_head.pt",
    )
    name, value = next(iter(metrics.items()))
    print(
        f"\nHeld-out {name}: {value:.2f} % on {metrics['samples']} samples; fine-tuned encoder and head saved to {out / 'final'}"
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "recipe.json").write_text(json.dumps(to_dict(recipe), indent=2, default=str))
    return summary


def main(argv: Sequence[str] | None = None, default_config: str | Path | None = None, prog: str | None = None) -> int:
    """``recipes/finetune.py``'s entry point: see :func:`~omnimask.runners.common.runner_main`."""
    return runner_main(
        argv,
        description="Fine-tune a pretrained omnimask encoder for classification.",
        run=lambda path, overrides, resume: run(load_finetune_recipe(path, overrides), resume=resume),
        default_config=default_config,
        prog=prog,
        resume_from=False,
    )
