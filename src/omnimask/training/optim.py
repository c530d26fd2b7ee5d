"""AdamW with MAE-style parameter groups and batch-size-scaled learning rate."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..registry import ConfigError

__all__ = [
    "OptimConfig",
    "param_groups",
    "layer_decay_groups",
    "build_optimizer",
    "resolve_lr",
    "NO_DECAY_NAMES",
    "skips_decay",
]

logger = logging.getLogger(__name__)

NO_DECAY_NAMES: tuple[str, ...] = ("cls_token", "mask_token", "pos_embed", "modality_embed")


def skips_decay(name: str, p: nn.Parameter, no_decay_names: Sequence[str] = NO_DECAY_NAMES) -> bool:
    """Biases, norm scales (at most one dim) and parameters *named* like a learned token or table.

    The name must be the parameter's own (``...cls_token``, ``...modality_embed.image``), so the
    weights of a module called ``pos_embed`` (Point-MAE's centre MLP) are still decayed.
    """
    parts = name.split(".")
    return p.ndim <= 1 or any(
        t == parts[-1] or (len(parts) > 1 and t == parts[-2] and "embed" in t) for t in no_decay_names
    )


_NON_NEGATIVE = ("optim.min_lr", "optim.weight_decay", "optim.warmup_epochs")


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule settings (the ``optim`` recipe section)."""

    base_lr: float = 1.5e-4  # lr = base_lr * effective_batch / 256 (the MAE linear scaling rule)
    lr: float | None = None  # absolute lr; overrides the base_lr scaling when set
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_epochs: float = 40.0
    clip_grad: float | None = None
    #: ``adamw`` (decoupled weight decay, MAE) or ``adam`` (weight decay added to the gradient: CAV-MAE).
    name: str = "adamw"
    #: ``cosine``: warm-up then half cosine to ``min_lr`` (MAE). ``step``: warm-up, then the lr is
    #: multiplied by ``step_gamma`` at epoch ``step_start`` and every ``step_every`` epochs after
    #: (CAV-MAE: from epoch 10, every 5, x0.5; PyTorch's MultiStepLR stepped once per epoch).
    schedule: str = "cosine"
    step_start: float = 10.0
    step_every: float = 5.0
    step_gamma: float = 0.5

    def __post_init__(self) -> None:
        # Named at the key the user wrote, before any scaling by the batch size.
        checks = {
            "optim.base_lr": (self.base_lr, self.base_lr > 0),
            "optim.lr": (self.lr, self.lr is None or self.lr > 0),
            "optim.min_lr": (self.min_lr, self.min_lr >= 0),
            "optim.weight_decay": (self.weight_decay, self.weight_decay >= 0),
            "optim.eps": (self.eps, self.eps > 0),
            "optim.warmup_epochs": (self.warmup_epochs, self.warmup_epochs >= 0),
            "optim.clip_grad": (self.clip_grad, self.clip_grad is None or self.clip_grad > 0),
        }
        for key, (value, ok) in checks.items():
            if not ok:
                raise ConfigError(
                    f"{key} must be {'non-negative' if key in _NON_NEGATIVE else 'positive'}, got {value!r}"
                )
        if self.name not in ("adamw", "adam"):
            raise ConfigError(f"optim.name must be adamw or adam, got {self.name!r}")
        if self.schedule not in ("cosine", "step"):
            raise ConfigError(f"optim.schedule must be cosine or step, got {self.schedule!r}")
        if not (self.step_every > 0 and self.step_start >= 0 and 0 < self.step_gamma <= 1):
            raise ConfigError(
                "optim.step_start must be >= 0, optim.step_every > 0 and optim.step_gamma in (0, 1]; got "
                f"{self.step_start!r}, {self.step_every!r}, {self.step_gamma!r}"
            )
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {list(self.betas)!r}")


def param_groups(
    model: nn.Module, weight_decay: float, no_decay_names: Sequence[str] = NO_DECAY_NAMES
) -> list[dict[str, Any]]:
    """Split trainable parameters into a decayed and a non-decayed group.

    Biases and norm scales (any parameter with at most one dimension) and learned tokens /
    embeddings (name contains one of ``no_decay_names``) get no weight decay: decaying them
    pulls them toward zero without regularising anything useful.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if skips_decay(name, p, no_decay_names):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # torch rejects empty groups only in some versions; dropping them is always safe.
    return [g for g in groups if g["params"]]


def layer_decay_groups(model: nn.Module, weight_decay: float, layer_decay: float) -> list[dict[str, Any]]:
    """MAE's layer-wise lr decay for a model holding an omnimask encoder as ``model.encoder``
    (a fine-tuning classifier): tokenizers, ``[CLS]`` and embeddings at layer 0, block i at i + 1,
    the final norm and everything outside the encoder (the head) at depth + 1. Each group has
    ``lr_scale = layer_decay ** (depth + 1 - layer)`` and the weight decay of :func:`skips_decay`.
    """
    depth = len(model.encoder.encoder.blocks)  # type: ignore[union-attr]
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("encoder.encoder.blocks."):
            layer = int(name.split(".")[3]) + 1
        elif name.startswith("encoder.encoder.norm") or not name.startswith("encoder."):
            layer = depth + 1
        else:
            layer = 0
        no_decay = skips_decay(name, p)
        key = (layer, no_decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "lr_scale": layer_decay ** (depth + 1 - layer),
                "weight_decay": 0.0 if no_decay else weight_decay,
            }
        groups[key]["params"].append(p)
    return list(groups.values())


def resolve_lr(cfg: OptimConfig, effective_batch: int) -> float:
    """Peak learning rate: ``cfg.lr`` if set, else ``base_lr * effective_batch / 256``."""
    if cfg.lr is not None:
        return float(cfg.lr)
    return cfg.base_lr * effective_batch / 256.0


def build_optimizer(
    model: nn.Module, cfg: OptimConfig, effective_batch: int, groups: list[dict] | None = None
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` (or the given ``groups``, e.g. with a per-group ``lr_scale``
    for layer-wise decay) with the peak lr from :func:`resolve_lr`.

    ``effective_batch`` is the number of samples per optimizer step over all processes
    (batch_size * accum_steps * world_size). The schedule later overwrites each group's lr every
    step; the value set here is the peak it scales.
    """
    if effective_batch <= 0:
        raise ValueError(f"effective_batch must be positive, got {effective_batch}")
    lr = resolve_lr(cfg, effective_batch)
    groups = param_groups(model, cfg.weight_decay) if groups is None else groups
    if not groups:
        raise ValueError("model has no trainable parameters")
    kind = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
    opt = kind(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps)  # type: ignore[arg-type]
    if cfg.lr is not None:
        logger.info("optimizer: %s lr=%.3e (absolute), effective batch %d", kind.__name__, lr, effective_batch)
    else:
        logger.info(
            "optimizer: %s lr=%.3e (base_lr %.3e x effective batch %d / 256)",
            kind.__name__,
            lr,
            cfg.base_lr,
            effective_batch,
        )
    return opt
