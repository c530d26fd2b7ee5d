"""One run over several data sources: which source each sample comes from, reproducibly.

A *source* is one dataset with its own set of modality keys (an image folder, a video list, an
audio list, image-caption pairs, point files ...), a sampling weight and, for ``per_step`` mixing,
its own batch size. :class:`MixedDataset` concatenates the sources;
:class:`omnimask.training.mixing.MixedBatchSampler` decides every micro-batch:

* ``per_step`` (default; OmniMAE, data2vec's multimodal task, PolyViT): each optimizer step draws
  one source by weight, and all its gradient-accumulation micro-batches (on every rank) come from
  that source, at that source's batch size;
* ``per_sample``: every sample of every batch draws its source by weight (4M's mixture); a batch
  then mixes modality sets, and :func:`collate_mixed` stacks each modality over the samples that
  have it, with a ``present`` flag per sample.

Everything is a function of ``(seed, step)``: the source sequence, and for each source the position
in its own stream of shuffled epochs (``(seed, source, epoch)`` permutations). Resuming at step
``t`` therefore replays the very same sources and samples, with no sampler state to save.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, default_collate

from ..registry import ConfigError

__all__ = ["MIXING_MODES", "MixedDataset", "MixingConfig", "collate_mixed"]

MIXING_MODES = ("per_step", "per_sample")


@dataclass
class MixingConfig:
    """``data.mixing`` of a recipe that lists ``data.sources``.

    Attributes:
        mode: ``per_step`` (each step one source) or ``per_sample`` (sources mixed within a batch).
    """

    mode: str = "per_step"

    def __post_init__(self) -> None:
        if self.mode not in MIXING_MODES:
            raise ConfigError(f"data.mixing.mode must be one of {MIXING_MODES}, got {self.mode!r}")


class MixedDataset(Dataset):
    """Sources end to end: global index ``offsets[s] + i`` is item ``i`` of source ``s``.

    Items gain ``"source"`` (the source's position); an item lacking a modality its source
    declares raises ``ValueError`` naming the source, the item and the missing keys.
    """

    def __init__(self, datasets: Sequence[Any], names: Sequence[str], keys: Sequence[Sequence[str]]) -> None:
        if not (len(datasets) == len(names) == len(keys)) or not datasets:
            raise ValueError("MixedDataset needs one name and one key set per dataset, and at least one dataset")
        self.datasets, self.names, self.keys = list(datasets), list(names), [tuple(k) for k in keys]
        self.sizes = [len(d) for d in self.datasets]
        empty = [n for n, size in zip(self.names, self.sizes) if size == 0]
        if empty:
            raise ValueError(f"data.sources: {empty} hold no samples")
        self.offsets = [0]
        for size in self.sizes[:-1]:
            self.offsets.append(self.offsets[-1] + size)

    def __len__(self) -> int:
        return sum(self.sizes)

    def locate(self, index: int) -> tuple[int, int]:
        """``(source, index within it)`` of a global index."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} mixed samples")
        s = max(i for i, off in enumerate(self.offsets) if off <= index)
        return s, index - self.offsets[s]

    def __getitem__(self, index: int) -> Any:
        s, i = self.locate(index)
        item = self.datasets[s][i]
        items = item if isinstance(item, list) else [item]  # a source may repeat one decode
        for it in items:
            missing = [k for k in self.keys[s] if k not in it]
            if missing:
                raise ValueError(
                    f"data.sources.{self.names[s]}: item {i} has no {missing} although the source declares "
                    f"{list(self.keys[s])} (its keys: {sorted(it)})"
                )
            it["source"] = s
        return item


def collate_mixed(modalities: Sequence[str]) -> Any:
    """Collation for ``per_sample`` mixing: items carry different modality sets.

    Returns a function turning a list of items into ``{m: (B_m, ...) stacked over the items that
    have m, "present": {m: (B,) bool}, "source": (B,), "skipped": (B,)}``. Other item fields
    (labels, indices) are dropped: sources need not agree on them.
    """
    wanted = tuple(modalities)

    def collate(items: list[Any]) -> dict[str, Any]:
        flat = [x for it in items for x in (it if isinstance(it, list) else [it])]
        batch: dict[str, Any] = {"present": {}}
        for m in wanted:
            have = [m in it for it in flat]
            if any(have):
                batch[m] = default_collate([it[m] for it in flat if m in it])
                batch["present"][m] = torch.tensor(have)
        batch["source"] = torch.tensor([int(it.get("source", 0)) for it in flat])
        batch["skipped"] = torch.tensor([int(it.get("skipped", 0)) for it in flat])
        return batch

    return collate
