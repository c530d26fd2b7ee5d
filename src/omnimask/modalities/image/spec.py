"""The ``image`` modality's registration: its data config, dataset builder, processor and pictures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..base import ModalitySpec, Tokenizer, register_modality
from .embedded import embedded_image_root
from .folder import ImageFolderDataset
from .pictures import reconstruction_grid
from .tokenizer import IMAGENET_MEAN, IMAGENET_STD, ImagePatchTokenizer, _pair
from .transforms import eval_transform, mae_pretrain_transform

__all__ = ["ImageDataConfig"]


def _example_input(tokenizer_cfg: dict, batch_size: int) -> Tensor:
    h, w = _pair(tokenizer_cfg["image_size"], "image_size")
    return torch.randn(batch_size, tokenizer_cfg["in_chans"], h, w)


def _build_processor(tokenizer_cfg: dict, processor_cfg: dict) -> Callable[[Any], Tensor]:
    size = _pair(tokenizer_cfg["image_size"], "image_size")
    return eval_transform(size, mean=tuple(processor_cfg["mean"]), std=tuple(processor_cfg["std"]))


@dataclass
class ImageDataConfig:
    """Where a recipe reads images and how it augments them (``data.<key>`` in a recipe config).

    ``root``/``val_root`` are ImageFolder trees (``root/<class>/<image>``); ``null`` uses the
    embedded digits (their train and val splits). Pretraining applies MAE's augmentation.
    ``cache: true`` decodes every image once and keeps it in memory (see
    :class:`~omnimask.modalities.image.folder.ImageFolderDataset`): for data that fits in RAM.
    ``null`` (the default) caches the embedded digits (4 MB) and never your own data.
    """

    root: str | None = None
    val_root: str | None = None
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    interpolation: str = "bicubic"
    on_error: str = "raise"
    cache: bool | None = None


def _build_dataset(cfg: ImageDataConfig, modality_cfg: dict, split: str) -> Any:
    tok, proc = modality_cfg["tokenizer"], modality_cfg["processor"]
    size = _pair(tok["image_size"], "image_size")
    mean, std = tuple(proc["mean"]), tuple(proc["std"])
    if split == "train":
        transform = mae_pretrain_transform(
            size, scale=cfg.scale, ratio=cfg.ratio, hflip=cfg.hflip, mean=mean, std=std, interpolation=cfg.interpolation
        )
    else:
        transform = eval_transform(size, mean=mean, std=std, interpolation=cfg.interpolation)
    root = cfg.val_root if split == "val" else cfg.root
    cache = cfg.cache if cfg.cache is not None else root is None
    if root is None:
        if cfg.root is not None and split == "val":
            raise ValueError("data.image.val_root is required for evaluation when data.image.root is your own data")
        root = str(embedded_image_root() / ("val" if split == "val" else "train"))
    channels = tok["in_chans"]
    if channels not in (1, 3):
        raise ValueError(f"the image folder reader decodes 1- or 3-channel images; the model has in_chans={channels}")
    return ImageFolderDataset(root, transform=transform, channels=channels, on_error=cfg.on_error, cache=cache)  # type: ignore[arg-type]


def _visualize(
    inputs: Tensor, pred: Tensor, mask: Tensor, tokenizer: Tokenizer, objective: Any, processor_cfg: dict
) -> Any:
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
        data_config=ImageDataConfig,
        description="2-D images as non-overlapping patches (MAE)",
    )
)
