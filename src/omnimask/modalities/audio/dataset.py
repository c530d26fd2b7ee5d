"""The audio dataset: clips from a list as AudioMAE's model input, with its augmentations."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ...data.errors import check_item_labels, read_with_policy
from .features import (
    AudioFeatureConfig,
    AudioReadError,
    load_audio,
    mixup_waveforms,
    normalize_fbank,
    pad_or_cut,
    roll_magnitude,
    spec_augment,
)
from .lists import Label, balanced_sample_weights, read_audio_json, read_audio_list, read_label_csv

__all__ = ["AudioDataset"]

logger = logging.getLogger(__name__)


class AudioDataset(Dataset):
    """Clips from ``(path, label)`` items as AudioMAE's model input.

    Each item is ``{"audio": x, "label": y, "index": int, "skipped": int}`` where ``x`` is
    float32 ``(1, target_length, num_mel_bins)`` (time is the height, frequency the width),
    made by :func:`load_audio` -> [roll-magnitude] -> [mixup] -> :func:`kaldi_fbank` ->
    :func:`pad_or_cut` -> [:func:`spec_augment`] -> :func:`normalize_fbank`, with the settings of
    ``config``. ``y`` is the item's label as given (an int, or a float32 vector); with ``mixup > 0``
    it is always a float32 vector (ints become one-hot with ``num_classes``).

    Augmentations (all off by default: the evaluation setting):

    * ``roll_mag``: :func:`roll_magnitude` on each (mean-removed) waveform;
    * ``mixup``: with this probability, a partner drawn uniformly from the dataset is mixed in with
      ``lam ~ Beta(10, 10)`` (:func:`mixup_waveforms`) and the labels are mixed the same way;
    * ``freqm``/``timem``: :func:`spec_augment` band widths (AudioMAE's AudioSet fine-tuning: 48 and
      192), applied before normalisation with value 0, as AudioMAE does.

    Silent clips are valid and give a constant input (every log-mel value ``-15.942385`` before
    normalisation). Bad files (missing, empty, undecodable, zero samples, NaN/inf samples): with
    ``on_error="raise"``, :class:`AudioReadError` naming the file; with ``"skip"``, a warning, the
    failure recorded in :attr:`skipped` (per process, each file once), and the next indices tried
    (wrapping) up to ``max_skips`` reads; ``"index"`` is the item returned and ``"skipped"`` counts
    the failed reads behind it (mixup partners included).

    Randomness: one draw of torch's global RNG per item seeds a ``np.random.Generator`` (roll,
    gain, mixup) and a ``torch.Generator`` (SpecAugment), so under
    :class:`omnimask.training.SeededDataset` an item depends only on ``(index, sample_seed)``.
    """

    def __init__(
        self,
        items: Sequence[tuple[str | os.PathLike[str], Label | Sequence[float]]],
        config: AudioFeatureConfig | None = None,
        *,
        freqm: int = 0,
        timem: int = 0,
        mixup: float = 0.0,
        roll_mag: bool = False,
        num_classes: int | None = None,
        on_error: Literal["raise", "skip"] = "raise",
        max_skips: int = 10,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        for name, value, low in (("freqm", freqm, 0), ("timem", timem, 0), ("max_skips", max_skips, 1)):
            if int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0.0 <= mixup <= 1.0:
            raise ValueError(f"mixup is a probability in [0, 1], got {mixup!r}")
        self.items = [(os.fspath(p), self._label(y)) for p, y in items]
        if not self.items:
            raise ValueError("AudioDataset needs at least one (path, label) item")
        self.num_classes = self._check_labels(num_classes, mixup)
        self.config = config if config is not None else AudioFeatureConfig()
        self.freqm, self.timem, self.mixup, self.roll_mag = int(freqm), int(timem), float(mixup), bool(roll_mag)
        self.on_error, self.max_skips = on_error, int(max_skips)
        self.skipped: list[tuple[str, str]] = []

    @staticmethod
    def _label(y: Any) -> Label:
        if isinstance(y, (int, np.integer)) or (isinstance(y, Tensor) and y.dim() == 0 and not y.is_floating_point()):
            return int(y)
        return torch.as_tensor(y, dtype=torch.float32).clone()

    def _check_labels(self, num_classes: int | None, mixup: float) -> int | None:
        """Validate that labels are all ints or all vectors of one length; return the class count."""
        kinds = {"int" if isinstance(y, int) else tuple(y.shape) for _, y in self.items}
        if len(kinds) > 1:
            raise ValueError(f"labels must be all ints or all vectors of one length; got {sorted(map(str, kinds))}")
        (kind,) = kinds
        if kind != "int":
            if len(kind) != 1 or (num_classes is not None and kind[0] != num_classes):
                raise ValueError(f"label vectors of shape {kind} for num_classes={num_classes}")
            return kind[0]
        if mixup > 0 and num_classes is None:
            raise ValueError("mixup with int labels needs num_classes= (the mixed labels are vectors)")
        check_item_labels(self.items, "audio")
        if num_classes is not None:
            for k, (path, y) in enumerate(self.items):
                if y >= num_classes:
                    raise ValueError(f"audio item {k} ({path}): the label {y} is outside 0..{num_classes - 1}")
        return num_classes

    @classmethod
    def from_json(
        cls, json_file: str | os.PathLike[str], label_csv: str | os.PathLike[str],
        root: str | os.PathLike[str] | None = None, *, multi_label: bool = True, **kwargs: Any,
    ) -> AudioDataset:  # fmt: skip
        """``AudioDataset(read_audio_json(json_file, label_csv, root, multi_label=...), **kwargs)``;
        with ``multi_label=False``, ``num_classes`` defaults to the CSV's class count."""
        items = read_audio_json(json_file, label_csv, root, multi_label=multi_label)
        if not multi_label:
            kwargs.setdefault("num_classes", max(read_label_csv(label_csv).values()) + 1)
        return cls(items, **kwargs)

    @classmethod
    def from_list(
        cls, list_file: str | os.PathLike[str], root: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> AudioDataset:
        """``AudioDataset(read_audio_list(list_file, root), **kwargs)``."""
        return cls(read_audio_list(list_file, root), **kwargs)

    @property
    def targets(self) -> list[Label]:
        """Label of every item, in item order."""
        return [y for _, y in self.items]

    def sample_weights(self) -> Tensor:
        """:func:`balanced_sample_weights` of :attr:`targets`: float64 ``(len(self),)``."""
        return balanced_sample_weights(self.targets, self.num_classes)

    def __len__(self) -> int:
        return len(self.items)

    def _vector(self, y: Label) -> Tensor:
        return F.one_hot(torch.tensor(y), self.num_classes).float() if isinstance(y, int) else y.clone()

    def _read(self, index: int) -> tuple[int, Label, Tensor, int]:
        return read_with_policy(
            self.items, index, lambda path: load_audio(path, self.config.sample_rate), on_error=self.on_error,
            max_skips=self.max_skips, skipped=self.skipped, error=AudioReadError, what="audio clip", logger=logger,
        )  # fmt: skip

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.items)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for dataset of {n} clips")
        seed = int(torch.randint(2**62, ())) if (self.mixup or self.roll_mag or self.freqm or self.timem) else 0
        rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
        j, label, wav, failures = self._read(index % n)
        if self.roll_mag:
            wav = roll_magnitude(wav - wav.mean(), rng)
        if self.mixup > 0:
            label = self._vector(label)
            if rng.random() < self.mixup:
                _, label2, wav2, more = self._read(int(rng.integers(n)))
                failures += more
                if self.roll_mag:
                    wav2 = roll_magnitude(wav2 - wav2.mean(), rng)
                lam = float(rng.beta(10.0, 10.0))
                wav = mixup_waveforms(wav, wav2, lam)
                label = lam * label + (1.0 - lam) * self._vector(label2)
        fb = pad_or_cut(self.config.fbank(wav), self.config.target_length)
        if self.freqm or self.timem:
            fb = spec_augment(fb, self.freqm, self.timem, generator=gen)
        x = normalize_fbank(fb, self.config.mean, self.config.std).unsqueeze(0)
        return {"audio": x, "label": label.clone() if isinstance(label, Tensor) else label, "index": j,
                "skipped": failures}  # fmt: skip

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(clips={len(self)}, sample_rate={c.sample_rate}, target_length={c.target_length}, "
            f"num_mel_bins={c.num_mel_bins}, freqm={self.freqm}, timem={self.timem}, mixup={self.mixup}, "
            f"roll_mag={self.roll_mag}, on_error={self.on_error!r})"
        )
