"""Fixed sin-cos position tables (generated, never trained) and their interpolation.

Tables are computed in float64 and returned as float32 so they match the references' NumPy code
bit for bit, not just approximately.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "sincos_1d",
    "sincos_2d_mae",
    "sincos_2d_audiomae",
    "sincos_1d_interleaved",
    "sincos_3d_separable",
    "interpolate_table_2d",
    "interpolate_table_3d",
]


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """MAE's 1-D encoding: ``[sin(pos * w) | cos(pos * w)]`` (sin block, then cos block).

    Args:
        dim: output channels (even).
        positions: (M,) positions.
    Returns:
        (M, dim) float64.
    """
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dimension, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = positions.to(torch.float64).reshape(-1)[:, None] * omega[None, :]
    return torch.cat([out.sin(), out.cos()], dim=1)


def sincos_2d_mae(dim: int, grid: tuple[int, int]) -> Tensor:
    """MAE's 2-D table for a (rows, cols) grid, tokens row-major.

    Reproduces the official layout exactly: the *first* half of the channels encodes the column
    index and the second half the row index (MAE's code names them the other way round).

    Returns:
        (rows * cols, dim) float32.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs a dimension divisible by 4, got {dim}")
    rows, cols = grid
    r = torch.arange(rows, dtype=torch.float64).repeat_interleave(cols)
    c = torch.arange(cols, dtype=torch.float64).repeat(rows)
    return torch.cat([sincos_1d(dim // 2, c), sincos_1d(dim // 2, r)], dim=1).float()


def sincos_2d_audiomae(dim: int, grid: tuple[int, int]) -> Tensor:
    """AudioMAE's "2-D" table for a (time, frequency) token grid, tokens row-major over (t, f).

    AudioMAE builds MAE's table on the *swapped* grid ``(F', T')`` (its ``patch_hw`` lists the
    frequency count first) and flattens it row-major, while its tokens run over ``(T', F')``. So
    token ``k = t * F' + f`` gets MAE's code for row ``k // T'`` and column ``k % T'``: the first half
    of the channels encodes ``k % T'``, the second half ``k // T'`` -- a unique fixed code, but not
    one aligned with time and frequency. Checkpoints trained with it need exactly this table.

    Returns:
        (T' * F', dim) float32.
    """
    time, freq = grid
    return sincos_2d_mae(dim, (freq, time))


def sincos_1d_interleaved(dim: int, length: int) -> Tensor:
    """Transformer-style table (VideoMAE): sin on even channels, cos on odd, ``pos / 10000^(2(j//2)/dim)``.

    Returns:
        (length, dim) float32.
    """
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(
        torch.tensor(10000.0, dtype=torch.float64), 2 * torch.div(j, 2, rounding_mode="floor") / dim
    )
    table = angle.clone()
    table[:, 0::2] = angle[:, 0::2].sin()
    table[:, 1::2] = angle[:, 1::2].cos()
    return table.float()


def sincos_3d_separable(dim: int, grid: tuple[int, int, int]) -> Tensor:
    """Separable (t, h, w) table: the first ``3/4`` of the channels hold MAE's 2-D (h, w) table
    (the same in every time slice), the last ``1/4`` MAE's 1-D table of the time index.

    Unlike VideoMAE's flattened 1-D table, space and time are encoded independently, so frames at
    the same spatial position share their spatial code and a clip of any length keeps them.

    Returns:
        (t * h * w, dim) float32, tokens row-major over (t, h, w).
    """
    if dim % 16:
        raise ValueError(f"separable 3-D sin-cos embedding needs a dimension divisible by 16, got {dim}")
    t, h, w = grid
    d_time = dim // 4
    space = sincos_2d_mae(dim - d_time, (h, w))  # (h*w, 3/4 dim)
    time = sincos_1d(d_time, torch.arange(t, dtype=torch.float64)).float()  # (t, 1/4 dim)
    return torch.cat([space.repeat(t, 1), time.repeat_interleave(h * w, dim=0)], dim=1)


def interpolate_table_2d(table: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> Tensor:
    """Resize a (rows*cols, D) table to another grid bicubically, as MAE does for new resolutions.

    Returns:
        (new_rows * new_cols, D), same dtype as ``table``.
    """
    if tuple(old_grid) == tuple(new_grid):
        return table
    d = table.shape[-1]
    img = table.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2).float()
    img = F.interpolate(img, size=new_grid, mode="bicubic", align_corners=False)
    return img.permute(0, 2, 3, 1).reshape(-1, d).to(table.dtype)


def interpolate_table_3d(table: Tensor, old_grid: tuple[int, int, int], new_grid: tuple[int, int, int]) -> Tensor:
    """Resize a (t*h*w, D) table to another (t, h, w) grid: bicubic in space per time slice (as
    VideoMAE's fine-tuning does), linear in time when the slice count changes.

    Returns:
        (new_t * new_h * new_w, D), same dtype as ``table``.
    """
    if tuple(old_grid) == tuple(new_grid):
        return table
    (t, h, w), (t2, h2, w2), d = old_grid, new_grid, table.shape[-1]
    x = table.reshape(t, h * w, d)
    if (h, w) != (h2, w2):
        x = torch.stack([interpolate_table_2d(x[i], (h, w), (h2, w2)) for i in range(t)])
    if t != t2:
        x = x.permute(1, 2, 0).float()  # (h2*w2, D, t): interpolate along time
        x = F.interpolate(x, size=t2, mode="linear", align_corners=False).permute(2, 0, 1).to(table.dtype)
    return x.reshape(-1, d)
