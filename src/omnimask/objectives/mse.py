"""Masked mean-squared error on patch vectors, with the references' target normalisations."""

from __future__ import annotations

from collections.abc import Sequence

import torch
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
        unnormalize_input: undo the input normalisation (``x * std + mean`` per channel) before
            anything else, so targets are raw pixels; VideoMAE's target does this.
        channels, input_mean, input_std: channels per patch vector (channel-last) and the
            modality's input normalisation; supplied by the model from the modality config.
    """

    def __init__(
        self,
        norm: str = "none",
        eps: float = 1e-6,
        unnormalize_input: bool = False,
        channels: int = 1,
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if norm not in TARGET_NORMS:
            raise ValueError(f"objective norm must be one of {TARGET_NORMS}, got {norm!r}")
        self.norm, self.eps, self.channels = norm, eps, channels
        self.unnormalize_input = bool(unnormalize_input)
        if self.unnormalize_input:
            if input_mean is None or input_std is None:
                raise ValueError("objective unnormalize_input=true needs the modality's processor mean and std")
            if len(input_mean) != channels or len(input_std) != channels:
                raise ValueError(
                    f"objective unnormalize_input: processor mean/std have {len(input_mean)}/{len(input_std)} values "
                    f"for {channels} channel(s)"
                )
        # Non-persistent: derived from the config, never stored in checkpoints.
        self.register_buffer(
            "input_mean", torch.tensor(list(input_mean or [0.0] * channels), dtype=torch.float32), persistent=False
        )
        self.register_buffer(
            "input_std", torch.tensor(list(input_std or [1.0] * channels), dtype=torch.float32), persistent=False
        )

    def raw_target(self, target: Tensor) -> Tensor:
        """Patch vectors (channel-last) in the input's units, or un-normalised when configured."""
        if not self.unnormalize_input:
            return target
        t = target.unflatten(-1, (-1, self.channels))
        return (t * self.input_std.to(t.dtype) + self.input_mean.to(t.dtype)).flatten(-2)

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
        """Map predictions back to the input's units using the target's statistics (for pictures)."""
        raw = self.raw_target(target)
        if self.norm == "patch":
            out = pred * (raw.var(-1, keepdim=True) + self.eps) ** 0.5 + raw.mean(-1, keepdim=True)
        elif self.norm == "patch_channel":
            t, p = raw.unflatten(-1, (-1, self.channels)), pred.unflatten(-1, (-1, self.channels))
            out = (p * (t.std(-2, keepdim=True) + self.eps) + t.mean(-2, keepdim=True)).flatten(-2)
        else:
            out = pred
        if self.unnormalize_input:  # back from raw pixels to the normalised input space
            o = out.unflatten(-1, (-1, self.channels))
            out = ((o - self.input_mean.to(o.dtype)) / self.input_std.to(o.dtype)).flatten(-2)
        return out

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """pred, target: (B, N, P) (``target`` in input units); mask: (B, N) bool, True = counted. Returns a scalar."""
        target = self.normalize_target(self.raw_target(target.float()))
        per_token = (pred.float() - target).pow(2).mean(-1)
        m = mask.to(per_token.dtype)
        return (per_token * m).sum() / m.sum().clamp_min(1.0)
