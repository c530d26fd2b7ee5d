"""Tube masking (VideoMAE): one spatial mask shared by every time slice of a (t, h, w) grid."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import MASKING, MaskingStrategy, MaskSpec, spec_from_mask

__all__ = ["TubeMasking"]


@MASKING.register("tube")
class TubeMasking(MaskingStrategy):
    """Hide the same ``int(ratio * h * w)`` spatial positions in every time slice.

    The leading grid axis is time, the rest is space (a 2-D grid is a single slice). Every sample
    hides exactly ``t * int(ratio * h * w)`` tokens, VideoMAE's count (its ``TubeMaskingGenerator``
    rounds per frame, not over the whole clip). Noise-driven: ``noise`` is (B, h*w) and the
    smallest values are kept, so a fixed noise reproduces a mask exactly.
    """

    uses_noise = True

    def __init__(self, ratio: float = 0.9) -> None:
        super().__init__(ratio)

    @staticmethod
    def _split(grid: tuple[int, ...]) -> tuple[int, int]:
        if len(grid) < 2:
            raise ValueError(f"tube masking needs a (time, space...) grid of at least 2 axes, got {grid}")
        return grid[0], math.prod(grid[1:])

    def num_hidden_per_slice(self, grid: tuple[int, ...]) -> int:
        return int(self.ratio * self._split(grid)[1])

    def noise_shape(self, grid: tuple[int, ...]) -> tuple[int, ...]:
        return (self._split(grid)[1],)

    def from_noise(self, noise: Tensor, grid: tuple[int, ...]) -> MaskSpec:
        t, hw = self._split(grid)
        keep = hw - self.num_hidden_per_slice(grid)
        rank = torch.argsort(torch.argsort(noise, dim=1), dim=1)  # rank of each position's noise
        spatial = rank >= keep  # (B, hw), True = hidden
        return spec_from_mask(spatial.repeat(1, t))
