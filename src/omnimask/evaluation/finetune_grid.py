"""Is the fine-tuning baseline under-tuned? A small learning-rate x epochs grid.

A pretrained encoder beating a random-init one after few-label fine-tuning means little if the
random-init run simply had too few steps or the wrong learning rate. :func:`finetune_grid`
fine-tunes an encoder (normally the random-init one) on the protocol's own label subsets for every
``lr x epochs`` cell and reports, per cell:

* ``train_acc``: top-1 on its own labelled subset, un-augmented (did it fit the labels at all?);
* ``val``: top-1 on the held-out set (mean and sample standard deviation over the subsets).

Every other setting (batch size, warm-up, layer decay, augmentation, seeds, subsets) is the
protocol's (:class:`~omnimask.evaluation.EvalConfig`), so a cell is exactly what
:func:`~omnimask.evaluation.compare_encoders` would run with that ``lr`` and ``epochs``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from ..models.encoder_model import OmniMaskModel
from .classification import EvalConfig, accuracy, few_label_subset, finetune_classifier
from .stats import mean_std

__all__ = ["finetune_grid", "best_cell", "DEFAULT_GRID_LRS"]

DEFAULT_GRID_LRS = (3e-4, 1e-3, 3e-3)


def finetune_grid(
    encoder: OmniMaskModel,
    modality: str,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    cfg: EvalConfig,
    lrs: Sequence[float] = DEFAULT_GRID_LRS,
    epochs: Sequence[int] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Fine-tune ``encoder`` for every ``(lr, epochs)`` cell on ``cfg.repeats`` label subsets.

    Args:
        train: (X, y) of the whole labelled training split; the subsets are drawn from it exactly
            as :func:`~omnimask.evaluation.compare_encoders` draws them (``cfg.seed + r``).
        val: (X, y) held-out data.
        epochs: the epoch counts to try; default ``(cfg.epochs, 2 * cfg.epochs)``.

    Returns:
        One dict per cell, in ``lrs``-major order: ``{"lr", "epochs", "train_acc": [per subset],
        "train_acc_mean", "val": [per subset], "val_mean", "val_std"}`` (accuracies in %).
    """
    if not lrs:
        raise ValueError("finetune_grid: no learning rates given")
    epochs = tuple(epochs) if epochs else (cfg.epochs, 2 * cfg.epochs)
    if any(int(e) < 1 for e in epochs) or any(not lr > 0 for lr in lrs):
        raise ValueError(f"finetune_grid: epochs must be >= 1 and lrs positive, got {list(epochs)} and {list(lrs)}")
    x, y = train
    subsets = [few_label_subset(y, cfg.labels_per_class, cfg.seed + r) for r in range(cfg.repeats)]
    num_classes = int(max(int(y.max()), int(val[1].max())) + 1)
    device = next(encoder.parameters()).device
    cells = []
    for lr in lrs:
        for ep in epochs:
            cell_cfg = dataclasses.replace(cfg, lr=float(lr), epochs=int(ep))
            train_acc, val_acc = [], []
            for r, idx in enumerate(subsets):
                part = (x[idx], y[idx])
                desc = f"grid lr={lr:g} epochs={ep}: subset {r + 1}/{len(subsets)}"
                model = finetune_classifier(
                    encoder, modality, part, num_classes, cell_cfg, cfg.seed + r, progress, desc
                )
                train_acc.append(accuracy(model.logits, part, device))
                val_acc.append(accuracy(model.logits, val, device))
            val_mean, val_std = mean_std(val_acc)
            cells.append(
                {
                    "lr": float(lr),
                    "epochs": int(ep),
                    "train_acc": train_acc,
                    "train_acc_mean": mean_std(train_acc)[0],
                    "val": val_acc,
                    "val_mean": val_mean,
                    "val_std": val_std,
                }
            )
    return cells


def best_cell(cells: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The cell with the highest held-out mean (the first of equal ones: the grid's order prefers
    the smaller lr and the shorter schedule)."""
    if not cells:
        raise ValueError("best_cell: empty grid")
    return max(cells, key=lambda c: c["val_mean"])  # max keeps the first of equal keys
