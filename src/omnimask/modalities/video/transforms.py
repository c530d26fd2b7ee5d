"""Clip transforms: VideoMAE's multi-scale crop, resize + centre crop, normalisation.

Layouts: decoded frames are ``uint8`` ``(T, H, W, C)`` (what decord returns); transformed clips are
``float32`` ``(C, T, H, W)`` (what a video patch embedding expects).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ..image.transforms import IMAGENET_MEAN, IMAGENET_STD, _mean_std, _size

__all__ = ["VIDEOMAE_SCALES", "MultiScaleCrop", "normalize_video", "resize_center_crop", "video_eval_transform"]

VIDEOMAE_SCALES: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)


def _as_thwc_tensor(video: np.ndarray | Tensor) -> Tensor:
    x = torch.from_numpy(np.ascontiguousarray(video)) if isinstance(video, np.ndarray) else video
    if x.dim() != 4 or x.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 clip of shape (T, H, W, C), got {x.dtype} {tuple(x.shape)}")
    return x


def _resize_tchw(x: Tensor, hw: tuple[int, int]) -> Tensor:
    """Bilinear (antialiased, like PIL) resize of a uint8 (T, C, h, w) tensor; no-op at equal size."""
    if tuple(x.shape[-2:]) == hw:
        return x
    return TF.resize(x, list(hw), interpolation=TF.InterpolationMode.BILINEAR, antialias=True)


def _to_float_cthw(x: Tensor, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Tensor:
    """uint8 (T, C, H, W) -> contiguous float32 (C, T, H, W): in [0, 1], or normalised if mean/std given.

    One converting copy plus one fused affine pass (``x * 1/(255 std) - mean/std``): about 3x
    cheaper than convert, /255, -mean, /std as separate passes on a 16x224x224 clip.
    """
    t, c, h, w = x.shape
    out = torch.empty((c, t, h, w), dtype=torch.float32)
    out.copy_(x.permute(1, 0, 2, 3))
    if mean is None or std is None:
        return out.div_(255.0)
    m, s = _mean_std(mean, std)
    if len(m) not in (1, c):
        raise ValueError(f"{len(m)} mean/std values for a clip with {c} channels")
    mt = torch.tensor(m, dtype=torch.float64).view(-1, 1, 1, 1)
    st = torch.tensor(s, dtype=torch.float64).view(-1, 1, 1, 1)
    return out.mul_((1.0 / (255.0 * st)).float()).add_((-mt / st).float())


class MultiScaleCrop:
    """TSN's multi-scale corner/centre crop, as VideoMAE pre-training uses it (one crop per clip).

    For a clip of ``H x W`` frames: ``base = min(H, W)``; the candidate crop sides are
    ``int(base * s)`` for each scale, where a side less than 3 px from the target side becomes the
    target side (TSN's rule). A (crop_h, crop_w) pair is chosen uniformly among the pairs of scale
    indices ``(i, j)`` with ``|i - j| <= max_distort``, then an offset uniformly among the fixed
    grid positions: with ``more_fix_crop`` the 13 positions (4 corners, centre, upper/lower/left/
    right centre and the 4 quarter points), else the 5 (corners and centre). Positions sit at
    ``(k * (H - crop_h) // 4, l * (W - crop_w) // 4)`` for ``k, l`` in 0..4, so the right and bottom
    positions touch the frame edge exactly. The crop is resized to ``size`` with antialiased
    bilinear interpolation. No flip, no colour jitter (VideoMAE pre-training uses neither).

    Call: ``crop(video, rng=None)`` with ``video`` uint8 ``(T, H, W, C)`` (numpy or tensor) ->
    float32 ``(C, T, size_h, size_w)`` in [0, 1] (not normalised). ``rng=None`` draws from torch's
    global RNG (seeded per sample by ``SeededDataset``). ``crop.apply(video, crop.sample(H, W, rng),
    mean, std)`` does the same in two steps and can normalise on the way.
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        scales: Sequence[float] = VIDEOMAE_SCALES,
        max_distort: int = 1,
        more_fix_crop: bool = True,
    ) -> None:
        self.size = _size(size)
        self.scales = tuple(float(s) for s in scales)
        if not self.scales or not all(0.0 < s <= 1.0 for s in self.scales):
            raise ValueError(f"scales must be a non-empty sequence of values in (0, 1], got {scales!r}")
        if max_distort < 0:
            raise ValueError(f"max_distort must be >= 0, got {max_distort}")
        self.max_distort = int(max_distort)
        self.more_fix_crop = bool(more_fix_crop)

    def crop_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """The candidate ``(crop_h, crop_w)`` pairs for ``height x width`` frames, in TSN's order."""
        base = min(height, width)
        sides = [max(1, int(base * s)) for s in self.scales]
        hs = [self.size[0] if abs(s - self.size[0]) < 3 else s for s in sides]
        ws = [self.size[1] if abs(s - self.size[1]) < 3 else s for s in sides]
        # A snapped side can exceed a small frame (e.g. base 30, target 32): clamp to the frame.
        return [
            (min(h, height), min(w, width))
            for i, h in enumerate(hs)
            for j, w in enumerate(ws)
            if abs(i - j) <= self.max_distort
        ]

    def offsets(self, height: int, width: int, crop_h: int, crop_w: int) -> list[tuple[int, int]]:
        """The fixed ``(top, left)`` grid positions for a ``crop_h x crop_w`` crop."""
        grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]  # corners, centre (in quarter steps)
        if self.more_fix_crop:
            grid += [(2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
        dy, dx = height - crop_h, width - crop_w
        return [(i * dy // 4, j * dx // 4) for i, j in grid]

    def sample(self, height: int, width: int, rng: np.random.Generator | None = None) -> tuple[int, int, int, int]:
        """Draw one crop box ``(top, left, crop_h, crop_w)`` for ``height x width`` frames."""

        def choose(n: int) -> int:
            return int(rng.integers(n)) if rng is not None else int(torch.randint(n, ()))

        pairs = self.crop_sizes(height, width)
        crop_h, crop_w = pairs[choose(len(pairs))]
        positions = self.offsets(height, width, crop_h, crop_w)
        top, left = positions[choose(len(positions))]
        return top, left, crop_h, crop_w

    def apply(
        self,
        video: np.ndarray | Tensor,
        box: tuple[int, int, int, int],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> Tensor:
        """Crop every frame of a uint8 ``(T, H, W, C)`` clip to ``box = (top, left, h, w)`` and
        resize: float32 ``(C, T, size_h, size_w)``, in [0, 1] or normalised with ``mean``/``std``."""
        x = _as_thwc_tensor(video)
        top, left, ch, cw = box
        # (T, C, ch, cw) view, one box for all frames; the channels-last strides suit the uint8 resize.
        x = x[:, top : top + ch, left : left + cw].permute(0, 3, 1, 2)
        return _to_float_cthw(_resize_tchw(x, self.size), mean, std)

    def __call__(self, video: np.ndarray | Tensor, rng: np.random.Generator | None = None) -> Tensor:
        x = _as_thwc_tensor(video)
        return self.apply(x, self.sample(x.shape[1], x.shape[2], rng))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, scales={self.scales}, max_distort={self.max_distort}, "
            f"more_fix_crop={self.more_fix_crop})"
        )


def resize_center_crop(
    video: np.ndarray | Tensor,
    size: int | tuple[int, int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Tensor:
    """Evaluation geometry: scale so the frame just covers ``size`` (for a square size: the short
    side becomes ``size``), keeping the aspect ratio, then take the centre ``size`` crop.

    Args:
        video: uint8 ``(T, H, W, C)``.
        mean, std: normalise on the way (default: no normalisation).
    Returns:
        float32 ``(C, T, size_h, size_w)``, in [0, 1] unless normalised.
    """
    th, tw = _size(size)
    x = _as_thwc_tensor(video).permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    scale = max(th / h, tw / w)
    rh, rw = max(th, round(h * scale)), max(tw, round(w * scale))
    x = _resize_tchw(x, (rh, rw))
    top, left = (rh - th) // 2, (rw - tw) // 2
    return _to_float_cthw(x[..., top : top + th, left : left + tw], mean, std)


def normalize_video(x: Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """``(x - mean) / std`` per channel of a ``(C, T, H, W)`` clip in [0, 1]; returns a new float tensor."""
    m, s = _mean_std(mean, std)
    if len(m) not in (1, x.shape[0]):
        raise ValueError(f"{len(m)} mean/std values for a clip with {x.shape[0]} channels (shape {tuple(x.shape)})")
    x = x if x.is_floating_point() else x.float()
    mt = torch.tensor(m, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
    st = torch.tensor(s, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
    return (x - mt) / st


def video_eval_transform(
    video: np.ndarray | Tensor,
    size: int | tuple[int, int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Tensor:
    """Deterministic evaluation transform: resize the short side to ``size``, centre crop, normalise
    (:func:`resize_center_crop` with ``mean``/``std``).

    Args:
        video: uint8 ``(T, H, W, C)``.
    Returns:
        float32 ``(C, T, size_h, size_w)``, normalised.
    """
    return resize_center_crop(video, size, mean, std)


# ---------------------------------------------------------------- reading
