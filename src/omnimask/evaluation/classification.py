"""How much did pretraining help? Few-label fine-tuning and a linear probe, pretrained vs random init.

Both encoders (the pretrained one and the same architecture from random initialisation) go
through exactly the same protocol, seeds and label subsets, so the difference is the pretraining:

* few-label linear probe: frozen features, logistic regression on ``labels_per_class`` labels;
* few-label fine-tuning: the whole encoder + a head trained on the same labelled subsets (a
  :class:`~omnimask.training.Trainer` run: layer-wise lr decay, warm-up + cosine schedule);
* linear probe with every training label.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..models.encoder_model import OmniMaskModel
from ..training import OptimConfig, TrainConfig, Trainer
from ..training.optim import layer_decay_groups

__all__ = [
    "EvalConfig",
    "Classifier",
    "encode_dataset",
    "finetune_accuracy",
    "linear_probe_accuracy",
    "compare_encoders",
]

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """Few-label evaluation protocol (defaults sized for the embedded digits on a CPU).

    Fine-tuning gets ~50 optimizer steps per epoch-of-100-images budget: enough that the
    random-init baseline fits its training labels, so neither encoder is judged under-trained.
    """

    enabled: bool = False
    labels_per_class: int = 10
    repeats: int = 2
    epochs: int = 50
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.05
    layer_decay: float = 0.75
    warmup_epochs: int = 5
    augment_shift: float = 0.1  # random translation, fraction of the image size
    finetune: bool = True
    linear_probe: bool = True
    #: pooled feature for the probes: "cls" (MAE's linear-probe convention) or "mean" over tokens
    probe_features: str = "cls"
    seed: int = 0
    #: Evaluate on at most this many (evenly spaced) training and held-out samples: a quick check.
    max_samples: int | None = None

    def __post_init__(self) -> None:
        if self.probe_features not in ("cls", "mean"):
            raise ValueError(f"eval.probe_features must be 'cls' or 'mean', got {self.probe_features!r}")


class Classifier(nn.Module):
    """Encoder + mean-pooled tokens + LayerNorm + linear head (MAE's fine-tuning head)."""

    def __init__(self, encoder: OmniMaskModel, num_classes: int, modality: str) -> None:
        super().__init__()
        self.encoder, self.modality = encoder, modality
        self.norm = nn.LayerNorm(encoder.dim)
        self.head = nn.Linear(encoder.dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.norm(self.encoder({self.modality: x}).pooler_output))


@torch.no_grad()
def encode_dataset(dataset: Any, modality: str, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """Load a dataset of ``{modality: tensor, "label": int}`` items into two tensors (X, y)."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    items = [dataset[i] for i in range(n)]
    return torch.stack([it[modality] for it in items]), torch.tensor([int(it["label"]) for it in items])


def _shift(x: Tensor, frac: float, g: torch.Generator | None = None) -> Tensor:
    """Random per-sample translation by up to ``frac`` of the size (a light, label-safe augmentation)."""
    if frac <= 0 or x.ndim != 4:  # translation applies to (B, C, H, W) images only
        return x
    b = x.shape[0]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = (torch.rand(b, 2, generator=g) * 2 - 1) * 2 * frac
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


class _Labelled(Dataset):
    """``(x, y)`` tensors as Trainer items ``{modality: x[i] (randomly shifted), "label": y[i]}``.

    The shift draws from torch's global RNG, which the Trainer seeds per (seed, epoch, index).
    """

    def __init__(self, x: Tensor, y: Tensor, modality: str, shift: float) -> None:
        self.x, self.y, self.modality, self.shift = x, y, modality, shift

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {self.modality: _shift(self.x[i : i + 1], self.shift)[0], "label": int(self.y[i])}


@dataclass
class _Output:
    loss: Tensor
    losses: dict[str, Tensor]


class _TrainedClassifier(Classifier):
    """:class:`Classifier` in the Trainer's convention: ``model({modality: x}, labels=y).loss``."""

    label_key = "label"  # the Trainer passes ``labels=batch["label"]``

    def __init__(self, encoder: OmniMaskModel, num_classes: int, modality: str, label_smoothing: float) -> None:
        super().__init__(encoder, num_classes, modality)
        self.modalities, self.label_smoothing = [modality], label_smoothing

    def logits(self, x: Tensor) -> Tensor:
        return super().forward(x)

    def forward(self, inputs: dict[str, Tensor], labels: Tensor) -> _Output:  # type: ignore[override]
        logits = self.logits(inputs[self.modality])
        loss = F.cross_entropy(logits.float(), labels.long(), label_smoothing=self.label_smoothing)
        return _Output(loss, {self.modality: loss})


def _trainer_configs(
    cfg: EvalConfig, n: int, seed: int, output_dir: str, device: torch.device, progress: bool
) -> tuple[TrainConfig, OptimConfig]:
    """The protocol's loop and optimiser settings: AdamW (0.9, 0.999) at the absolute ``cfg.lr``,
    linear warm-up then cosine to 0, ``cfg.batch_size`` (at most the subset) per step, no logging."""
    train = TrainConfig(
        epochs=cfg.epochs,
        batch_size=min(cfg.batch_size, n),
        seed=seed,
        num_workers=0,
        output_dir=output_dir,
        log_every=0,
        checkpoint_every=0,  # the Trainer still writes a final one: output_dir is a temporary folder
        keep_checkpoints=1,
        device=str(device),
        progress=progress,
    )
    optim = OptimConfig(
        lr=cfg.lr, min_lr=0.0, weight_decay=cfg.weight_decay, betas=(0.9, 0.999), warmup_epochs=cfg.warmup_epochs
    )
    return train, optim


@contextmanager
def _quiet_training_log() -> Iterator[None]:
    """Keep the Trainer's INFO lines (optimizer, a checkpoint saved in a temporary folder) out of the report."""
    logger = logging.getLogger("omnimask.training")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def finetune_accuracy(
    encoder: OmniMaskModel,
    modality: str,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    cfg: EvalConfig,
    seed: int,
    progress: bool = False,
    desc: str = "fine-tune",
) -> float:
    """Fine-tune a copy of ``encoder`` on ``train`` and return top-1 accuracy on ``val`` (in %).

    A :class:`~omnimask.training.Trainer` run (layer-wise lr decay, warm-up + cosine schedule,
    cross-entropy with label smoothing 0.1, random shifts of images) on the encoder's device, in
    this process alone; its checkpoint goes to a temporary folder, removed afterwards. The result
    is a function of ``seed``: the head's initialisation, the data order and the augmentation.
    """
    torch.manual_seed(seed)
    x, y = train
    num_classes = int(max(int(y.max()), int(val[1].max())) + 1)
    device = next(encoder.parameters()).device
    model = _TrainedClassifier(copy.deepcopy(encoder).train(), num_classes, modality, label_smoothing=0.1)
    groups = layer_decay_groups(model, cfg.weight_decay, cfg.layer_decay)
    if progress:
        log.info("%s: %d labelled samples, %d epochs", desc, len(x), cfg.epochs)
    with _quiet_training_log(), tempfile.TemporaryDirectory(prefix="omnimask-finetune-") as tmp:
        train_cfg, optim_cfg = _trainer_configs(cfg, len(x), seed, tmp, device, progress)
        data = _Labelled(x, y, modality, cfg.augment_shift)
        Trainer(model, data, train_cfg, optim_cfg, param_groups=groups, distributed=False).fit()
    return _accuracy(model.eval().logits, val, device)


@torch.no_grad()
def _accuracy(
    model: Callable[[Tensor], Tensor], val: tuple[Tensor, Tensor], device: torch.device, batch: int = 256
) -> float:
    x, y = val
    correct = sum(
        int((model(x[i : i + batch].to(device)).argmax(-1).cpu() == y[i : i + batch]).sum())
        for i in range(0, len(x), batch)
    )
    return 100.0 * correct / len(x)


@torch.no_grad()
def _features(encoder: OmniMaskModel, modality: str, x: Tensor, kind: str = "mean", batch: int = 256) -> Tensor:
    encoder.eval()
    out = []
    for i in range(0, len(x), batch):
        o = encoder({modality: x[i : i + batch]})
        out.append(o.cls if kind == "cls" and o.cls is not None else o.pooler_output)
    return torch.cat(out)


def _probe(ftr: Tensor, ytr: Tensor, fva: Tensor, yva: Tensor) -> float:
    """Standardised features (MAE's BatchNorm without affine) + multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression

    mean, std = ftr.mean(0), ftr.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000, C=1.0)
    clf.fit(((ftr - mean) / std).numpy(), ytr.numpy())
    return 100.0 * float((clf.predict(((fva - mean) / std).numpy()) == yva.numpy()).mean())


def linear_probe_accuracy(
    encoder: OmniMaskModel, modality: str, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], kind: str = "cls"
) -> float:
    """Frozen features of ``train`` -> logistic regression -> top-1 accuracy on ``val`` (in %)."""
    return _probe(
        _features(encoder, modality, train[0], kind), train[1], _features(encoder, modality, val[0], kind), val[1]
    )


def few_label_subset(y: Tensor, per_class: int, seed: int) -> Tensor:
    """Indices of ``per_class`` examples of every class, drawn with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in sorted(set(y.tolist())):
        idx = (y == c).nonzero().squeeze(1)
        if len(idx) < per_class:
            raise ValueError(f"class {c} has only {len(idx)} examples, fewer than labels_per_class={per_class}")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(picks)


def compare_encoders(
    encoders: dict[str, OmniMaskModel],
    modality: str,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    cfg: EvalConfig,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run the protocol on every encoder with the same label subsets and seeds.

    Returns ``{name: {"finetune": [acc per subset], "finetune_mean", "probe_few": [...],
    "probe_few_mean", "probe_all"}}`` (accuracies in %, entries present as configured).
    """
    report: dict[str, dict[str, Any]] = {}
    subsets = [few_label_subset(train[1], cfg.labels_per_class, cfg.seed + r) for r in range(cfg.repeats)]
    for name, enc in encoders.items():
        entry: dict[str, Any] = {}
        if cfg.linear_probe:
            ftr, fva = (
                _features(enc, modality, train[0], cfg.probe_features),
                _features(enc, modality, val[0], cfg.probe_features),
            )
            entry["probe_few"] = [_probe(ftr[idx], train[1][idx], fva, val[1]) for idx in subsets]
            entry["probe_few_mean"] = sum(entry["probe_few"]) / len(subsets)
            entry["probe_all"] = _probe(ftr, train[1], fva, val[1])
        if cfg.finetune:
            entry["finetune"] = [
                finetune_accuracy(
                    enc,
                    modality,
                    (train[0][idx], train[1][idx]),
                    val,
                    cfg,
                    seed=cfg.seed + r,
                    progress=progress,
                    desc=f"{name}: fine-tune {r + 1}/{cfg.repeats}",
                )
                for r, idx in enumerate(subsets)
            ]
            entry["finetune_mean"] = sum(entry["finetune"]) / len(subsets)
        report[name] = entry
    return report
