"""Video modality: non-overlapping space-time tubes (VideoMAE), fixed sin-cos positions.

Axis legend: B batch, C channels, T frames, H/W pixels; t/h/w the tube grid (T/ts, H/p, W/q);
ts/p/q the tubelet's frames, height and width; D encoder width.

Clips are (B, C, T, H, W), the ``Conv3d`` layout of the official VideoMAE (transformers' VideoMAE
takes (B, T, C, H, W): permute with ``x.transpose(1, 2)``). Tokens are row-major over (t, h, w) and
each tube vector is channel-last ``(ts, p, q, C)``, exactly ``Conv3d(stride=kernel).flatten(2)``
order and VideoMAE's target layout.
"""

from __future__ import annotations

from einops import rearrange, repeat
from torch import Tensor, nn

from ...backbone.pos_embed import interpolate_table_3d, sincos_1d_interleaved, sincos_3d_separable
from ..base import Tokenizer
from ..image.tokenizer import _pair, as_model_dtype

__all__ = ["VideoTubeTokenizer", "POS_EMBEDS"]

#: ``sincos_1d``: VideoMAE's interleaved 1-D table over the flattened (t, h, w) index.
#: ``separable``: MAE's 2-D table over (h, w) on 3/4 of the channels, a 1-D time table on the rest.
POS_EMBEDS = ("sincos_1d", "separable")


