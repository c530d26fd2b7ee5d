"""How much did pretraining help? Few-label fine-tuning and a linear probe, pretrained vs random init.

Both encoders (the pretrained one and the same architecture from random initialisation) go
through exactly the same protocol, seeds and label subsets, so the difference is the pretraining:

* few-label linear probe: frozen features, logistic regression on ``labels_per_class`` labels;
* few-label fine-tuning: the whole encoder + a head trained on the same labelled subsets;
* linear probe with every training label.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..models.encoder_model import OmniMaskModel
from ..training.optim import layer_decay_groups

__all__ = [
    "EvalConfig",
    "Classifier",
    "encode_dataset",
    "finetune_accuracy",
    "linear_probe_accuracy",
    "compare_encoders",
]


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


def _shift(x: Tensor, frac: float, g: torch.Generator) -> Tensor:
    """Random per-sample translation by up to ``frac`` of the size (a light, label-safe augmentation)."""
    if frac <= 0 or x.ndim != 4:  # translation applies to (B, C, H, W) images only
        return x
    b = x.shape[0]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = (torch.rand(b, 2, generator=g) * 2 - 1) * 2 * frac
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def _param_groups(model: Classifier, lr: float, wd: float, layer_decay: float) -> list[dict]:
    """Layer-wise lr decay (MAE fine-tuning), each group's lr already scaled."""
    groups = layer_decay_groups(model, wd, layer_decay)
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    return groups


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
    """Fine-tune a copy of ``encoder`` on ``train`` and return top-1 accuracy on ``val`` (in %)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = train
    num_classes = int(max(int(y.max()), int(val[1].max())) + 1)
    model = Classifier(copy.deepcopy(encoder).train(), num_classes, modality)
    opt = torch.optim.AdamW(_param_groups(model, cfg.lr, cfg.weight_decay, cfg.layer_decay), betas=(0.9, 0.999))
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    total, warm = cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch
    step = 0
    for _ in tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            lr_factor = (
                step / max(1, warm)
                if step < warm
                else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
            )
            for group in opt.param_groups:
                group["lr"] = cfg.lr * group["lr_scale"] * lr_factor
            loss = F.cross_entropy(model(_shift(x[idx], cfg.augment_shift, g)), y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return _accuracy(model.eval(), val)


@torch.no_grad()
def _accuracy(model: Callable[[Tensor], Tensor], val: tuple[Tensor, Tensor], batch: int = 256) -> float:
    x, y = val
    correct = sum(int((model(x[i : i + batch]).argmax(-1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch))
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
