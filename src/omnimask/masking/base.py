"""The masking contract shared by every modality.

Polarity, stated once for the whole project: ``mask`` is bool and **True = hidden from the
encoder**. Every sample in a batch keeps the same number of tokens, so the visible set is a dense
``(B, K, D)`` tensor (MAE and VideoMAE both rely on this).

A strategy is called with the batch size and the token grid of the modality and returns a
:class:`MaskSpec`. Reproducibility comes in two forms:

* ``noise`` (B, N) with MAE's argsort semantics: the tokens with the smallest noise are kept.
  Noise-driven strategies (random) use it directly, so a run can be compared number for number
  with ``transformers``' ViTMAE ``noise=``.
* an explicit ``mask`` (B, N) bool, accepted by every strategy (see :func:`spec_from_mask`), e.g.
  made in a data loader or copied from VideoMAE's ``bool_masked_pos``.

Structure-driven strategies (block) draw from an optional ``torch.Generator`` instead of noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..registry import Registry

__all__ = ["MaskSpec", "MaskingStrategy", "MASKING", "gather_tokens", "spec_from_mask", "spec_from_noise"]

MASKING: Registry[type["MaskingStrategy"]] = Registry("masking strategy")


@dataclass
class MaskSpec:
    """Which tokens of one modality the encoder sees.

    Attributes:
        ids_keep: (B, K) indices of visible tokens, in the order they enter the encoder.
        ids_restore: (B, N) inverse permutation: ``cat(visible, hidden)[ids_restore]`` is grid order.
        mask: (B, N) bool, True = hidden from the encoder.
    """

    ids_keep: Tensor
    ids_restore: Tensor
    mask: Tensor

    @property
    def num_visible(self) -> int:
        return self.ids_keep.shape[1]

    def to(self, device: torch.device | str) -> "MaskSpec":
        return MaskSpec(self.ids_keep.to(device), self.ids_restore.to(device), self.mask.to(device))


def gather_tokens(tokens: Tensor, ids: Tensor) -> Tensor:
    """tokens (B, N, D), ids (B, K) -> (B, K, D): the tokens at ``ids``, per sample."""
    return torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def spec_from_noise(noise: Tensor, num_keep: int) -> MaskSpec:
    """MAE's random masking: keep the ``num_keep`` tokens with the smallest noise."""
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    hidden = torch.ones_like(noise, dtype=torch.bool)
    hidden[:, :num_keep] = False
    mask = torch.gather(hidden, 1, ids_restore)
    return MaskSpec(ids_shuffle[:, :num_keep], ids_restore, mask)


def spec_from_mask(mask: Tensor, where: str = "mask") -> MaskSpec:
    """Build a spec from an explicit bool mask (True = hidden); visible tokens keep grid order."""
    if mask.dtype != torch.bool:
        raise TypeError(f"{where}: expected a bool tensor (True = hidden), got dtype {mask.dtype}")
    if mask.ndim != 2:
        raise ValueError(f"{where}: expected shape (batch, tokens), got {tuple(mask.shape)}")
    visible = (~mask).sum(1)
    if visible.numel() and not bool((visible == visible[0]).all()):
        raise ValueError(
            f"{where}: every sample must hide the same number of tokens so the visible set stays "
            f"dense; visible counts per sample are {visible.tolist()}"
        )
    # A stable sort puts visible tokens (0) first, each group in ascending grid order.
    ids_shuffle = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    num_keep = int(visible[0]) if visible.numel() else 0
    return MaskSpec(ids_shuffle[:, :num_keep], ids_restore, mask)


class MaskingStrategy:
    """Base class: subclasses implement :meth:`sample` (and register under a name)."""

    #: Whether ``noise`` drives this strategy (MAE argsort semantics).
    uses_noise: bool = False

    def __init__(self, ratio: float) -> None:
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
        self.ratio = float(ratio)

    def num_keep(self, num_tokens: int) -> int:
        """Visible tokens per sample; MAE's ``int(N * (1 - ratio))``."""
        return int(num_tokens * (1 - self.ratio))

    def num_hidden(self, num_tokens: int) -> int:
        return num_tokens - self.num_keep(num_tokens)

    def __call__(
        self,
        batch_size: int,
        grid: tuple[int, ...],
        *,
        device: torch.device | str = "cpu",
        noise: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> MaskSpec:
        n = math.prod(grid)
        if mask is not None:
            if noise is not None:
                raise ValueError("pass either noise= or mask=, not both")
            if tuple(mask.shape) != (batch_size, n):
                raise ValueError(f"mask: expected shape {(batch_size, n)} for grid {grid}, got {tuple(mask.shape)}")
            return spec_from_mask(mask.to(device))
        if noise is not None:
            if not self.uses_noise:
                raise ValueError(
                    f"{type(self).__name__} is not driven by noise; pass generator= for a reproducible draw "
                    "or mask= for an explicit mask"
                )
            if tuple(noise.shape) != (batch_size, n):
                raise ValueError(f"noise: expected shape {(batch_size, n)} for grid {grid}, got {tuple(noise.shape)}")
            return spec_from_noise(noise.to(device), self.num_keep(n))
        return self.sample(batch_size, grid, device=torch.device(device), generator=generator)

    def sample(
        self, batch_size: int, grid: tuple[int, ...], *, device: torch.device, generator: torch.Generator | None
    ) -> MaskSpec:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ratio={self.ratio})"
