"""The ``video`` modality's registration: its data config, dataset builder, processor and pictures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..base import ModalitySpec, Tokenizer, register_modality
from ..image.tokenizer import IMAGENET_MEAN, IMAGENET_STD, _pair
from .embedded import embedded_video_root
from .pictures import reconstruction_frames
from .reader import VideoDataset, read_video_list, video_eval_processor
from .tokenizer import VideoTubeTokenizer

__all__ = ["VideoDataConfig"]


def _example_input(tokenizer_cfg: dict, batch_size: int) -> Tensor:
    h, w = _pair(tokenizer_cfg["image_size"], "image_size")
    return torch.randn(batch_size, tokenizer_cfg["in_chans"], tokenizer_cfg["num_frames"], h, w)


def _build_processor(tokenizer_cfg: dict, processor_cfg: dict) -> Callable[[Any], Tensor]:
    return video_eval_processor(
        num_frames=tokenizer_cfg["num_frames"],
        size=_pair(tokenizer_cfg["image_size"], "image_size"),
        stride=int(processor_cfg["stride"]),
        mean=tuple(processor_cfg["mean"]),
        std=tuple(processor_cfg["std"]),
    )


@dataclass
class VideoDataConfig:
    """Where a recipe reads videos and how it samples them (``data.<key>`` in a recipe config).

    ``list_file``/``val_list_file`` are ``<path> <label>`` lists (VideoMAE's train.csv/val.csv);
    relative paths resolve against ``root`` (default: the list file's folder). ``null`` uses the
    embedded moving-digit videos. Pretraining crops with VideoMAE's multi-scale crop.

    Attributes:
        sampling: ``dense`` (I3D: ``num_frames`` frames ``stride`` apart) or ``segment`` (TSN:
            one frame from each of ``num_frames`` equal segments).
        stride: frame step for dense sampling (VideoMAE: 4 on Kinetics, 2 on SSv2).
        scales: multi-scale crop scales relative to the short side.
        repeats: clips cut from one decode (VideoMAE V2's ``num_sample``); each is a training
            sample, so a loader batch holds ``batch_size * repeats`` clips. As in VideoMAE the lr
            scaling ignores repeats.
        on_error: ``raise`` stops at an unreadable video; ``skip`` logs it, uses the next one and
            counts it (the run reports the total).
        num_threads: decord decoding threads per loader worker.
    """

    list_file: str | None = None
    val_list_file: str | None = None
    root: str | None = None
    sampling: str = "dense"
    stride: int = 4
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    repeats: int = 1
    on_error: str = "raise"
    num_threads: int = 1


def _build_dataset(cfg: VideoDataConfig, modality_cfg: dict, split: str) -> Any:
    tok, proc = modality_cfg["tokenizer"], modality_cfg["processor"]
    list_file = cfg.val_list_file if split == "val" else cfg.list_file
    if list_file is None:
        if cfg.list_file is not None and split == "val":
            raise ValueError(
                "data.video.val_list_file is required for evaluation when data.video.list_file is your own data"
            )
        list_file = str(embedded_video_root() / ("val.csv" if split == "val" else "train.csv"))
    train = split == "train"
    return VideoDataset(
        read_video_list(list_file, root=cfg.root),
        num_frames=tok["num_frames"],
        stride=cfg.stride,
        sampling=cfg.sampling,
        size=_pair(tok["image_size"], "image_size"),
        train=train,
        scales=tuple(cfg.scales),
        mean=tuple(proc["mean"]),
        std=tuple(proc["std"]),
        repeats=cfg.repeats if train else 1,
        on_error=cfg.on_error,
        num_threads=cfg.num_threads,
    )


def _visualize(
    inputs: Tensor, pred: Tensor, mask: Tensor, tokenizer: Tokenizer, objective: Any, processor_cfg: dict
) -> Any:
    return reconstruction_frames(inputs, pred, mask, tokenizer, objective, processor_cfg)


register_modality(
    ModalitySpec(
        name="video",
        tokenizer=VideoTubeTokenizer,
        example_input=_example_input,
        masking={"name": "tube", "ratio": 0.9},
        decoder={"name": "transformer", "dim": 384, "depth": 4, "num_heads": 6, "embed_bias": False},
        objective={"name": "mse", "norm": "patch_channel", "unnormalize_input": True},
        processor={"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "stride": 4},
        build_processor=_build_processor,
        visualize=_visualize,
        build_dataset=_build_dataset,
        data_config=VideoDataConfig,
        description="video clips as space-time tubes (VideoMAE)",
    )
)
