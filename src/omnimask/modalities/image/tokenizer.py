"""Image modality: non-overlapping patches, MAE's fixed 2-D sin-cos positions.

Axis legend: B batch, C channels, H/W pixels, h/w patch-grid rows/cols, p/q patch height/width.
Tokens are row-major over (h, w) and each patch vector is channel-last ``(p, q, C)``, exactly
``Conv2d(stride=kernel).flatten(2)`` order and MAE's ``patchify``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...backbone.pos_embed import interpolate_table_2d, sincos_2d_mae
from ..patches import Patch2dTokenizer

__all__ = ["ImagePatchTokenizer", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def as_model_dtype(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` cast to the model's ``dtype`` when it is floating point of another precision (float64
    from numpy, float16); anything else unchanged, for ``grid`` to reject (integer pixels must be
    normalised first)."""
    return x.to(dtype) if x.is_floating_point() and x.dtype != dtype else x


def _pair(v: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or not all(isinstance(i, int) and i > 0 for i in t):
        raise ValueError(f"image tokenizer: {name} must be a positive int or a pair of them, got {v!r}")
    return t  # type: ignore[return-value]


class ImagePatchTokenizer(Patch2dTokenizer):
    """(B, C, H, W) images -> (B, h*w, dim) patch tokens plus MAE's 2-D sin-cos positions.

    Inputs of another floating dtype (float64, float16) are cast to the model's; integer inputs are
    a ValueError (normalise the pixels first).

    Args:
        dim: encoder width.
        image_size: (H, W) the model is built for (an int means square).
        patch_size: (p, q) patch size; must divide the image size.
        in_chans: channel count C (any: 1 for grey, 3 for RGB, more for multispectral).
    """

    def __init__(
        self,
        dim: int,
        image_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 16,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.image_size = _pair(image_size, "image_size")
        self.patch_size = _pair(patch_size, "patch_size")
        if in_chans < 1:
            raise ValueError(f"image tokenizer: in_chans must be >= 1, got {in_chans}")
        for size, p, axis in zip(self.image_size, self.patch_size, ("height", "width")):
            if size % p:
                raise ValueError(f"image tokenizer: patch {axis} {p} does not divide image {axis} {size}")
        self.dim = dim
        self.channels = in_chans
        self.patch_dim = self.patch_size[0] * self.patch_size[1] * in_chans
        self.base_grid = (self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1])
        self.init_patches(in_chans, dim)

    def grid(self, x: Tensor, interpolate_pos: bool = False) -> tuple[int, int]:
        if x.ndim != 4:
            raise ValueError(f"image: expected a (batch, channels, height, width) tensor, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"image: expected a floating-point tensor, got {x.dtype} (normalise images first)")
        _, c, h, w = x.shape
        if c != self.channels:
            raise ValueError(
                f"image: the model expects {self.channels} channel(s), got {c} (input shape {tuple(x.shape)})"
            )
        if (h, w) != self.image_size:
            if not interpolate_pos:
                raise ValueError(
                    f"image: the model was built for {self.image_size[0]}x{self.image_size[1]} images, got {h}x{w}; "
                    "resize the input, or pass interpolate_pos_encoding=True to interpolate the position table"
                )
            if h % self.patch_size[0] or w % self.patch_size[1]:
                raise ValueError(f"image: size {h}x{w} is not divisible by the patch size {self.patch_size}")
        return h // self.patch_size[0], w // self.patch_size[1]

    def forward(self, x: Tensor, interpolate_pos: bool = False) -> tuple[Tensor, tuple[int, int]]:
        """Float inputs of any precision are cast to the model's dtype; integer ones are an error."""
        return super().forward(as_model_dtype(x, self.proj.weight.dtype), interpolate_pos)  # type: ignore[return-value]

    def positions(self, grid: tuple[int, ...], dim: int) -> Tensor:
        table = sincos_2d_mae(dim, self.base_grid)
        return interpolate_table_2d(table, self.base_grid, (grid[0], grid[1]))
