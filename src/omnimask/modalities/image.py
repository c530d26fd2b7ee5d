"""Image modality: non-overlapping patches, MAE's fixed 2-D sin-cos positions.

Axis legend: B batch, C channels, H/W pixels, h/w patch-grid rows/cols, p/q patch height/width.
Tokens are row-major over (h, w) and each patch vector is channel-last ``(p, q, C)``, exactly
``Conv2d(stride=kernel).flatten(2)`` order and MAE's ``patchify``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from ..backbone.pos_embed import interpolate_table_2d, sincos_2d_mae
from .base import ModalitySpec, Tokenizer, register_modality
from .patches import Patch2dTokenizer

__all__ = ["ImagePatchTokenizer", "ImageDataConfig", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(v: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or not all(isinstance(i, int) and i > 0 for i in t):
        raise ValueError(f"image tokenizer: {name} must be a positive int or a pair of them, got {v!r}")
    return t  # type: ignore[return-value]


class ImagePatchTokenizer(Patch2dTokenizer):
    """(B, C, H, W) images -> (B, h*w, dim) patch tokens plus MAE's 2-D sin-cos positions.

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
            raise ValueError(f"image: the model expects {self.channels} channel(s), got {c} (input shape {tuple(x.shape)})")
        if (h, w) != self.image_size:
            if not interpolate_pos:
                raise ValueError(
                    f"image: the model was built for {self.image_size[0]}x{self.image_size[1]} images, got {h}x{w}; "
                    "resize the input, or pass interpolate_pos_encoding=True to interpolate the position table"
                )
            if h % self.patch_size[0] or w % self.patch_size[1]:
                raise ValueError(f"image: size {h}x{w} is not divisible by the patch size {self.patch_size}")
        return h // self.patch_size[0], w // self.patch_size[1]

    def positions(self, grid: tuple[int, ...], dim: int) -> Tensor:
        table = sincos_2d_mae(dim, self.base_grid)
        return interpolate_table_2d(table, self.base_grid, (grid[0], grid[1]))


def _example_input(tokenizer_cfg: dict, batch_size: int) -> Tensor:
    h, w = _pair(tokenizer_cfg.get("image_size", 224), "image_size")
    return torch.randn(batch_size, tokenizer_cfg.get("in_chans", 3), h, w)


def _build_processor(tokenizer_cfg: dict, processor_cfg: dict) -> Callable[[Any], Tensor]:
    from ..data.transforms import eval_transform

    size = _pair(tokenizer_cfg.get("image_size", 224), "image_size")
    return eval_transform(size, mean=tuple(processor_cfg["mean"]), std=tuple(processor_cfg["std"]))


@dataclass
class ImageDataConfig:
    """Where a recipe reads images and how it augments them (``data.<key>`` in a recipe config).

    ``root``/``val_root`` are ImageFolder trees (``root/<class>/<image>``); ``null`` uses the
    embedded digits (their train and val splits). Pretraining applies MAE's augmentation.
    """

    root: str | None = None
    val_root: str | None = None
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    interpolation: str = "bicubic"
    on_error: str = "raise"


def _build_dataset(data_cfg: dict, modality_cfg: dict, split: str) -> Any:
    from ..config import from_dict
    from ..data import ImageFolderDataset, embedded_image_root, eval_transform, mae_pretrain_transform

    cfg = from_dict(ImageDataConfig, data_cfg, "data.image")
    tok, proc = modality_cfg["tokenizer"], modality_cfg["processor"]
    size = _pair(tok["image_size"], "image_size")
    mean, std = tuple(proc["mean"]), tuple(proc["std"])
    if split == "train":
        transform = mae_pretrain_transform(size, scale=cfg.scale, ratio=cfg.ratio, hflip=cfg.hflip, mean=mean, std=std, interpolation=cfg.interpolation)
    else:
        transform = eval_transform(size, mean=mean, std=std, interpolation=cfg.interpolation)
    root = cfg.val_root if split == "val" else cfg.root
    if root is None:
        if cfg.root is not None and split == "val":
            raise ValueError("data.image.val_root is required for evaluation when data.image.root is your own data")
        root = str(embedded_image_root() / ("val" if split == "val" else "train"))
    channels = tok["in_chans"]
    if channels not in (1, 3):
        raise ValueError(f"the image folder reader decodes 1- or 3-channel images; the model has in_chans={channels}")
    return ImageFolderDataset(root, transform=transform, channels=channels, on_error=cfg.on_error)  # type: ignore[arg-type]


def _visualize(inputs: Tensor, pred: Tensor, mask: Tensor, tokenizer: Tokenizer, objective: Any, processor_cfg: dict) -> Any:
    from .image_viz import reconstruction_grid

    return reconstruction_grid(inputs, pred, mask, tokenizer, objective, processor_cfg)


register_modality(
    ModalitySpec(
        name="image",
        tokenizer=ImagePatchTokenizer,
        example_input=_example_input,
        masking={"name": "random", "ratio": 0.75},
        decoder={"name": "transformer", "dim": 512, "depth": 8, "num_heads": 16},
        objective={"name": "mse", "norm": "patch"},
        processor={"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        build_processor=_build_processor,
        visualize=_visualize,
        build_dataset=_build_dataset,
        description="2-D images as non-overlapping patches (MAE)",
    )
)
