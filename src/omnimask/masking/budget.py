"""Masking across modalities: a fixed token budget split by a Dirichlet draw, and ratio schedules.

**Budget** (MultiMAE, 4M). For a batch carrying several modalities, the number of visible tokens
per sample is fixed (``visible``) and split across the modalities by a draw from
``Dirichlet(alpha)``; the reconstructed tokens (``target``) get their own split from
``Dirichlet(target_alpha)`` among each modality's hidden tokens. 4M's mixture of Dirichlets is a
list of ``{alpha, target_alpha, weight}`` components, one drawn per batch. A concentration of 0
gives a modality no share: ``alpha: {image: 1, text: 0}, target_alpha: {image: 0, text: 1}``
hides the caption entirely and reconstructs it from the image (cross-modal prediction).

The split is drawn once per batch (every sample of the batch shares it), so every modality keeps a
dense ``(B, K_m)`` visible set and the encoder sees exactly ``visible`` tokens per sample; over
batches the mean split follows ``alpha``. MultiMAE draws per sample, which needs ragged visible
sets; we trade that per-sample variety for dense batches.

**Schedules**. A modality's mask ratio may follow training progress (``mask_schedule``): constant,
or a linear or cosine ramp from ``start`` to ``end`` over the ``ramp`` window of training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..registry import ConfigError

__all__ = ["BudgetConfig", "RatioSchedule", "SCHEDULE_SHAPES", "split_budget", "draw_budget", "set_ratio"]

SCHEDULE_SHAPES = ("constant", "linear", "cosine")


@dataclass
class RatioSchedule:
    """``modalities.<m>.mask_schedule``: the mask ratio as a function of training progress p in [0, 1].

    ``constant`` keeps ``start``; ``linear``/``cosine`` go from ``start`` at ``ramp[0]`` to ``end``
    at ``ramp[1]`` (fractions of training) and hold ``end`` after it.
    """

    shape: str = "linear"
    start: float = 0.75
    end: float = 0.75
    ramp: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.shape not in SCHEDULE_SHAPES:
            raise ConfigError(f"mask_schedule.shape must be one of {SCHEDULE_SHAPES}, got {self.shape!r}")
        for key in ("start", "end"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"mask_schedule.{key} must be a mask ratio in [0, 1), got {value!r}")
        a, b = self.ramp
        if not 0.0 <= a < b <= 1.0:
            raise ConfigError(f"mask_schedule.ramp must be [from, to] with 0 <= from < to <= 1, got {list(self.ramp)}")

    def at(self, progress: float) -> float:
        if self.shape == "constant":
            return self.start
        a, b = self.ramp
        t = min(max((progress - a) / (b - a), 0.0), 1.0)
        if self.shape == "cosine":
            t = 0.5 * (1.0 - math.cos(math.pi * t))
        return self.start + (self.end - self.start) * t


def set_ratio(strategy: Any, ratio: float, where: str) -> None:
    """Set a strategy's mask ratio (a dual strategy's encoder ratio); named error if it has none."""
    target = getattr(strategy, "encoder", strategy)
    if not hasattr(target, "ratio"):
        raise ConfigError(f"{where}: {type(target).__name__} has no single mask ratio to schedule")
    target.ratio = float(ratio)


@dataclass
class BudgetConfig:
    """``budget`` in the model config.

    Attributes:
        visible: encoder tokens per sample over the budget's modalities.
        target: reconstructed tokens per sample (``null``: every hidden token).
        alpha: Dirichlet concentration, one number or ``{modality: number}`` (0 = no share).
        target_alpha: the same for the target split (default: ``alpha``).
        mixture: 4M's mixture: a list of ``{alpha, target_alpha, weight}``; one component per batch.
        modalities: which modalities share the budget (default: all of the model's).
    """

    visible: int
    target: int | None = None
    alpha: Any = 1.0
    target_alpha: Any = None
    mixture: list = field(default_factory=list)
    modalities: list | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.visible, int) or self.visible < 1:
            raise ConfigError(f"budget.visible must be a positive number of tokens, got {self.visible!r}")
        if self.target is not None and (not isinstance(self.target, int) or self.target < 1):
            raise ConfigError(f"budget.target must be null or a positive number of tokens, got {self.target!r}")
        for i, comp in enumerate(self.mixture):
            if (
                not isinstance(comp, dict)
                or not set(comp) <= {"alpha", "target_alpha", "weight"}
                or "alpha" not in comp
            ):
                raise ConfigError(f"budget.mixture[{i}] must be {{alpha, target_alpha, weight}}, got {comp!r}")
            if float(comp.get("weight", 1.0)) <= 0:
                raise ConfigError(f"budget.mixture[{i}].weight must be positive, got {comp['weight']!r}")

    def components(self) -> list[tuple[Any, Any, float]]:
        if not self.mixture:
            return [(self.alpha, self.alpha if self.target_alpha is None else self.target_alpha, 1.0)]
        return [(c["alpha"], c.get("target_alpha", c["alpha"]), float(c.get("weight", 1.0))) for c in self.mixture]

    def check(self, counts: dict[str, int], where: str = "budget") -> None:
        """Named errors for a budget the modalities cannot hold, or alphas naming other modalities."""
        total = sum(counts.values())
        if self.visible > total:
            raise ConfigError(f"{where}.visible is {self.visible} but the modalities {counts} hold {total} tokens")
        if self.target is not None and self.visible + self.target > total:
            raise ConfigError(
                f"{where}: visible {self.visible} + target {self.target} exceed the {total} tokens of {counts}"
            )
        for alpha, t_alpha, _ in self.components():
            for name, a in (("alpha", alpha), ("target_alpha", t_alpha)):
                _alphas(a, list(counts), f"{where}.{name}")


def _alphas(alpha: Any, names: list[str], where: str) -> np.ndarray:
    if isinstance(alpha, dict):
        stray = [k for k in alpha if k not in names]
        if stray:
            raise ConfigError(f"{where} names {stray}, which are not budget modalities {names}")
        values = [float(alpha.get(n, 1.0)) for n in names]
    else:
        values = [float(alpha)] * len(names)
    if any(v < 0 or not math.isfinite(v) for v in values) or not any(v > 0 for v in values):
        raise ConfigError(f"{where} must be non-negative and not all zero, got {alpha!r}")
    return np.asarray(values)


def split_budget(total: int, shares: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Integers summing exactly to ``total``, close to ``shares * total``, each at most its cap.

    Floors first; the remainder goes to the largest fractional parts among modalities with room
    and a positive share, then to any modality with room."""
    want = shares * total
    out = np.minimum(np.floor(want).astype(np.int64), caps)
    order = np.argsort(-(want - np.floor(want)), kind="stable")
    while out.sum() < total:
        room = out < caps
        pick = [i for i in order if room[i] and shares[i] > 0] or [i for i in order if room[i]]
        if not pick:
            raise ValueError(f"cannot place {total} tokens in caps {caps.tolist()}")
        out[pick[0]] += 1
        order = np.roll(order, -1)
    return out


def draw_budget(
    cfg: BudgetConfig, counts: dict[str, int], generator: torch.Generator | None = None
) -> tuple[dict[str, int], dict[str, int] | None]:
    """One batch's split: ``({m: visible tokens}, {m: target tokens} or None)``; sums are exact."""
    names = list(counts)
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    rng = np.random.default_rng(seed)
    comps = cfg.components()
    weights = np.asarray([w for _, _, w in comps])
    alpha, t_alpha, _ = comps[int(rng.choice(len(comps), p=weights / weights.sum()))]
    caps = np.asarray([counts[n] for n in names], dtype=np.int64)
    visible = split_budget(cfg.visible, _dirichlet(rng, _alphas(alpha, names, "budget.alpha")), caps)
    if cfg.target is None:
        return dict(zip(names, visible.tolist())), None
    t_share = _dirichlet(rng, _alphas(t_alpha, names, "budget.target_alpha"))
    target = split_budget(cfg.target, t_share, caps - visible)
    return dict(zip(names, visible.tolist())), dict(zip(names, target.tolist()))


def _dirichlet(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """A Dirichlet draw where a zero concentration means a zero share."""
    share = np.zeros(len(alpha))
    live = alpha > 0
    share[live] = rng.dirichlet(alpha[live])
    return share
