"""How much did pretraining help? Few-label fine-tuning and a linear probe, pretrained vs random init.

Both encoders (the pretrained one and the same architecture from random initialisation) go
through exactly the same protocol, seeds and label subsets, so the difference is the pretraining:

* few-label linear probe: frozen features, logistic regression on ``labels_per_class`` labels;
* few-label fine-tuning: the whole encoder + a head trained on the same labelled subsets (a
  :class:`~omnimask.training.Trainer` run: layer-wise lr decay, warm-up + cosine schedule);
* linear probe with every training label.

:func:`~omnimask.evaluation.compare_encoders` (``protocol.py``) runs them, with the kNN
classifier of ``knn.py``, on every encoder.
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
    "logistic_probe_accuracy",
    "extract_features",
    "finetune_classifier",
    "few_label_subset",
    "accuracy",
]

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """Few-label evaluation protocol (defaults sized for the embedded digits on a CPU).

    The fine-tuning budget (100 epochs at lr 1e-3) comes from a grid of lr x epochs on the
    random-init encoder of the digits recipe (docs/evaluation.md): at 50 epochs it already fitted
    its 100 labels, but 100 epochs gained it 3 (lr 1e-3) to 7 (lr 3e-4) points held-out, and 200
    epochs nothing more, so neither encoder is judged under-trained.
    """

    enabled: bool = False
    labels_per_class: int = 10
    repeats: int = 2
    epochs: int = 100
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
    #: weighted kNN on the frozen features with every training label (DINO: k=20, T=0.07); k is
    #: capped at the training-set size (a --max-samples check may hold fewer than 20 samples)
    knn: bool = True
    knn_k: int = 20
    knn_temperature: float = 0.07
    seed: int = 0
    #: Evaluate on at most this many (evenly spaced) training and held-out samples: a quick check.
    max_samples: int | None = None

    def __post_init__(self) -> None:
        if self.probe_features not in ("cls", "mean"):
            raise ValueError(f"eval.probe_features must be 'cls' or 'mean', got {self.probe_features!r}")
        for name in ("labels_per_class", "repeats", "epochs", "batch_size", "knn_k"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"eval.{name} must be at least 1, got {getattr(self, name)}")
        if not self.knn_temperature > 0 or not self.lr > 0:
            raise ValueError(
                f"eval.knn_temperature and eval.lr must be positive, got {self.knn_temperature}, {self.lr}"
            )


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


def finetune_classifier(
    encoder: OmniMaskModel,
    modality: str,
    train: tuple[Tensor, Tensor],
    num_classes: int,
    cfg: EvalConfig,
    seed: int,
    progress: bool = False,
    desc: str = "fine-tune",
) -> _TrainedClassifier:
    """Fine-tune a copy of ``encoder`` + a new head on ``train``; the trained classifier, in eval mode.

    A :class:`~omnimask.training.Trainer` run (layer-wise lr decay, warm-up + cosine schedule,
    cross-entropy with label smoothing 0.1, random shifts of images) on the encoder's device, in
    this process alone; its checkpoint goes to a temporary folder, removed afterwards. The result
    is a function of ``seed``: the head's initialisation, the data order and the augmentation.
    """
    torch.manual_seed(seed)
    x, y = train
    device = next(encoder.parameters()).device
    model = _TrainedClassifier(copy.deepcopy(encoder).train(), num_classes, modality, label_smoothing=0.1)
    groups = layer_decay_groups(model, cfg.weight_decay, cfg.layer_decay)
    if progress:
        log.info("%s: %d labelled samples, %d epochs, lr %g", desc, len(x), cfg.epochs, cfg.lr)
    with _quiet_training_log(), tempfile.TemporaryDirectory(prefix="omnimask-finetune-") as tmp:
        train_cfg, optim_cfg = _trainer_configs(cfg, len(x), seed, tmp, device, progress)
        data = _Labelled(x, y, modality, cfg.augment_shift)
        Trainer(model, data, train_cfg, optim_cfg, param_groups=groups, distributed=False).fit()
    return model.eval()


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
    """Fine-tune a copy of ``encoder`` on ``train`` (:func:`finetune_classifier`) and return top-1
    accuracy on ``val`` (in %)."""
    num_classes = int(max(int(train[1].max()), int(val[1].max())) + 1)
    model = finetune_classifier(encoder, modality, train, num_classes, cfg, seed, progress, desc)
    return accuracy(model.logits, val, next(model.parameters()).device)


@torch.no_grad()
def accuracy(
    model: Callable[[Tensor], Tensor], val: tuple[Tensor, Tensor], device: torch.device, batch: int = 256
) -> float:
    """Top-1 accuracy (in %) of the logits ``model(x)`` on ``val = (x, y)``, in batches on ``device``."""
    x, y = val
    correct = sum(
        int((model(x[i : i + batch].to(device)).argmax(-1).cpu() == y[i : i + batch]).sum())
        for i in range(0, len(x), batch)
    )
    return 100.0 * correct / len(x)


@torch.no_grad()
def extract_features(encoder: OmniMaskModel, modality: str, x: Tensor, kind: str = "mean", batch: int = 256) -> Tensor:
    """(N, D) frozen features of ``x`` (N samples of one modality): the ``[CLS]`` token
    (``kind="cls"``, when the encoder has one) or the mean over the tokens (``"mean"``), batched,
    on the encoder's device (returned on the CPU). Puts the encoder in eval mode."""
    if kind not in ("cls", "mean"):
        raise ValueError(f"features: kind must be 'cls' or 'mean', got {kind!r}")
    encoder.eval()
    device = next(encoder.parameters()).device
    out = []
    for i in range(0, len(x), batch):
        o = encoder({modality: x[i : i + batch].to(device)})
        out.append((o.cls if kind == "cls" and o.cls is not None else o.pooler_output).float().cpu())
    return torch.cat(out)


def logistic_probe_accuracy(ftr: Tensor, ytr: Tensor, fva: Tensor, yva: Tensor) -> float:
    """Top-1 (in %) on ``(fva, yva)`` of a logistic regression fitted on ``(ftr, ytr)``: (N, D)
    features standardised with the training statistics (MAE's BatchNorm without affine), then
    multinomial logistic regression (``C=1``, up to 2000 iterations)."""
    from sklearn.linear_model import LogisticRegression

    if ftr.ndim != 2 or fva.ndim != 2 or ftr.shape[1] != fva.shape[1]:
        raise ValueError(f"probe: expected (N, D) and (M, D) features, got {tuple(ftr.shape)} and {tuple(fva.shape)}")
    if len(ytr) != len(ftr) or len(yva) != len(fva):
        raise ValueError(f"probe: {len(ftr)}/{len(fva)} feature rows but {len(ytr)}/{len(yva)} labels")
    ftr, fva = ftr.float(), fva.float()
    mean, std = ftr.mean(0), ftr.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000, C=1.0)
    clf.fit(((ftr - mean) / std).numpy(), ytr.numpy())
    return 100.0 * float((clf.predict(((fva - mean) / std).numpy()) == yva.numpy()).mean())


_probe = logistic_probe_accuracy  # the name runners/paired_eval.py imports


def linear_probe_accuracy(
    encoder: OmniMaskModel, modality: str, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], kind: str = "cls"
) -> float:
    """Frozen features of ``train`` -> logistic regression -> top-1 accuracy on ``val`` (in %)."""
    ftr, fva = extract_features(encoder, modality, train[0], kind), extract_features(encoder, modality, val[0], kind)
    return logistic_probe_accuracy(ftr, train[1], fva, val[1])


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