class VideoTubeTokenizer(Tokenizer):
    """(B, C, T, H, W) clips -> (B, t*h*w, dim) tube tokens plus fixed sin-cos positions.

    Args:
        dim: encoder width.
        num_frames: clip length T the model is built for. Clips of any other length that the
            tubelet divides are accepted as they are: the position tables extend along time.
        image_size: (H, W) the model is built for (an int means square); other sizes need
            ``interpolate_pos_encoding=True`` (the table is resized bicubically per time slice).
        patch_size: (p, q) spatial tube size; tubelet_size: ts frames per tube.
        in_chans: channels C.
        pos_embed: one of :data:`POS_EMBEDS`.
        image_as_clip: accept (B, C, H, W) images as one-tube-long clips, the image repeated over
            the tubelet's ``ts`` frames (OmniMAE's way of training images and videos in one model).
    """

    def __init__(
        self,
        dim: int,
        num_frames: int = 16,
        image_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        pos_embed: str = "sincos_1d",
        image_as_clip: bool = False,
    ) -> None:
        super().__init__()
        self.image_size = _pair(image_size, "image_size")
        self.patch_size = _pair(patch_size, "patch_size")
        if not isinstance(tubelet_size, int) or tubelet_size < 1:
            raise ValueError(f"video tokenizer: tubelet_size must be a positive int, got {tubelet_size!r}")
        if not isinstance(num_frames, int) or num_frames < 1 or num_frames % tubelet_size:
            raise ValueError(
                f"video tokenizer: num_frames {num_frames!r} must be a positive multiple of tubelet_size {tubelet_size}"
            )
        if in_chans < 1:
            raise ValueError(f"video tokenizer: in_chans must be >= 1, got {in_chans}")
        if pos_embed not in POS_EMBEDS:
            raise ValueError(f"video tokenizer: pos_embed must be one of {POS_EMBEDS}, got {pos_embed!r}")
        for size, p, axis in zip(self.image_size, self.patch_size, ("height", "width")):
            if size % p:
                raise ValueError(f"video tokenizer: patch {axis} {p} does not divide frame {axis} {size}")
        self.dim, self.num_frames, self.tubelet_size = dim, num_frames, tubelet_size
        self.pos_embed_type, self.image_as_clip = pos_embed, image_as_clip
        self.channels = in_chans
        self.patch_dim = tubelet_size * self.patch_size[0] * self.patch_size[1] * in_chans
        self.base_grid = (
            num_frames // tubelet_size,
            self.image_size[0] // self.patch_size[0],
            self.image_size[1] // self.patch_size[1],
        )
        kernel = (tubelet_size, *self.patch_size)
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=kernel, stride=kernel)
        nn.init.xavier_uniform_(self.proj.weight.view(dim, -1))
        nn.init.zeros_(self.proj.bias)
        self.register_buffer("pos_embed", self.positions(self.base_grid, dim), persistent=False)

    def as_clip(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, ts, H, W) when images are accepted as clips."""
        if x.ndim == 4 and self.image_as_clip:
            return repeat(x, "b c h w -> b c ts h w", ts=self.tubelet_size)  # a broadcast view, no copy
        return x

    def grid(self, x: Tensor, interpolate_pos: bool = False) -> tuple[int, int, int]:
        if x.ndim == 4 and not self.image_as_clip:
            raise ValueError(
                f"video: expected a (batch, channels, frames, height, width) tensor, got shape {tuple(x.shape)}; "
                "to feed images to a video model set the tokenizer's image_as_clip: true"
            )
        if x.ndim not in (4, 5):
            raise ValueError(
                f"video: expected a (batch, channels, frames, height, width) tensor, got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"video: expected a floating-point tensor, got {x.dtype} (normalise the frames first)")
        x = self.as_clip(x)
        _, c, t, h, w = x.shape
        if c != self.channels:
            raise ValueError(
                f"video: the model expects {self.channels} channel(s), got {c} (input shape {tuple(x.shape)}; clips are (B, C, T, H, W))"
            )
        if t == 0 or t % self.tubelet_size:
            raise ValueError(
                f"video: {t} frames cannot be cut into tubes of {self.tubelet_size} frames; use a multiple of {self.tubelet_size}"
            )
        if (h, w) != self.image_size:
            if not interpolate_pos:
                raise ValueError(
                    f"video: the model was built for {self.image_size[0]}x{self.image_size[1]} frames, got {h}x{w}; "
                    "resize the clip, or pass interpolate_pos_encoding=True to interpolate the position table"
                )
            if h % self.patch_size[0] or w % self.patch_size[1]:
                raise ValueError(f"video: frame size {h}x{w} is not divisible by the patch size {self.patch_size}")
        return t // self.tubelet_size, h // self.patch_size[0], w // self.patch_size[1]

    def _table(self, grid: tuple[int, int, int], dim: int) -> Tensor:
        if self.pos_embed_type == "separable":
            return sincos_3d_separable(dim, grid)
        return sincos_1d_interleaved(dim, grid[0] * grid[1] * grid[2])

    def positions(self, grid: tuple[int, ...], dim: int) -> Tensor:
        t, h, w = grid
        _, bh, bw = self.base_grid
        # Time extends exactly (both tables are defined for any slice count); space is resized.
        return interpolate_table_3d(self._table((t, bh, bw), dim), (t, bh, bw), (t, h, w))

    def forward(self, x: Tensor, interpolate_pos: bool = False) -> tuple[Tensor, tuple[int, int, int]]:
        x = as_model_dtype(x, self.proj.weight.dtype)  # float64/float16 clips: cast; integers: grid() raises
        grid = self.grid(x, interpolate_pos)
        tokens = rearrange(self.proj(self.as_clip(x)), "b d t h w -> b (t h w) d")
        pos = self.pos_embed if grid == self.base_grid else self.positions(grid, self.dim).to(tokens.device)
        return tokens + pos.to(tokens.dtype), grid

    def patchify(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B, t*h*w, ts*p*q*C)."""
        ts, (p, q) = self.tubelet_size, self.patch_size
        return rearrange(self.as_clip(x), "b c (t ts) (h p) (w q) -> b (t h w) (ts p q c)", ts=ts, p=p, q=q)

    def unpatchify(self, patches: Tensor, grid: tuple[int, ...]) -> Tensor:
        """(B, t*h*w, ts*p*q*C) -> (B, C, T, H, W); the inverse of :meth:`patchify`."""
        (gt, gh, gw), ts, (p, q) = grid, self.tubelet_size, self.patch_size
        return rearrange(
            patches,
            "b (t h w) (ts p q c) -> b c (t ts) (h p) (w q)",
            t=gt,
            h=gh,
            w=gw,
            ts=ts,
            p=p,
            q=q,
            c=self.channels,
        )
