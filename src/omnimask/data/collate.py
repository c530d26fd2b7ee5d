"""Batch collation shared by the training loop and the loaders (modality-free)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import default_collate

__all__ = ["collate_repeated"]


def collate_repeated(batch: Sequence[Any]) -> Any:
    """Flatten list items (a dataset's ``repeats > 1``: several clips or masks of one decoded
    sample) into one batch, then ``default_collate``.

    ``[[a1, a2], [b1, b2]]`` -> the collation of ``[a1, a2, b1, b2]``; non-list items (plain dicts,
    tuples) are kept as they are, so this also works for ``repeats == 1``.
    """
    flat: list[Any] = []
    for item in batch:
        if isinstance(item, list):
            flat.extend(item)
        else:
            flat.append(item)
    return default_collate(flat)
