"""AudioMAE's local-window decoder (``decoder_mode=1``): Swin-V2-CR-style blocks over the token grid.

The arrangement is MAE's -- embed the visible tokens, append mask tokens, unshuffle to grid order
with ``ids_restore``, add the position table -- but no ``[CLS]`` or other context joins (AudioMAE
drops its cls token before these blocks), and attention is confined to ``(4, 4)`` windows of the
(time, frequency) grid, with a cyclic shift of ``(2, 0)`` (time only) on every odd block.

Each block (AudioMAE's ``timm_patch/swin_transformer.py``, a Swin V2 "CR" block):

* scaled cosine attention: ``cos(q, k) / max(tau, 0.01)`` with a learnable ``tau`` per head
  (``cos`` divides by ``max(|q| |k|, 1e-6)``);
* a continuous relative position bias: a 2 -> 384 -> heads ReLU MLP (``meta_mlp``, dropout 0.1
  after each layer while training) of the log-spaced offsets ``sign(d) * log(1 + |d|)`` between
  the two tokens of a window;
* post-norm residual branches: ``x + norm1(attn(x))``, then ``x + norm2(mlp(x))``;
* shifted windows: ``torch.roll`` by ``-shift``, partition, attend, reverse, roll back; tokens that
  wrapped around into a window they are not adjacent to get ``-100`` added to their logits, the
  reference's mask value (their weight is below ``e^-100``, i.e. zero in float32 for any sane
  ``tau``).

Parameter names follow the reference (``blocks.N.{attn.qkv, attn.proj, attn.tau, attn.meta_mlp.fc1,
attn.meta_mlp.fc2, norm1, mlp.fc1, mlp.fc2, norm2}``), so official weights load by renaming only
the prefix.

Grids of any size work: as in the reference, a window no larger than the grid shrinks to the grid
along that axis (and that axis is not shifted); an axis the window does not divide is padded at
its end, and padded positions are masked out of every real token's attention.

Axis legend: B batch, H/W token-grid rows/cols (time/frequency), C (d) token width; nh/nw windows
along H/W, wh/ww window rows/cols, L (l) = wh*ww tokens of a window, q/k its query/key tokens,
bw = B*nh*nw windows; n heads, d head width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from ..backbone.blocks import DropPath, Mlp
from ..masking.base import MaskSpec, gather_tokens
from .base import DECODERS, Decoder

__all__ = ["LocalWindowDecoder", "WindowAttention", "LocalWindowBlock", "window_layout"]

#: Added to the logits of token pairs that a shifted window joins but that are not neighbours
#: (the reference's value; Swin's attention mask).
MASK_VALUE = -100.0


def _pair(v: int | tuple[int, int] | list[int], name: str, allow_zero: bool = False) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v)
    low = 0 if allow_zero else 1
    if len(t) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) and i >= low for i in t):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"local_window decoder: {name} must be a {kind} int or a pair of them, got {v!r}")
    return t  # type: ignore[return-value]


def window_layout(
    grid: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The effective (window, shift, padded grid) of one block on ``grid``.

    As in the reference, an axis no longer than the window uses the whole axis as its window and
    is not shifted; otherwise the axis is padded up to a multiple of the window.
    """
    win = tuple(min(g, w) for g, w in zip(grid, window))
    sh = tuple(0 if g <= w else s for g, w, s in zip(grid, window, shift))
    padded = tuple(math.ceil(g / w) * w for g, w in zip(grid, win))
    return win, sh, padded  # type: ignore[return-value]


def _windows(x: Tensor, win: tuple[int, int]) -> Tensor:
    """(B, H, W, C) -> (B * nW, wh * ww, C), windows ordered row-major over the window grid."""
    return rearrange(x, "b (nh wh) (nw ww) c -> (b nh nw) (wh ww) c", wh=win[0], ww=win[1])


def _unwindows(x: Tensor, win: tuple[int, int], hw: tuple[int, int]) -> Tensor:
    """Inverse of :func:`_windows`: (B * nW, wh * ww, C) -> (B, H, W, C)."""
    (h, w), (wh, ww) = hw, win
    return rearrange(x, "(b nh nw) (wh ww) c -> b (nh wh) (nw ww) c", nh=h // wh, nw=w // ww, wh=wh, ww=ww)


def _attention_mask(
    grid: tuple[int, int], win: tuple[int, int], sh: tuple[int, int], padded: tuple[int, int]
) -> Tensor | None:
    """(nW, L, L) additive mask for windows of the rolled, padded grid, or None when nothing is masked.

    Two tokens of a window may attend to each other when they lie in the same shift region (Swin's
    split of each axis into ``[0, S - w)``, ``[S - w, S - s)``, ``[S - s, S)`` after the roll) and
    are both real or both padding.
    """
    if not any(sh) and tuple(padded) == tuple(grid):
        return None
    labels = torch.zeros(padded, dtype=torch.long)
    for axis in (0, 1):
        size, w, s = padded[axis], win[axis], sh[axis]
        region = torch.zeros(size, dtype=torch.long)
        if s:
            region[size - w :] = 1
            region[size - s :] = 2
        # the pad flag of the position that the roll brought here
        source = (torch.arange(size) + s) % size
        pad = (source >= grid[axis]).long()
        part = region * 2 + pad
        labels = labels * 6 + (part[:, None] if axis == 0 else part[None, :])
    flat = _windows(labels[None, :, :, None], win)[..., 0]  # (nW, L)
    same = flat[:, :, None] == flat[:, None, :]
    return torch.zeros(same.shape).masked_fill(~same, MASK_VALUE)


class _BiasMLP(nn.Module):
    """The meta network of the continuous position bias: 2 -> hidden -> heads, ReLU, dropout."""

    def __init__(self, hidden: int, heads: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, hidden)
        self.fc2 = nn.Linear(hidden, heads)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(F.relu(self.fc1(x)))))


