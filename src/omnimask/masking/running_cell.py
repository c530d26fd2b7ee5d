"""Running-cell masking (VideoMAE V2's decoder masking): a 2x2 cell pattern that shifts over time."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import MASKING, MaskingStrategy, MaskSpec, spec_from_mask

__all__ = ["RunningCellMasking"]


@MASKING.register("running_cell")
class RunningCellMasking(MaskingStrategy):
    """Hide ``int(4 * ratio)`` of every 2x2 spatial cell, the pattern advancing one step per time slice.

    The cell is the queue ``[1] * m + [0] * (4 - m)`` (1 = hidden), read from a rotating pointer and
    laid out row-major as 2x2, tiled over the (h, w) grid. Slice ``i`` of a sample whose start phase
    is ``p`` uses pointer ``(p + i + 1) % 4`` (VideoMAE V2 advances the pointer before reading).
    So over any 2 consecutive slices every position is seen at least once (for ``ratio`` 0.5).
    The phase is drawn per sample; noise is (B, 1), phase ``floor(4 * u)``.

    As VideoMAE V2's decoder mask (see the ``dual`` strategy), True means *not* reconstructed.
    Requires even h and w and ``1 <= int(4 * ratio) <= 3``.
    """

    uses_noise = True

    def __init__(self, ratio: float = 0.5) -> None:
        super().__init__(ratio)
        self.hidden_per_cell = int(4 * self.ratio)
        if not 0 < self.hidden_per_cell < 4:
            raise ValueError(
                f"running_cell masking hides int(4 * ratio) of 4 cell positions, which must be 1..3; ratio {ratio} gives {self.hidden_per_cell}"
            )
        self._maps: dict[tuple[int, ...], Tensor] = {}  # grid -> maps(grid); drawn for every sample or batch

    def maps(self, grid: tuple[int, ...]) -> Tensor:
        """(4, N) bool: the mask for each start phase over the flattened grid (computed once per grid)."""
        key = tuple(grid)
        if key not in self._maps:
            self._maps[key] = self._build_maps(key)
        return self._maps[key]

    def _build_maps(self, grid: tuple[int, ...]) -> Tensor:
        if len(grid) == 2:
            grid = (1, *grid)
        if len(grid) != 3:
            raise ValueError(f"running_cell masking needs a (time, height, width) grid, got {grid}")
        t, h, w = grid
        if h % 2 or w % 2:
            raise ValueError(
                f"running_cell masking tiles 2x2 cells, so the grid height and width must be even; got {h}x{w}"
            )
        queue = torch.tensor([True] * self.hidden_per_cell + [False] * (4 - self.hidden_per_cell))
        out = torch.empty(4, t, h, w, dtype=torch.bool)
        for phase in range(4):
            for i in range(t):
                cell = queue[(torch.arange(4) + phase + i + 1) % 4].reshape(2, 2)
                out[phase, i] = cell.repeat(h // 2, w // 2)
        return out.reshape(4, -1)

    def noise_shape(self, grid: tuple[int, ...]) -> tuple[int, ...]:
        return (1,)

    def from_noise(self, noise: Tensor, grid: tuple[int, ...]) -> MaskSpec:
        if math.prod(grid) == 0:
            raise ValueError(f"empty grid {grid}")
        phase = (noise[:, 0] * 4).long().clamp(0, 3)
        return spec_from_mask(self.maps(grid).to(noise.device)[phase])
