"""Image transforms for masked pre-training and evaluation (``torchvision.transforms.v2``).

Every pipeline ends in a plain float32 tensor (C, H, W), normalised with ``mean``/``std``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "denormalize", "eval_transform", "mae_pretrain_transform"]

from .tokenizer import IMAGENET_MEAN, IMAGENET_STD

_INTERPOLATIONS = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}


def _interpolation(mode: str | InterpolationMode) -> InterpolationMode:
    if isinstance(mode, InterpolationMode):
        return mode
    if mode not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {mode!r}")
    return _INTERPOLATIONS[mode]


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    """``int`` -> square (size, size); ``(H, W)`` is kept. Always an exact output size."""
    try:
        hw = (operator.index(size),) * 2 if not isinstance(size, Sequence) else tuple(map(operator.index, size))
    except TypeError:
        hw = ()
    if len(hw) != 2 or min(hw) <= 0:
        raise ValueError(f"size must be a positive int or (H, W) pair of positive ints, got {size!r}")
    return hw  # type: ignore[return-value]


def _mean_std(mean: Sequence[float], std: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) == 0 or len(mean) != len(std):
        raise ValueError(
            f"mean and std must be non-empty and of equal length (one value per channel), "
            f"got len(mean)={len(mean)}, len(std)={len(std)}"
        )
    if any(s <= 0 for s in std):
        raise ValueError(f"std values must be > 0, got {std}")
    return mean, std


def _to_normalised_tensor(mean: tuple[float, ...], std: tuple[float, ...]) -> list[v2.Transform]:
    # ToPureTensor drops the tv_tensors.Image subclass, so downstream code sees an ordinary Tensor.
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std), v2.ToPureTensor()]


def mae_pretrain_transform(
    size: int | tuple[int, int],
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hflip: float = 0.5,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str | InterpolationMode = "bicubic",
) -> v2.Compose:
    """MAE's pre-training augmentation: random resized crop, optional flip, normalise.

    Args:
        size: output size, ``int`` for square or ``(H, W)``.
        scale: range of the crop area as a fraction of the image, ``0 < lo <= hi <= 1``.
        ratio: range of the crop aspect ratio (w / h), ``0 < lo <= hi``.
        hflip: probability of a horizontal flip; 0 leaves the flip out of the pipeline.
        mean, std: per-channel normalisation (length 1 for grey images).
    Returns:
        A transform mapping a PIL image (or uint8 tensor) to float32 (C, H, W).
    """
    hw = _size(size)
    if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"scale must be (lo, hi) with 0 < lo <= hi <= 1, got {scale!r}")
    if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must be (lo, hi) with 0 < lo <= hi, got {ratio!r}")
    if not 0.0 <= hflip <= 1.0:
        raise ValueError(f"hflip must be a probability in [0, 1], got {hflip}")
    m, s = _mean_std(mean, std)
    steps: list[v2.Transform] = [
        v2.RandomResizedCrop(
            hw, scale=tuple(scale), ratio=tuple(ratio), interpolation=_interpolation(interpolation), antialias=True
        )
    ]
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p=hflip))
    return v2.Compose(steps + _to_normalised_tensor(m, s))


def eval_transform(
    size: int | tuple[int, int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    resize: bool = True,
    interpolation: str | InterpolationMode = "bicubic",
) -> v2.Compose:
    """Deterministic evaluation transform: resize to exactly ``size`` (optional), normalise.

    Args:
        size: output size, ``int`` for square or ``(H, W)``. Unused when ``resize`` is False.
        resize: False keeps the input geometry, so a model expecting ``size`` rejects a mismatch.
    Returns:
        A transform mapping a PIL image (or uint8 tensor) to float32 (C, H, W).
    """
    hw = _size(size)  # validated even when unused, so a bad config fails early
    m, s = _mean_std(mean, std)
    steps: list[v2.Transform] = []
    if resize:
        # An exact (H, W): Resize(int) would only match the shorter side and keep the aspect ratio.
        steps.append(v2.Resize(hw, interpolation=_interpolation(interpolation), antialias=True))
    return v2.Compose(steps + _to_normalised_tensor(m, s))


def denormalize(x: Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """Invert ``Normalize(mean, std)``: ``x * std + mean`` per channel.

    Args:
        x: (C, H, W) or (B, C, H, W) normalised images.
    Returns:
        Same shape, in the original pixel scale (about [0, 1]; not clamped).
    """
    m, s = _mean_std(mean, std)
    if x.dim() < 3:
        raise ValueError(f"expected (C, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    if len(m) not in (1, x.shape[-3]):
        raise ValueError(f"{len(m)} mean/std values for {x.shape[-3]} channels (shape {tuple(x.shape)})")
    dtype = x.dtype if x.is_floating_point() else torch.float32
    mt = torch.tensor(m, dtype=dtype, device=x.device).view(-1, 1, 1)
    st = torch.tensor(s, dtype=dtype, device=x.device).view(-1, 1, 1)
    return x.to(dtype) * st + mt
