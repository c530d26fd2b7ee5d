"""Masks drawn in the data loader, per sample (VideoMAE's way), instead of on the device.

:class:`LoaderMasks` wraps a dataset so every item also carries ``masks[key]`` (N,) bool (True =
hidden) and, for strategies that choose decoder targets, ``decode_masks[key]``. Each sample's
masks are ``strategy.mask_for_seed(grid, seed)`` with a seed drawn from torch's global RNG, which
:class:`~omnimask.training.SeededDataset` seeds from (run seed, epoch, index): the masks are the
same whichever worker loads the sample, and the model would draw the very same masks on the
device from the same seeds (``model(batch, mask_seeds={key: seeds})``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from ..masking.base import MaskingStrategy

__all__ = ["LoaderMasks"]


class LoaderMasks(Dataset):
    """Add per-sample masks to a dataset's items.

    Args:
        dataset: map-style dataset of dict items (or lists of dict items: repeated sampling; each
            repeat gets its own mask, as VideoMAE V2 does).
        strategies: ``{modality key: (strategy, token grid)}``.
    """

    def __init__(self, dataset: Any, strategies: dict[str, tuple[MaskingStrategy, tuple[int, ...]]]) -> None:
        self.dataset, self.strategies = dataset, dict(strategies)

    def __len__(self) -> int:
        return len(self.dataset)

    def _add(self, item: dict) -> dict:
        item = dict(item)
        masks, decode = {}, {}
        for key, (strategy, grid) in self.strategies.items():
            seed = int(torch.randint(0, 2**62, ()))
            masks[key], dec = strategy.mask_for_seed(grid, seed)
            if dec is not None:
                decode[key] = dec
        item["masks"] = masks
        if decode:
            item["decode_masks"] = decode
        return item

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        if isinstance(item, list):
            return [self._add(x) for x in item]
        return self._add(item)