class WindowAttention(nn.Module):
    """Scaled cosine self-attention inside windows, with a log-spaced continuous position bias.

    Args:
        dim: token width; num_heads: heads (must divide ``dim``).
        bias_hidden: hidden width of the position-bias MLP (reference: 384).
        bias_drop: dropout inside the position-bias MLP while training (reference: 0.1).
        attn_drop, proj_drop: dropout on the attention weights and the output projection.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        bias_hidden: int = 384,
        bias_drop: float = 0.1,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"local_window decoder: width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.meta_mlp = _BiasMLP(bias_hidden, num_heads, bias_drop)
        self.tau = nn.Parameter(torch.ones(num_heads))
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)

    @staticmethod
    def log_offsets(win: tuple[int, int], device: torch.device | None = None) -> Tensor:
        """(L * L, 2) ``sign(d) * log(1 + |d|)`` of ``coord(query) - coord(key)``, pairs row-major."""
        rows, cols = torch.meshgrid(
            torch.arange(win[0], device=device), torch.arange(win[1], device=device), indexing="ij"
        )
        coords = torch.stack([rows.flatten(), cols.flatten()], dim=1).float()  # (L, 2)
        d = (coords[:, None, :] - coords[None, :, :]).reshape(-1, 2)
        return torch.sign(d) * torch.log(1.0 + d.abs())

    def position_bias(self, win: tuple[int, int], device: torch.device) -> Tensor:
        """(heads, L, L) bias for a window of shape ``win``."""
        area = win[0] * win[1]
        return rearrange(self.meta_mlp(self.log_offsets(win, device)), "(q k) n -> n q k", q=area, k=area)

    def forward(self, x: Tensor, win: tuple[int, int], mask: Tensor | None = None) -> Tensor:
        """x: (B * nW, L, C) windows; mask: optional (nW, L, L) additive mask. Returns (B * nW, L, C)."""
        bw, n, _ = x.shape
        q, k, v = rearrange(self.qkv(x), "bw l (three n d) -> three bw n l d", three=3, n=self.num_heads).unbind(0)
        norms = q.norm(dim=-1, keepdim=True) @ k.norm(dim=-1, keepdim=True).transpose(-2, -1)
        attn = (q @ k.transpose(-2, -1)) / norms.clamp(min=1e-6)
        attn = attn / self.tau.clamp(min=0.01).view(1, -1, 1, 1).to(attn.dtype)
        attn = attn + self.position_bias(win, x.device).unsqueeze(0).to(attn.dtype)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(bw // nw, nw, self.num_heads, n, n) + mask[None, :, None].to(attn.dtype)).view(
                bw, self.num_heads, n, n
            )
        attn = self.attn_drop(attn.softmax(dim=-1))
        out = rearrange(attn @ v, "bw n l d -> bw l (n d)")
        return self.proj_drop(self.proj(out))


class LocalWindowBlock(nn.Module):
    """Post-norm Swin-V2-CR block over a (B, H, W, C) grid: ``x + norm1(wattn(x))``, ``x + norm2(mlp(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: tuple[int, int],
        shift_size: tuple[int, int],
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-6,
        bias_hidden: int = 384,
        bias_drop: float = 0.1,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.attn = WindowAttention(dim, num_heads, bias_hidden, bias_drop)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.drop_path = DropPath(drop_path)
        self._masks: dict[tuple, Tensor | None] = {}

    def _mask(
        self,
        grid: tuple[int, int],
        win: tuple[int, int],
        sh: tuple[int, int],
        padded: tuple[int, int],
        device: torch.device,
    ) -> Tensor | None:
        key = (grid, win, sh, padded, str(device))
        if key not in self._masks:
            mask = _attention_mask(grid, win, sh, padded)
            self._masks[key] = None if mask is None else mask.to(device)
        return self._masks[key]

    def window_attention(self, x: Tensor) -> Tensor:
        """The attention branch on (B, H, W, C), before its norm."""
        b, h, w, c = x.shape
        win, sh, padded = window_layout((h, w), self.window_size, self.shift_size)
        if padded != (h, w):
            x = F.pad(x, (0, 0, 0, padded[1] - w, 0, padded[0] - h))
        if any(sh):
            x = torch.roll(x, shifts=(-sh[0], -sh[1]), dims=(1, 2))
        out = self.attn(_windows(x, win), win, self._mask((h, w), win, sh, padded, x.device))
        out = _unwindows(out, win, padded)
        if any(sh):
            out = torch.roll(out, shifts=sh, dims=(1, 2))
        return out[:, :h, :w]

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.norm1(self.window_attention(x)))
        return x + self.drop_path(self.norm2(self.mlp(x)))


@DECODERS.register("local_window")
class LocalWindowDecoder(Decoder):
    """AudioMAE's local decoder: MAE's mask-token arrangement, then windowed Swin-V2-CR blocks.

    Args:
        in_dim: encoder width (supplied by the model).
        out_dim: values predicted per token, e.g. ``p*q*C`` (supplied by the modality).
        dim, depth, num_heads, mlp_ratio: decoder shape (AudioMAE: 512, 16, 16, 4).
        window_size: (time, frequency) window in tokens (AudioMAE: (4, 4)).
        shift_size: cyclic shift of the odd blocks (AudioMAE: (2, 0), time only); even blocks
            are never shifted.
        no_shift: shift no block (AudioMAE's ``--no_shift``).
        norm_eps: LayerNorm eps (AudioMAE: 1e-6).
        bias_hidden, bias_drop: the position-bias MLP's hidden width and dropout (384, 0.1).
        drop_path: stochastic depth rising linearly from 0 to this over the blocks (AudioMAE: 0).

    The decoder works on 2-D grids. Other modalities' tokens and ``[CLS]`` are not used (AudioMAE
    drops its cls token before these blocks). With a decoder selection (``spec.ids_decode``, VideoMAE
    V2's dual masking) every grid position still runs through the blocks -- windows need the whole
    grid -- and only the selected positions are returned.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        dim: int = 512,
        depth: int = 16,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        window_size: int | tuple[int, int] | list[int] = (4, 4),
        shift_size: int | tuple[int, int] | list[int] = (2, 0),
        no_shift: bool = False,
        norm_eps: float = 1e-6,
        bias_hidden: int = 384,
        bias_drop: float = 0.1,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"local_window decoder: depth must be a positive int, got {depth!r}")
        self.window_size = _pair(window_size, "window_size")
        self.shift_size = _pair(shift_size, "shift_size", allow_zero=True)
        bad = [f"{s} >= {w}" for s, w in zip(self.shift_size, self.window_size) if s >= w]
        if bad:
            raise ValueError(
                f"local_window decoder: shift_size {self.shift_size} must be smaller than window_size {self.window_size} ({', '.join(bad)})"
            )
        self.dim = dim
        self.no_shift = bool(no_shift)
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        rates = torch.linspace(0, drop_path, depth).tolist() if depth > 1 else [drop_path]
        self.blocks = nn.ModuleList(
            LocalWindowBlock(
                dim,
                num_heads,
                self.window_size,
                (0, 0) if self.no_shift or i % 2 == 0 else self.shift_size,
                mlp_ratio,
                norm_eps,
                bias_hidden,
                bias_drop,
                rates[i],
            )
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.pred = nn.Linear(dim, out_dim)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(
        self,
        visible: Tensor,
        spec: MaskSpec,
        pos: Tensor,
        global_tokens: Tensor | None = None,
        other_tokens: Tensor | None = None,
        grid: tuple[int, ...] | None = None,
    ) -> Tensor:
        """Args:
            visible: (B, K, in_dim) encoded visible tokens, in ``spec.ids_keep`` order.
            spec: the modality's mask.
            pos: (N, dim) or (B, N, dim) position table in grid order.
            global_tokens, other_tokens: ignored (no global context in a local decoder).
            grid: the (rows, cols) token grid; required.
        Returns:
            (B, N, out_dim) predictions in grid order, or (B, Q, out_dim) for ``spec.ids_decode``.
        """
        if grid is None:
            raise ValueError(
                "local_window decoder: the token grid is required (grid=(rows, cols)); the model passes it"
            )
        if len(grid) != 2:
            raise ValueError(f"local_window decoder: works on 2-D (time, frequency) grids, got grid {tuple(grid)}")
        b, n = spec.ids_restore.shape
        if n != grid[0] * grid[1]:
            raise ValueError(
                f"local_window decoder: the mask covers {n} tokens but grid {tuple(grid)} has {grid[0] * grid[1]}"
            )
        x = self.embed(visible)
        x = torch.cat([x, repeat(self.mask_token, "1 1 d -> b l d", b=b, l=n - x.shape[1]).to(x.dtype)], dim=1)
        x = gather_tokens(x, spec.ids_restore) + pos.to(x.dtype)
        x = rearrange(x, "b (h w) d -> b h w d", h=grid[0], w=grid[1])
        for blk in self.blocks:
            x = blk(x)
        out = self.pred(self.norm(rearrange(x, "b h w d -> b (h w) d")))
        return out if spec.ids_decode is None else gather_tokens(out, spec.ids_decode)
