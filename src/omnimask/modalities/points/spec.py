"""The ``points`` modality's registration: its data config, dataset builder, processor and pictures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...data.embedded import embedded_part_root
from ...run_config import from_dict, to_dict
from ..base import ModalitySpec, Tokenizer, register_modality
from .lists import folder_items, modelnet_items, shapenet_items
from .pictures import reconstruction_views
from .reader import PointCloudDataset, load_points, normalize_unit_sphere, resample
from .tokenizer import PointGroupTokenizer

__all__ = ["PointSource", "PointsDataConfig"]


def _example_input(tokenizer_cfg: dict, batch_size: int) -> Tensor:
    return torch.randn(batch_size, tokenizer_cfg["num_points"], 3)


def _build_processor(tokenizer_cfg: dict, processor_cfg: dict) -> Callable[[Any], Tensor]:
    """A raw cloud (array/tensor (N, >=3), or a file path) -> (num_points, 3) float32, unit sphere."""

    n = int(tokenizer_cfg["num_points"])

    def process(sample: Any) -> Tensor:
        arr = (
            load_points(sample)
            if isinstance(sample, (str, bytes)) or hasattr(sample, "__fspath__")
            else np.asarray(sample)
        )
        if arr.ndim != 2 or arr.shape[1] < 3:
            raise ValueError(f"points processor: expected an (N, 3+) array, got shape {arr.shape}")
        pts, _ = resample(np.asarray(arr[:, :3], dtype=np.float32), n)
        return torch.from_numpy(normalize_unit_sphere(pts)[0].astype(np.float32))

    return process


@dataclass
class PointSource:
    """One place clouds come from.

    ``format``: ``folder`` (``root/<class>/<file>``, ``val_root`` for the held-out split; the
    embedded parts are such folders), ``modelnet`` (ModelNet40 with its split lists) or
    ``shapenet`` (Point-MAE's ShapeNet55-34 folder). ``root: null`` uses the embedded part named by
    ``embedded`` (``points``: digit strokes in 3-D; ``shapes``: five solids).
    """

    format: str = "folder"
    root: str | None = None
    val_root: str | None = None
    embedded: str = "points"
    modelnet_classes: int = 40
    key: str | None = None  # the array inside .npz files

    def items(self, split: str) -> list[tuple[str, int]]:
        """``(path, label)`` items of ``split`` (``train``/``train_eval`` read the training split, ``val`` the held-out one)."""
        held_out = split == "val"
        if self.format not in ("folder", "modelnet", "shapenet"):
            raise ValueError(f"data.points.format must be folder, modelnet or shapenet, got {self.format!r}")
        if self.root is None:
            if self.embedded not in ("points", "shapes"):
                raise ValueError(f"data.points.embedded must be 'points' or 'shapes', got {self.embedded!r}")
            if self.format != "folder":
                raise ValueError(f"data.points.format={self.format!r} needs data.points.root")
            return folder_items(embedded_part_root(self.embedded) / ("val" if held_out else "train"))
        if self.format == "modelnet":
            return modelnet_items(self.root, "test" if held_out else "train", num_classes=self.modelnet_classes)  # type: ignore[return-value]
        if self.format == "shapenet":
            return shapenet_items(self.root, "test" if held_out else "train")  # type: ignore[return-value]
        if held_out:
            if self.val_root is None:
                raise ValueError(
                    "data.points.val_root is required for a held-out split when data.points.root is your own folder"
                )
            return folder_items(self.val_root)  # type: ignore[return-value]
        return folder_items(self.root)  # type: ignore[return-value]


@dataclass
class PointsDataConfig(PointSource):
    """Where a recipe reads point clouds and how (``data.<key>`` in a recipe config).

    The source keys (:class:`PointSource`) describe the pretraining data; ``eval`` overrides any of
    them for the evaluation splits (e.g. pretrain on the digit clouds, evaluate on ``shapes``).

    ``num_points``: points per cloud (default: the tokenizer's). ``normalize``: ``subset``
    (Point-MAE's ShapeNet loader: normalise the chosen points), ``cloud`` or ``none``. Pretraining
    applies Point-MAE's per-axis scale U(scale) and shift U(translate) when ``augment``. Clouds with
    fewer points are filled up by resampling with replacement (recorded per file); ``min_points``
    turns that into an error instead.
    """

    eval: dict = field(default_factory=dict)
    num_points: int | None = None
    normalize: str = "subset"
    augment: bool = True
    scale: tuple[float, float] = (2.0 / 3.0, 3.0 / 2.0)
    translate: tuple[float, float] = (-0.2, 0.2)
    min_points: int | None = None
    on_error: str = "raise"


def _build_dataset(cfg: PointsDataConfig, modality_cfg: dict, split: str) -> Any:
    source: PointSource = cfg
    if split != "train" and cfg.eval:
        base = {k: v for k, v in to_dict(cfg).items() if k in PointSource.__dataclass_fields__}
        if "root" not in cfg.eval and "embedded" in cfg.eval:
            base["root"] = None  # naming an embedded part means the embedded data
        source = from_dict(PointSource, {**base, **cfg.eval}, "data.points.eval")
    num_points = cfg.num_points or int(modality_cfg["tokenizer"]["num_points"])
    return PointCloudDataset(
        source.items(split),
        num_points=num_points,
        train=split == "train",
        augment=cfg.augment,
        on_error=cfg.on_error,
        min_points=cfg.min_points,
        normalize=cfg.normalize,
        key=source.key,  # type: ignore[arg-type]
        scale=cfg.scale,
        translate=cfg.translate,
    )


def _visualize(
    inputs: Tensor, pred: Tensor, mask: Tensor, tokenizer: Tokenizer, objective: Any, processor_cfg: dict
) -> Any:
    return reconstruction_views(inputs, pred, mask, tokenizer)


register_modality(
    ModalitySpec(
        name="points",
        tokenizer=PointGroupTokenizer,
        example_input=_example_input,
        masking={"name": "random", "ratio": 0.6, "count": "hidden"},
        decoder={
            "name": "transformer",
            "dim": None,
            "depth": 4,
            "num_heads": 6,
            "project": False,
            "pos_every_block": True,
            "predict": "hidden",
            "drop_path": 0.1,
            "norm_eps": 1e-5,
            "qkv_bias": False,
        },
        objective={"name": "chamfer", "norm": "l2"},
        processor={},
        build_processor=_build_processor,
        visualize=_visualize,
        build_dataset=_build_dataset,
        data_config=PointsDataConfig,
        description="3-D point clouds as FPS + kNN groups through a mini-PointNet (Point-MAE)",
    )
)
