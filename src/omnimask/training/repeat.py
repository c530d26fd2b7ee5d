"""Repeated masking (``train.mask_repeats: k``): every loaded sample is used k times in a step.

OmniMAE's replication, data2vec 2.0's clone batch and VideoMAE's repeated sampling amortise the
data pipeline: a sample is read, decoded and augmented once, then its rows are copied k times and
each copy is masked differently. Copies are adjacent (``repeat_interleave``): rows ``i*k .. i*k+k-1``
of the model's batch are sample ``i``.

Masks of the copies:

* per-sample seeds (``train.mask_seeding: sample``): copy 0 keeps the sample's seed (so k = 1 is the
  run without repeats, bit for bit) and copy ``r`` gets :func:`repeat_seed` ``(seed, r)``, a
  function of the sample's seed and ``r`` alone: the same k masks at any world size and on a rerun;
* the rank's RNG stream (``mask_seeding: rank``, mixed and streamed runs): the model draws every row
  from the stream, so the k rows get different masks.

What is counted: ``samples_per_sec``, the lr scaling (``effective_batch``) and the epoch length count
*loaded* samples (as VideoMAE's repeated sampling: the lr ignores the repeats); the MFU counts the
FLOPs of every row the model computes, the copies included. The loss is the model's mean over all
rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..registry import ConfigError
from .sampler import mix_seed

__all__ = ["check_mask_repeats", "repeat_rows", "repeat_seed"]

_REPEAT_STREAM = 0x7265_7065_6174  # keeps the copies' seeds apart from every other seed


def check_mask_repeats(k: Any, *, masks_in_loader: bool, supervised: bool) -> int:
    """``train.mask_repeats`` validated: an int >= 1 that this run can use; raises ConfigError naming the key."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"train.mask_repeats must be an integer >= 1, got {k!r}")
    if k == 1:
        return 1
    if masks_in_loader:
        raise ConfigError(
            f"train.mask_repeats: {k} needs masks drawn by the model, but train.masks_in_loader draws one mask "
            "per sample in the loader (its k copies would share it); set train.masks_in_loader: false"
        )
    if supervised:
        raise ConfigError(
            f"train.mask_repeats: {k} applies to masked pretraining; this model takes labels (fine-tuning) and "
            "masks nothing, so the k copies of a sample would be the same row; use train.mask_repeats: 1"
        )
    return k


def repeat_seed(seed: int, r: int) -> int:
    """The mask seed of copy ``r`` of a sample whose mask seed is ``seed`` (copy 0 keeps ``seed``)."""
    return int(seed) if r == 0 else mix_seed(int(seed), _REPEAT_STREAM, r)


def _repeat_seeds(seeds: Tensor, k: int) -> Tensor:
    """(B,) seeds -> (B*k,): sample i's copies adjacent, copy r seeded by :func:`repeat_seed`."""
    out = [repeat_seed(s, r) for s in seeds.tolist() for r in range(k)]
    return torch.tensor(out, dtype=seeds.dtype, device=seeds.device)


def repeat_rows(inputs: dict[str, Tensor], extra: dict[str, Any], k: int) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The model's arguments with every sample repeated ``k`` times along dim 0.

    ``inputs`` {modality: (B_m, ...)} and ``extra``'s per-sample entries (``present`` {m: (B,)},
    ``mask_seeds`` {m: (B,)}) become ``(B_m*k, ...)``; with ``present`` a partial modality's rows
    (only the samples that carry it) are repeated the same way, so flags and rows still match.
    Fixed ``masks``/``decode_masks`` in the batch are refused: the copies would share them.
    """
    if k == 1:
        return inputs, extra
    fixed = [key for key in ("masks", "decode_masks") if key in extra]
    if fixed:
        raise ConfigError(
            f"train.mask_repeats: {k} needs masks drawn by the model, but the batch carries {fixed} (one per "
            "loaded sample, so the copies would share them); use train.mask_repeats: 1 with this dataset"
        )
    rows = {m: x.repeat_interleave(k, dim=0) for m, x in inputs.items()}
    out = dict(extra)
    if "present" in extra:
        out["present"] = {m: p.repeat_interleave(k, dim=0) for m, p in extra["present"].items()}
    if "mask_seeds" in extra:
        out["mask_seeds"] = {m: _repeat_seeds(torch.as_tensor(s), k) for m, s in extra["mask_seeds"].items()}
    return rows, out
