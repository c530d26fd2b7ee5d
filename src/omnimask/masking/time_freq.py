"""Time/frequency masking (AudioMAE's ``random_masking_2d``): hide whole time rows and whole
frequency columns of a (time, frequency) token grid."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import MASKING, MaskingStrategy, MaskSpec, spec_from_mask

__all__ = ["TimeFreqMasking"]


@MASKING.register("time_freq")
class TimeFreqMasking(MaskingStrategy):
    """Hide ``T - int(T * (1 - time_ratio))`` time rows and ``F - int(F * (1 - freq_ratio))``
    frequency columns of a (T, F) grid; a token is hidden when its row *or* its column is.

    Every sample keeps exactly ``int(T * (1 - time_ratio)) * int(F * (1 - freq_ratio))`` tokens:
    the cells whose row and column are both kept (AudioMAE's union mask
    ``1 - (1 - mask_t) * (1 - mask_f)``). Visible tokens keep grid order, as AudioMAE's
    ``ids_keep`` does, and so do the hidden ones in ``ids_restore``.

    Noise-driven: ``noise`` is (B, T + F); the first T values rank the time rows, the last F the
    frequency columns, and the smallest are kept (AudioMAE draws ``noise_t`` (B, T) then ``noise_f``
    (B, F), so ``cat([noise_t, noise_f], 1)`` reproduces its mask exactly).

    AudioMAE uses it in fine-tuning (``--mask_t_prob 0.2 --mask_f_prob 0.2``, tokens dropped, no
    decoder) and as the optional ``--mask_2d`` pretraining variant (main_pretrain.py defaults
    0.7 / 0.3; its published pretraining uses unstructured ``random`` 0.8 instead).

    Args:
        time_ratio: fraction of time rows hidden (``mask_t_prob``), in [0, 1).
        freq_ratio: fraction of frequency columns hidden (``mask_f_prob``), in [0, 1).

    ``ratio`` (the base class's) is the nominal hidden fraction ``1 - (1 - time_ratio) * (1 - freq_ratio)``;
    the exact count depends on the grid's shape, see :meth:`keep_counts`.
    """

    uses_noise = True

    def __init__(self, time_ratio: float = 0.2, freq_ratio: float = 0.2) -> None:
        for name, value in (("time_ratio", time_ratio), ("freq_ratio", freq_ratio)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"time_freq masking: {name} must be a number in [0, 1), got {value!r}")
        self.time_ratio, self.freq_ratio = float(time_ratio), float(freq_ratio)
        super().__init__(1.0 - (1.0 - self.time_ratio) * (1.0 - self.freq_ratio))

    @staticmethod
    def _axes(grid: tuple[int, ...]) -> tuple[int, int]:
        if len(grid) != 2:
            raise ValueError(f"time_freq masking needs a (time, frequency) grid, got {grid}")
        return grid[0], grid[1]

    def keep_counts(self, grid: tuple[int, ...]) -> tuple[int, int]:
        """(time rows, frequency columns) kept: AudioMAE's ``int(T * (1 - p))`` per axis."""
        t, f = self._axes(grid)
        return int(t * (1 - self.time_ratio)), int(f * (1 - self.freq_ratio))

    def num_keep_for_grid(self, grid: tuple[int, ...]) -> int:
        """Visible tokens per sample on ``grid`` (the base ``num_keep(N)`` is only nominal here)."""
        kt, kf = self.keep_counts(grid)
        return kt * kf

    def noise_shape(self, grid: tuple[int, ...]) -> tuple[int, ...]:
        t, f = self._axes(grid)
        return (t + f,)

    def from_noise(self, noise: Tensor, grid: tuple[int, ...]) -> MaskSpec:
        t, f = self._axes(grid)
        kt, kf = self.keep_counts(grid)
        if kt == 0 or kf == 0:
            raise ValueError(
                f"time_freq masking keeps {kt} of {t} time rows and {kf} of {f} frequency columns on grid {grid}: "
                "no token would stay visible; lower time_ratio/freq_ratio"
            )
        # rank of each row's / column's noise; ranks below the keep count are kept
        row_hidden = torch.argsort(torch.argsort(noise[:, :t], dim=1), dim=1) >= kt  # (B, T)
        col_hidden = torch.argsort(torch.argsort(noise[:, t:], dim=1), dim=1) >= kf  # (B, F)
        hidden = row_hidden[:, :, None] | col_hidden[:, None, :]
        return spec_from_mask(hidden.flatten(1))

    def __repr__(self) -> str:
        return f"TimeFreqMasking(time_ratio={self.time_ratio}, freq_ratio={self.freq_ratio})"
