"""Masked Chamfer distance between predicted and target point groups (Point-MAE's reconstruction loss)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..ops.geometry import chamfer_distance
from .base import OBJECTIVES

__all__ = ["MaskedChamfer", "CHAMFER_NORMS"]

#: ``l2``: Point-MAE's ``cdl2`` (pretraining default), ``d1.mean() + d2.mean()``.
#: ``l1``: ``cdl1``, ``(sqrt(d1 + eps).mean() + sqrt(d2 + eps).mean()) / 2``.
CHAMFER_NORMS = ("l2", "l1")


@OBJECTIVES.register("chamfer")
class MaskedChamfer(nn.Module):
    """Chamfer distance over the counted groups' point sets, averaged as Point-MAE does.

    Each token is a group of points flattened channel-last: ``pred`` and ``target`` are (B, N, k*C)
    with C = ``channels`` coordinates per point (3; the model injects it), so a token's vector
    unflattens to (k, C). Only tokens with ``mask`` True count. With ``d1``/``d2`` the squared
    nearest-neighbour distances pred -> target and target -> pred within each counted group
    (:func:`~omnimask.modalities.points_ops.chamfer_distance`), the loss is

    - ``l2``: ``d1.mean() + d2.mean()``,
    - ``l1``: ``(sqrt(d1 + eps).mean() + sqrt(d2 + eps).mean()) / 2``,

    where each mean runs over all points of all counted groups of the batch together (no per-sample
    or per-group weighting), exactly Point-MAE's ``loss_func(rebuild_points, gt_points)`` on the
    stacked masked groups. Prediction and target may hold different point counts per group.

    Args:
        norm: one of :data:`CHAMFER_NORMS`.
        eps: added under the square root for ``l1`` (finite gradients at coincident points;
            ``eps=0`` is Point-MAE's exact value). Unused for ``l2``.
        channels: coordinates per point (channel-last), supplied by the model.
    """

    def __init__(self, norm: str = "l2", eps: float = 1e-12, channels: int = 3) -> None:
        super().__init__()
        if norm not in CHAMFER_NORMS:
            raise ValueError(f"objective norm must be one of {CHAMFER_NORMS}, got {norm!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
            raise ValueError(f"objective eps must be a finite number >= 0, got {eps!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"objective channels must be a positive int, got {channels!r}")
        self.norm, self.eps, self.channels = norm, float(eps), channels

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}, eps={self.eps}, channels={self.channels}"

    def _check(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        if pred.ndim != 3 or target.ndim != 3:
            raise ValueError(
                f"chamfer objective: pred and target must be (B, N, P), got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        if pred.shape[:2] != target.shape[:2]:
            raise ValueError(
                f"chamfer objective: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in (B, N)"
            )
        if mask.dtype != torch.bool:
            raise TypeError(f"chamfer objective: mask must be a bool tensor (True = counted), got dtype {mask.dtype}")
        if tuple(mask.shape) != tuple(pred.shape[:2]):
            raise ValueError(
                f"chamfer objective: mask shape {tuple(mask.shape)} does not match pred's (B, N) {tuple(pred.shape[:2])}"
            )
        for name, t in (("pred", pred), ("target", target)):
            if t.shape[-1] == 0 or t.shape[-1] % self.channels:
                raise ValueError(
                    f"chamfer objective: {name}'s last dim {t.shape[-1]} is not a positive multiple of "
                    f"channels={self.channels} (groups of points flattened as (k, {self.channels}))"
                )

    def point_sets(self, x: Tensor, mask: Tensor) -> Tensor:
        """(B, N, k*C) tokens -> (M, k, C) point sets of the M counted tokens (in batch-major order)."""
        return x[mask].unflatten(-1, (-1, self.channels))

    def denormalize_pred(self, pred: Tensor, target: Tensor) -> Tensor:
        """Predictions in the target's units (for pictures): the identity, targets are not normalised."""
        return pred

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """pred, target: (B, N, k*C); mask: (B, N) bool, True = counted. Returns a scalar (0 if nothing is counted)."""
        self._check(pred, target, mask)
        dt = torch.float64 if torch.float64 in (pred.dtype, target.dtype) else torch.float32
        mask = mask.to(pred.device)
        p, t = self.point_sets(pred.to(dt), mask), self.point_sets(target.to(dt), mask)
        if p.shape[0] == 0:  # nothing counted: a zero that keeps pred in the graph
            return pred.to(dt).sum() * 0.0
        d1, d2 = chamfer_distance(p, t)
        if self.norm == "l2":
            return d1.mean() + d2.mean()
        return ((d1 + self.eps).sqrt().mean() + (d2 + self.eps).sqrt().mean()) / 2
