"""Spatially contiguous masking over tokens with coordinates (Point-MAE's ``block`` mask).

Tokens such as point groups have no grid neighbourhood, only coordinates (their centres). This
strategy picks one token per sample as the seed and hides the ``int(N * ratio)`` tokens nearest
to it (the seed included), so the hidden region is one contiguous blob of the shape.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import MASKING, MaskingStrategy, MaskSpec, spec_from_mask

__all__ = ["NearestBlockMasking"]


@MASKING.register("nearest_block")
class NearestBlockMasking(MaskingStrategy):
    """Hide the tokens nearest (Euclidean, in ``coords``) to a random seed token.

    Reproducible from noise: ``noise`` (B, N) uniform, the seed is the token with the **smallest**
    noise (a uniform pick, like Point-MAE's ``random.randint``). Distance ties are broken by the
    lower token index. Visible tokens keep their original order.

    Args:
        ratio: fraction hidden; the count follows ``count`` (default ``"hidden"``: exactly
            ``int(N * ratio)``, Point-MAE's ``mask_num``).
        count: see :class:`~omnimask.masking.base.MaskingStrategy`.
    """

    uses_noise = True
    needs_coords = True

    def __init__(self, ratio: float = 0.6, count: str = "hidden") -> None:
        super().__init__(ratio, count)

    def from_noise(self, noise: Tensor, grid: tuple[int, ...], coords: Tensor | None = None) -> MaskSpec:
        if coords is None:
            raise ValueError("nearest_block masking needs the tokens' coordinates (coords=)")
        n = math.prod(grid)
        seed = noise.argmin(dim=1)  # (B,)
        centre = torch.gather(coords, 1, seed.view(-1, 1, 1).expand(-1, 1, coords.shape[-1]))
        dist = (coords.float() - centre.float()).pow(2).sum(-1)  # (B, N) squared distances to the seed
        order = torch.argsort(dist, dim=1, stable=True)
        num_hidden = n - self.num_keep(n)
        mask = torch.zeros_like(dist, dtype=torch.bool)
        mask.scatter_(1, order[:, :num_hidden], True)
        return spec_from_mask(mask)
