"""Non-overlapping 2-D patches, shared by the modalities that are 2-D grids (image, audio spectrogram).

Axis legend: B batch, C channels, H/W pixels (time/frequency bins for spectrograms), h/w
patch-grid rows/cols (H/p, W/q), p/q patch height/width, D encoder width.

Tokens are row-major over the patch grid and each patch vector is channel-last ``(p, q, C)``:
exactly ``Conv2d(stride=kernel).flatten(2)`` order and MAE's ``patchify``. A subclass sets
``patch_size``, ``channels``, ``base_grid`` and ``dim``, implements ``grid`` and ``positions``, and
calls :meth:`Patch2dTokenizer.init_patches` once those are known.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn

from .base import Tokenizer

__all__ = ["Patch2dTokenizer"]


class Patch2dTokenizer(Tokenizer):
    """(B, C, H, W) -> (B, h*w, dim) patch tokens plus a fixed position table."""

    patch_size: tuple[int, int]
    dim: int

    def init_patches(self, in_chans: int, dim: int) -> None:
        """The patch projection (initialised like a Linear over the flattened patch, as MAE) and the
        position table of the base grid (a non-persistent buffer)."""
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=self.patch_size, stride=self.patch_size)
        nn.init.xavier_uniform_(self.proj.weight.view(dim, -1))
        nn.init.zeros_(self.proj.bias)
        self.register_buffer("pos_embed", self.positions(self.base_grid, dim), persistent=False)

    def forward(self, x: Tensor, interpolate_pos: bool = False) -> tuple[Tensor, tuple[int, int]]:
        grid = self.grid(x, interpolate_pos)
        tokens = rearrange(self.proj(x), "b d h w -> b (h w) d")
        pos = self.pos_embed if grid == self.base_grid else self.positions(grid, self.dim).to(tokens.device)
        return tokens + pos.to(tokens.dtype), grid  # type: ignore[return-value]

    def patchify(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, h*w, p*q*C)."""
        p, q = self.patch_size
        return rearrange(x, "b c (h p) (w q) -> b (h w) (p q c)", p=p, q=q)

    def unpatchify(self, patches: Tensor, grid: tuple[int, ...]) -> Tensor:
        """(B, h*w, p*q*C) -> (B, C, H, W); the inverse of :meth:`patchify`."""
        (gh, gw), (p, q) = grid, self.patch_size
        return rearrange(patches, "b (h w) (p q c) -> b c (h p) (w q)", h=gh, w=gw, p=p, q=q, c=self.channels)
