"""Masked mean-squared error on patch vectors, with the references' target normalisations."""

from __future__ import annotations

from torch import Tensor, nn

from .base import OBJECTIVES

__all__ = ["MaskedMSE", "TARGET_NORMS"]

#: ``none``: raw targets. ``patch``: MAE — whole patch vector, ``(t - mean) / sqrt(var + eps)``.
#: ``patch_channel``: VideoMAE — per channel over the patch, ``(t - mean) / (std + eps)``.
TARGET_NORMS = ("none", "patch", "patch_channel")


@OBJECTIVES.register("mse")
class MaskedMSE(nn.Module):
    """Mean over hidden tokens of the per-token mean squared error.

    Args:
        norm: target normalisation, one of :data:`TARGET_NORMS` (variances are unbiased, as in both references).
        eps: stabiliser (inside the sqrt for ``patch``, outside for ``patch_channel``, as the references do).
        channels: channels per patch vector (channel-last); supplied by the modality.
    """

    def __init__(self, norm: str = "none", eps: float = 1e-6, channels: int = 1) -> None:
        super().__init__()
        if norm not in TARGET_NORMS:
            raise ValueError(f"objective norm must be one of {TARGET_NORMS}, got {norm!r}")
        self.norm, self.eps, self.channels = norm, eps, channels

    def normalize_target(self, target: Tensor) -> Tensor:
        if self.norm == "patch":
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            return (target - mean) / (var + self.eps) ** 0.5
        if self.norm == "patch_channel":
            t = target.unflatten(-1, (-1, self.channels))
            t = (t - t.mean(-2, keepdim=True)) / (t.std(-2, keepdim=True) + self.eps)
            return t.flatten(-2)
        return target

    def denormalize_pred(self, pred: Tensor, target: Tensor) -> Tensor:
        """Map normalised predictions back to the target's scale using the target's statistics (for pictures)."""
        if self.norm == "patch":
            return pred * (target.var(-1, keepdim=True) + self.eps) ** 0.5 + target.mean(-1, keepdim=True)
        if self.norm == "patch_channel":
            t, p = target.unflatten(-1, (-1, self.channels)), pred.unflatten(-1, (-1, self.channels))
            return (p * (t.std(-2, keepdim=True) + self.eps) + t.mean(-2, keepdim=True)).flatten(-2)
        return pred

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """pred, target: (B, N, P); mask: (B, N) bool, True = hidden. Returns a scalar."""
        target = self.normalize_target(target.float())
        per_token = (pred.float() - target).pow(2).mean(-1)
        m = mask.to(per_token.dtype)
        return (per_token * m).sum() / m.sum().clamp_min(1.0)
