"""The ``audio`` modality's registration: its data config, dataset builder, processor and pictures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..base import ModalitySpec, Tokenizer, register_modality
from . import av  # noqa: F401  (registers the "av" audio-visual data source and embedded part)
from .dataset import AudioDataset
from .embedded import embedded_audio_root
from .features import AudioFeatureConfig
from .pictures import reconstruction_spectrograms
from .tokenizer import SpectrogramTokenizer, norm_preset

__all__ = ["AudioDataConfig"]


def _example_input(tokenizer_cfg: dict, batch_size: int) -> Tensor:
    return torch.randn(
        batch_size,
        tokenizer_cfg["in_chans"],
        tokenizer_cfg["target_length"],
        tokenizer_cfg["num_mel_bins"],
    )


def _visualize(
    inputs: Tensor, pred: Tensor, mask: Tensor, tokenizer: Tokenizer, objective: Any, processor_cfg: dict
) -> Any:
    return reconstruction_spectrograms(inputs, pred, mask, tokenizer, objective, processor_cfg)


def _features(tokenizer_cfg: dict, processor_cfg: dict) -> Any:
    """The :class:`~omnimask.modalities.audio.features.AudioFeatureConfig` a model's config describes."""
    (mean,), (std,) = processor_cfg["mean"], processor_cfg["std"]
    return AudioFeatureConfig(
        sample_rate=int(processor_cfg["sample_rate"]),
        num_mel_bins=int(tokenizer_cfg["num_mel_bins"]),
        target_length=int(tokenizer_cfg["target_length"]),
        mean=float(mean),
        std=float(std) / 2.0,  # AudioMAE's 2*std
    )


def _build_processor(tokenizer_cfg: dict, processor_cfg: dict) -> Callable[[Any], Tensor]:
    """A file path (wav/flac/...; a video's sound track), or a ``(waveform, sample_rate)`` pair ->
    ``(1, target_length, num_mel_bins)``: mono, resampled, Kaldi fbank, padded/cut, normalised.

    The waveform contract (:func:`~omnimask.modalities.audio.features.as_waveform`):

    * layouts ``(T,)``, ``(C, T)`` and ``(T, C)`` (soundfile's default); a 2-D array is ``(T, C)``
      when its second axis has at most 16 entries and its first is longer (``(16000, 2)`` and
      ``(2, 16000)`` are both 2 channels of 16000 samples); channels are averaged;
    * float arrays (float16/32/64) are full scale [-1, 1] and converted to float32; integer arrays
      are PCM scaled by their dtype's full range (int16 / 32768, int32 / 2**31, uint8 centred:
      ``(x - 128) / 128``);
    * anything else (a 0-D or 3-D array, bool, complex, no samples, NaN/inf) is a ValueError naming
      the shape or dtype.
    """
    features = _features(tokenizer_cfg, processor_cfg)

    def process(sample: Any) -> Tensor:
        if isinstance(sample, tuple) and len(sample) == 2:
            return features(sample[0], sample_rate=int(sample[1]))
        if isinstance(sample, (Tensor, np.ndarray)):
            raise ValueError("audio processor: pass a waveform as (waveform, sample_rate); its rate cannot be guessed")
        return features(sample)

    return process


@dataclass
class AudioDataConfig:
    """Where a recipe reads audio and how (``data.<key>`` in a recipe config).

    ``list_file``: AudioMAE's JSON list (``{"data": [{"wav": ..., "labels": "/m/a,/m/b"}]}``, with
    ``label_csv``: ``index,mid,display_name``) or a ``<path> <label>`` text list; ``null`` = the
    embedded digit melodies. ``val_list_file``: the held-out list (required for evaluation with
    your own data). Paths resolve against ``root`` or the list's folder. ``multi_label``: JSON labels
    as multi-hot vectors (AudioSet) or one int (single-label sets; the evaluation needs ints).
    Pretraining augmentation: ``roll_mag`` (AudioMAE pretraining), ``mixup``, ``freqm``/``timem``
    (SpecAugment widths, a fine-tuning augmentation).
    """

    list_file: str | None = None
    val_list_file: str | None = None
    label_csv: str | None = None
    root: str | None = None
    multi_label: bool = False
    roll_mag: bool = False
    mixup: float = 0.0
    freqm: int = 0
    timem: int = 0
    on_error: str = "raise"


def _label_csv(cfg: AudioDataConfig, list_file: Path) -> Path:
    if cfg.label_csv is not None:
        return Path(cfg.label_csv)
    for name in ("labels.csv", "class_labels_indices.csv"):
        if (list_file.parent / name).is_file():
            return list_file.parent / name
    raise ValueError(f"data.audio.label_csv is required for the JSON list {list_file} (index,mid,display_name)")


def _build_dataset(cfg: AudioDataConfig, modality_cfg: dict, split: str) -> Any:
    if split == "val":
        if cfg.val_list_file is None and cfg.list_file is not None:
            raise ValueError(
                "data.audio.val_list_file is required for a held-out split when data.audio.list_file is your own list"
            )
        list_file = Path(cfg.val_list_file) if cfg.val_list_file else embedded_audio_root() / "val.json"
    else:
        list_file = Path(cfg.list_file) if cfg.list_file else embedded_audio_root() / "train.json"
    features = _features(modality_cfg["tokenizer"], modality_cfg["processor"])
    train = split == "train"
    augment = dict(freqm=cfg.freqm, timem=cfg.timem, mixup=cfg.mixup, roll_mag=cfg.roll_mag) if train else {}
    kwargs: dict[str, Any] = dict(config=features, on_error=cfg.on_error, **augment)  # type: ignore[arg-type]
    if list_file.suffix.lower() == ".json":
        return AudioDataset.from_json(
            list_file, _label_csv(cfg, list_file), cfg.root, multi_label=cfg.multi_label, **kwargs
        )
    return AudioDataset.from_list(list_file, cfg.root, **kwargs)


register_modality(
    ModalitySpec(
        name="audio",
        tokenizer=SpectrogramTokenizer,
        example_input=_example_input,
        masking={"name": "random", "ratio": 0.8},
        decoder={
            "name": "local_window",
            "dim": 512,
            "depth": 16,
            "num_heads": 16,
            "window_size": [4, 4],
            "shift_size": [2, 0],
            "no_shift": False,
        },
        objective={"name": "mse", "norm": "patch"},
        processor=norm_preset("audioset"),
        build_processor=_build_processor,
        visualize=_visualize,
        build_dataset=_build_dataset,
        data_config=AudioDataConfig,
        description="log-mel spectrograms as non-overlapping time x frequency patches (AudioMAE)",
    )
)
