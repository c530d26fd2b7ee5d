"""Unstructured random masking (MAE): every token is hidden with equal probability."""

from __future__ import annotations

import math

import torch

from .base import MASKING, MaskingStrategy, MaskSpec, spec_from_noise

__all__ = ["RandomMasking"]


@MASKING.register("random")
class RandomMasking(MaskingStrategy):
    """Hide ``int(N * ratio)``-ish tokens per sample uniformly at random (MAE, AudioMAE, Point-MAE).

    Exactly MAE's algorithm: draw uniform noise, keep the ``int(N * (1 - ratio))`` smallest
    (``count="hidden"``: hide exactly ``int(N * ratio)``, Point-MAE's count).
    """

    uses_noise = True

    def __init__(self, ratio: float = 0.75, count: str = "visible") -> None:
        super().__init__(ratio, count)

    def from_noise(self, noise: torch.Tensor, grid: tuple[int, ...]) -> MaskSpec:
        return spec_from_noise(noise, self.num_keep(math.prod(grid)))
