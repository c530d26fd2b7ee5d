"""Deterministic, resumable sampling with per-sample random seeds.

Exact resume needs two things from the data side:

* the order of samples in an epoch must be a function of (seed, epoch) only, and the loader must
  be able to start part-way through it (:class:`ResumableSampler`);
* the random augmentation of a sample must be a function of (seed, epoch, index) only, not of
  which worker process loads it or what that worker loaded before (:class:`SeededDataset`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..seeds import mix_seed

__all__ = ["ResumableSampler", "SeededDataset", "mix_seed"]

_MASK_STREAM = 0x6D61736B  # keeps mask seeds apart from every other use of a sample's seed


class ResumableSampler(Sampler[tuple[int, int]]):
    """Shuffled, rank-sharded sampler that yields ``(index, sample_seed)`` and can skip ahead.

    Args:
        dataset_len: number of items in the dataset.
        seed: base seed; the epoch-``e`` permutation comes from a generator seeded by (seed, e).
        shuffle: permute each epoch (else natural order).
        drop_last: drop the tail so every rank gets the same count; otherwise pad by wrapping
            around. Equal counts keep DDP ranks in lock-step.
        rank, world_size: this process's shard; every rank must use the same ``seed``.
        weights: optional per-item sampling weights (e.g. AudioMAE's balanced-sampling weights,
            ``AudioDataset.sample_weights()``). Each epoch then draws ``epoch_samples`` indices
            with probability proportional to the weights, without replacement when there are
            enough items with positive weight (as AudioMAE's ``WeightedRandomSampler``), else
            with replacement; still a function of (seed, epoch), so resuming stays exact.
        epoch_samples: items per epoch with ``weights`` (default: the dataset length; AudioMAE
            uses 200 000 per epoch of AS-2M).
    """

    def __init__(
        self,
        dataset_len: int,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        weights: Any = None,
        epoch_samples: int | None = None,
    ) -> None:
        if dataset_len <= 0:
            raise ValueError(f"dataset_len must be positive, got {dataset_len}")
        self.weights = None
        if weights is not None:
            w = torch.as_tensor(weights, dtype=torch.float64).flatten()
            if w.numel() != dataset_len:
                raise ValueError(f"weights: expected one weight per item ({dataset_len}), got {w.numel()}")
            if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not float(w.sum()) > 0:
                raise ValueError("weights must be finite, non-negative and not all zero")
            self.weights = w
        if epoch_samples is not None and (weights is None or int(epoch_samples) < 1):
            raise ValueError("epoch_samples needs weights and must be >= 1")
        self.epoch_len = int(epoch_samples) if epoch_samples is not None else dataset_len
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        self.dataset_len = dataset_len
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0
        if drop_last:
            self.num_samples = self.epoch_len // world_size
        else:
            self.num_samples = -(-self.epoch_len // world_size)
        if self.num_samples == 0:
            raise ValueError(f"dataset of {self.epoch_len} items per epoch is too small for {world_size} ranks")

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation; also resets any :meth:`set_start` offset."""
        self.epoch = epoch
        self.start = 0

    def set_start(self, n_samples_to_skip: int) -> None:
        """Skip this rank's first ``n_samples_to_skip`` samples of the current epoch (resume)."""
        if not 0 <= n_samples_to_skip <= self.num_samples:
            raise ValueError(f"cannot skip {n_samples_to_skip} of {self.num_samples} samples")
        self.start = n_samples_to_skip

    def indices(self) -> list[int]:
        """This rank's full index list for the current epoch (before the start offset)."""
        if self.weights is not None:
            g = torch.Generator()
            g.manual_seed(mix_seed(self.seed, self.epoch))
            replacement = self.epoch_len > int((self.weights > 0).sum())
            order = torch.multinomial(self.weights, self.epoch_len, replacement=replacement, generator=g).tolist()
        elif self.shuffle:
            g = torch.Generator()
            g.manual_seed(mix_seed(self.seed, self.epoch))
            order = torch.randperm(self.dataset_len, generator=g).tolist()
        else:
            order = list(range(self.dataset_len))
        total = self.num_samples * self.world_size
        if total > len(order):  # pad by wrapping around (drop_last=False)
            reps = -(-total // len(order))
            order = (order * reps)[:total]
        order = order[:total]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.indices()[self.start :]:
            yield index, mix_seed(self.seed, self.epoch, index)

    def __len__(self) -> int:
        return self.num_samples - self.start


class SeededDataset(Dataset):
    """Wrap a map-style dataset so ``ds[(index, sample_seed)]`` is reproducible.

    The inner ``dataset[index]`` runs with torch, python ``random`` and numpy seeded from
    ``sample_seed``; all three generators are restored afterwards, so loading in the main process
    (``num_workers=0``) leaves the training RNG stream untouched. A plain int key is passed
    through unseeded.

    With ``mask_keys`` every (dict) item also carries ``mask_seeds``: ``{key: seed}`` for each of
    those modalities, a function of ``sample_seed`` (and of the repeat, for an item that is a list
    of repeated samples). The trainer draws each sample's mask from them
    (``train.mask_seeding: sample``), so a sample gets the same mask on whichever rank, in whatever
    batch, at whatever world size it is trained.
    """

    def __init__(self, dataset: Any, mask_keys: Sequence[str] = ()) -> None:
        self.dataset = dataset
        self.mask_keys = list(mask_keys)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, (tuple, list)):
            return self.dataset[key]
        index, sample_seed = key
        py_state = random.getstate()
        np_state = np.random.get_state()
        # devices=[]: only the CPU generator is forked. Seeding goes through the CPU default
        # generator, not torch.manual_seed, which would also reseed (and so clobber) CUDA RNGs.
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(sample_seed)
            random.seed(sample_seed)
            np.random.seed(sample_seed % (1 << 32))
            try:
                item = self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
        if not self.mask_keys:
            return item
        if isinstance(item, list):
            return [self._add_seeds(x, sample_seed, r) for r, x in enumerate(item)]
        return self._add_seeds(item, sample_seed, 0)

    def _add_seeds(self, item: Any, sample_seed: int, repeat: int) -> Any:
        if not isinstance(item, dict):
            raise TypeError(f"per-sample mask seeds need dict items, got {type(item).__name__}")
        seeds = {k: mix_seed(sample_seed, _MASK_STREAM, repeat, j) for j, k in enumerate(self.mask_keys)}
        return {**item, "mask_seeds": seeds}
