"""Masked-token cross-entropy (BERT / M3AE text reconstruction)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import OBJECTIVES

__all__ = ["MaskedCrossEntropy"]


@OBJECTIVES.register("cross_entropy")
class MaskedCrossEntropy(nn.Module):
    """Cross-entropy between ``pred`` logits (B, N, V) and token ids ``target`` (B, N, 1) over the
    counted positions (``mask`` True: hidden and not padding), averaged over them.

    Args:
        label_smoothing: as ``torch.nn.functional.cross_entropy``.
        channels: supplied by the model (1 id per token); unused.
    """

    def __init__(self, label_smoothing: float = 0.0, channels: int = 1) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"objective label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        if pred.ndim != 3 or target.shape[:2] != pred.shape[:2]:
            raise ValueError(
                f"cross_entropy objective: expected pred (B, N, V) and target (B, N, 1), got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        if target.is_floating_point():
            raise TypeError(
                f"cross_entropy objective: targets must be token ids (an integer tensor), got {target.dtype}"
            )
        ids = target.reshape(target.shape[0], target.shape[1])
        mask = mask.to(pred.device)
        if not bool(mask.any()):  # nothing counted: a zero that keeps pred in the graph
            return pred.float().sum() * 0.0
        return F.cross_entropy(pred[mask].float(), ids[mask].long(), label_smoothing=self.label_smoothing)

    @torch.no_grad()
    def accuracy(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Share of counted positions whose most likely token is the target (masked-token accuracy)."""
        ids = target.reshape(target.shape[0], target.shape[1]).to(pred.device)
        hits = (pred.argmax(-1) == ids) & mask.to(pred.device)
        return hits.sum() / mask.sum().clamp(min=1)
