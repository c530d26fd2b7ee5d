"""Non-overlapping 2-D patches, shared by the modalities that are 2-D grids (image, audio spectrogram).

Tokens are row-major over the patch grid and each patch vector is channel-last ``(p, q, C)``:
exactly ``Conv2d(stride=kernel).flatten(2)`` order and MAE's ``patchify``. A subclass sets
``patch_size``, ``channels``, ``base_grid`` and ``dim``, implements ``grid`` and ``positions``, and
calls :meth:`Patch2dTokenizer.init_patches` once those are known.
"""

from __future__ import annotations

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
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        pos = self.pos_embed if grid == self.base_grid else self.positions(grid, self.dim).to(tokens.device)
        return tokens + pos.to(tokens.dtype), grid  # type: ignore[return-value]

    def patchify(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        p, q = self.patch_size
        x = x.reshape(b, c, h // p, p, w // q, q).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // q), p * q * c)

    def unpatchify(self, patches: Tensor, grid: tuple[int, ...]) -> Tensor:
        b = patches.shape[0]
        (gh, gw), (p, q) = grid, self.patch_size
        x = patches.reshape(b, gh, gw, p, q, self.channels).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, self.channels, gh * p, gw * q)
