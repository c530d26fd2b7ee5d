"""Point-cloud modality: farthest-point-sampled group centres, kNN groups, a mini-PointNet per group.

Axis legend: B batch, N points per cloud, G groups (tokens), k points per group, c coordinates (3)
or per-point channels, D encoder width.

Tokenization (Point-MAE):

1. ``G`` centres by farthest point sampling (:func:`~.points_ops.farthest_point_sample`);
2. the ``k`` nearest points of each centre (groups may overlap), expressed **relative to their
   centre** (the only per-group normalisation);
3. a mini-PointNet turns each group into one token: per-point ``3 -> 128 -> 256`` (BatchNorm,
   ReLU), max over the group, the max concatenated back to every point (512), ``512 -> 512 -> D``,
   max again;
4. positions are a learned MLP of the centres (``3 -> 128 -> GELU -> D``). They depend on the
   sample, so :meth:`PointGroupTokenizer.tokenize` returns them separately (``pos``) with the
   centres (``coords``) and the reconstruction target (the relative groups, flattened channel-last
   ``(k, 3)``), all from one sampling pass. ``encoder.pos_every_block: true`` adds them before
   every block, as Point-MAE does.

The grid is ``(G,)``: tokens have no order, their centres say where they are. Masking that needs
space (``nearest_block``) reads the centres.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from ...ops.geometry import farthest_point_sample, gather_points, group_points
from ..base import TokenizedInput, Tokenizer

__all__ = ["PointGroupTokenizer", "MiniPointNet", "position_mlp"]

_FPS_TIES = ("lowest", "pointnet2")


def position_mlp(dim: int, in_dim: int = 3, hidden: int = 128) -> nn.Sequential:
    """Point-MAE's position embedding of centres: ``Linear(3, 128) -> GELU -> Linear(128, dim)``."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class MiniPointNet(nn.Module):
    """One token per group of points (Point-MAE's ``Encoder``), channel-last.

    ``first``: per point ``Linear(c, 128) -> BatchNorm -> ReLU -> Linear(128, 256)``; the max over the
    group is concatenated to every point's feature; ``second``: ``Linear(512, 512) -> BatchNorm ->
    ReLU -> Linear(512, dim)``; max over the group. BatchNorm statistics run over all points of all
    groups of the batch, as Point-MAE's ``BatchNorm1d`` over ``(B*G, C, k)``. The linears are
    Point-MAE's kernel-1 ``Conv1d`` layers (same weights, squeezed).
    """

    def __init__(self, dim: int, in_chans: int = 3, widths: tuple[int, int, int] = (128, 256, 512)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.first = nn.Sequential(
            nn.Linear(in_chans, w1), nn.BatchNorm1d(w1), nn.ReLU(inplace=True), nn.Linear(w1, w2)
        )
        self.second = nn.Sequential(
            nn.Linear(2 * w2, w3), nn.BatchNorm1d(w3), nn.ReLU(inplace=True), nn.Linear(w3, dim)
        )

    @staticmethod
    def _run(seq: nn.Sequential, x: Tensor) -> Tensor:
        """Apply ``seq`` to (M, k, C) per-point features; BatchNorm sees (M*k, C)."""
        m, k, _ = x.shape
        return seq(x.reshape(m * k, -1)).reshape(m, k, -1)

    def forward(self, groups: Tensor) -> Tensor:
        """groups (B, G, k, c) -> tokens (B, G, dim)."""
        b, g, k, _ = groups.shape
        feat = self._run(self.first, rearrange(groups, "b g k c -> (b g) k c"))  # (BG, k, 256)
        pooled = feat.max(dim=1, keepdim=True).values
        feat = torch.cat([pooled.expand(-1, k, -1), feat], dim=-1)  # global first, as Point-MAE
        feat = self._run(self.second, feat).max(dim=1).values
        return rearrange(feat, "(b g) d -> b g d", b=b, g=g)


class PointGroupTokenizer(Tokenizer):
    """(B, N, 3) point clouds -> (B, G, dim) group tokens, with centre positions and group targets.

    Args:
        dim: encoder width.
        num_points: points per cloud the model is built for (example inputs, the data reader's
            default); any N >= max(num_groups, group_size) works.
        num_groups: G, centres per cloud (Point-MAE: 64).
        group_size: k, points per group (Point-MAE: 32).
        fps_start: index of the first centre (pointnet2's kernel: 0), or ``"random"``.
        fps_min_norm_sq: exclude points with squared norm ``<=`` this from being centres;
            pointnet2's kernel (and so Point-MAE's checkpoints) use ``1e-3``; ``null`` excludes none.
        fps_ties: ``"lowest"`` index wins exact ties, or ``"pointnet2"``: the kernel's own order.
        pos_hidden: hidden width of the centre-position MLP (128).
    """

    coordinate_positions = True

    def __init__(
        self,
        dim: int,
        num_points: int = 1024,
        num_groups: int = 64,
        group_size: int = 32,
        fps_start: int | str = 0,
        fps_min_norm_sq: float | None = None,
        fps_ties: str = "lowest",
        pos_hidden: int = 128,
    ) -> None:
        super().__init__()
        for name, v in (
            ("num_points", num_points),
            ("num_groups", num_groups),
            ("group_size", group_size),
            ("pos_hidden", pos_hidden),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"points tokenizer: {name} must be a positive int, got {v!r}")
        if num_points < max(num_groups, group_size):
            raise ValueError(
                f"points tokenizer: num_points {num_points} is fewer than num_groups {num_groups} or group_size {group_size}"
            )
        if fps_start != "random" and (isinstance(fps_start, bool) or not isinstance(fps_start, int) or fps_start < 0):
            raise ValueError(f"points tokenizer: fps_start must be a point index >= 0 or 'random', got {fps_start!r}")
        if fps_ties not in _FPS_TIES:
            raise ValueError(f"points tokenizer: fps_ties must be one of {_FPS_TIES}, got {fps_ties!r}")
        self.dim = dim
        self.num_points, self.num_groups, self.group_size = num_points, num_groups, group_size
        self.fps_start, self.fps_min_norm_sq, self.fps_ties = fps_start, fps_min_norm_sq, fps_ties
        self.pos_hidden = pos_hidden
        self.channels = 3
        self.patch_dim = group_size * 3
        self.base_grid = (num_groups,)
        self.embed = MiniPointNet(dim)
        self.pos_embed = self.position_embedding(dim)
        # Point-MAE initialises its encoder's linears and convolutions with trunc_normal(0.02).
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def position_embedding(self, dim: int) -> nn.Module:
        return position_mlp(dim, 3, self.pos_hidden)

    def grid(self, x: Tensor, interpolate_pos: bool = False) -> tuple[int]:
        if x.ndim != 3:
            raise ValueError(f"points: expected a (batch, points, 3) tensor, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"points: expected floating-point coordinates, got {x.dtype}")
        if x.shape[-1] != 3:
            raise ValueError(f"points: expected x, y, z per point (last dim 3), got shape {tuple(x.shape)}")
        n = x.shape[1]
        if n < max(self.num_groups, self.group_size):
            raise ValueError(
                f"points: a cloud of {n} points is too small for {self.num_groups} groups of {self.group_size} points; "
                f"resample it to at least {max(self.num_groups, self.group_size)} points (the data reader does, "
                "with replacement, and records it)"
            )
        if x.numel() and not bool(torch.isfinite(x).all()):
            bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero().flatten().tolist()
            raise ValueError(f"points: coordinates must be finite; NaN or inf in batch item(s) {bad[:10]}")
        return (self.num_groups,)

    def group(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, N, 3) -> ``(groups (B, G, k, 3) relative to their centres, centres (B, G, 3))``.
        Float coordinates of another precision (float64, float16) are cast to the model's dtype."""
        dtype = self.pos_embed[0].weight.dtype
        if x.is_floating_point() and x.dtype != dtype:  # integer coordinates: grid() raises
            x = x.to(dtype)
        self.grid(x)
        idx = farthest_point_sample(
            x, self.num_groups, start=self.fps_start, min_norm_sq=self.fps_min_norm_sq, ties=self.fps_ties
        )
        centres = gather_points(x, idx)
        groups, _ = group_points(x, centres, self.group_size)
        return groups, centres

    def tokenize(self, x: Tensor, interpolate_pos: bool = False) -> TokenizedInput:
        groups, centres = self.group(x)
        tokens = self.embed(groups)
        return TokenizedInput(
            tokens,
            (self.num_groups,),
            pos=self.pos_embed(centres),
            coords=centres,
            target=rearrange(groups, "b g k c -> b g (k c)"),
        )

    def forward(self, x: Tensor, interpolate_pos: bool = False) -> tuple[Tensor, tuple[int]]:
        t = self.tokenize(x)
        return t.tokens + t.pos, t.grid  # type: ignore[operator]

    def positions(self, grid: tuple[int, ...], dim: int) -> Tensor:
        raise NotImplementedError(
            "point tokens have no fixed position table: positions are a learned function of the centres"
        )

    def patchify(self, x: Tensor) -> Tensor:
        """(B, N, 3) -> (B, G, k*3) groups relative to their centres (the same sampling as :meth:`tokenize`)."""
        return rearrange(self.group(x)[0], "b g k c -> b g (k c)")

    def unpatchify(self, patches: Tensor, grid: tuple[int, ...]) -> Tensor:
        """(B, G, k*3) -> (B, G, k, 3) relative groups (add the centres for absolute points)."""
        return rearrange(patches, "... (k c) -> ... k c", c=3)
