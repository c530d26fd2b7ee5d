"""Per-iteration learning-rate schedule: linear warm-up, then half-cycle cosine (as in MAE), or
step decay (CAV-MAE's MultiStepLR).

The schedule is a pure function of the fractional epoch (optimizer_step / steps_per_epoch), so a
resumed run recomputes exactly the lr the uninterrupted run used; no scheduler state to save.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["lr_at", "step_lr_at", "schedule_lr", "apply_lr"]


def lr_at(epoch: float, base: float, min_lr: float, warmup_epochs: float, epochs: float) -> float:
    """Learning rate at fractional ``epoch``.

    Rises linearly from 0 to ``base`` over ``warmup_epochs``, then follows a half cosine from
    ``base`` down to ``min_lr`` at ``epochs`` (and stays there beyond it).
    """
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return base * epoch / warmup_epochs
    span = epochs - warmup_epochs
    if span <= 0:
        return base if epoch < epochs else min_lr
    progress = min(max((epoch - warmup_epochs) / span, 0.0), 1.0)
    return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_lr_at(epoch: float, base: float, warmup_epochs: float, start: float, every: float, gamma: float) -> float:
    """Linear warm-up over ``warmup_epochs``, then ``base`` times ``gamma`` for every milestone
    ``start, start + every, ...`` reached by the epoch the step is in (a scheduler stepped at the end
    of each epoch, as CAV-MAE's ``MultiStepLR(milestones=range(10, 1000, 5), gamma=0.5)``)."""
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return base * epoch / warmup_epochs
    whole = math.floor(epoch + 1e-9)
    passed = 0 if whole < start else 1 + math.floor((whole - start) / every + 1e-9)
    return base * gamma**passed


def schedule_lr(optim: object, epoch: float, base: float, epochs: float) -> float:
    """The lr at fractional ``epoch`` under ``optim`` (an :class:`~omnimask.training.OptimConfig`)."""
    o: Any = optim
    if o.schedule == "step":
        return step_lr_at(epoch, base, o.warmup_epochs, o.step_start, o.step_every, o.step_gamma)
    return lr_at(epoch, base, o.min_lr, o.warmup_epochs, epochs)


def apply_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr, honouring an optional per-group ``lr_scale`` (layer-wise decay)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
