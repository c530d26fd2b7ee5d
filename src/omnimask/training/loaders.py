"""The trainer's data loaders: one dataset (indexable or streaming) or a mix of sources.

Each builder returns a :class:`Feed`: the loader, its sampler (None for a stream), the optimizer
steps per epoch and the samples per optimizer step over all processes. Order and augmentation
are functions of (seed, epoch, index) only (:mod:`.sampler`), so a resumed run replays them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..data.collate import collate_repeated
from ..data.mixing import MixedDataset, collate_mixed
from .mixing import MixedBatchSampler, expected_batch, nominal_steps_per_epoch
from .sampler import ResumableSampler, SeededDataset
from .signals import GuardedCollate, GuardedDataset, GuardedStream, ignore_stop_signals

__all__ = ["Feed", "Mixing", "plain_feed", "stream_feed", "mixed_feed"]

Collate = Callable[[list[Any]], Any]


@dataclass
class Mixing:
    """How a :class:`~omnimask.data.mixing.MixedDataset` is drawn (see :mod:`omnimask.data.mixing`).

    Attributes:
        weights: sampling weight per source.
        batch_sizes: per-rank micro-batch size per source (``per_step``); ``per_sample`` batches
            have ``train.batch_size`` samples.
        mode: ``per_step`` or ``per_sample``.
    """

    weights: list[float]
    batch_sizes: list[int]
    mode: str = "per_step"


@dataclass
class Feed:
    loader: DataLoader
    sampler: Any  # ResumableSampler, MixedBatchSampler, or None for a stream
    steps_per_epoch: int
    effective_batch: int  # samples per optimizer step over all processes (expected, when mixed)
    generator: torch.Generator  # seeded per epoch: creating a loader iterator never draws from the global RNG


def _sample_weights(dataset: Any) -> Any:
    """The per-item weights of ``dataset`` (or of a dataset it wraps) for balanced sampling."""
    d = dataset
    while d is not None:
        if hasattr(d, "sample_weights"):
            return d.sample_weights()
        d = getattr(d, "dataset", None)
    raise ValueError(f"train.balanced_sampling: {type(dataset).__name__} has no sample_weights() (audio datasets do)")


def _loader(dataset: Any, collate: Collate, train: Any, pin: bool, gen: torch.Generator, **kw: Any) -> DataLoader:
    return DataLoader(
        dataset,
        num_workers=train.num_workers,
        collate_fn=GuardedCollate(collate),
        pin_memory=pin,
        generator=gen,
        worker_init_fn=ignore_stop_signals,
        **kw,
    )


def plain_feed(
    dataset: Any, train: Any, rank: int, world_size: int, collate: Collate | None, pin: bool,
    mask_keys: Sequence[str] = (),
) -> Feed:  # fmt: skip
    """An indexable dataset, shuffled per epoch and split over the ranks (``mask_keys``: the
    modalities whose per-sample mask seeds each item carries, see :class:`SeededDataset`)."""
    sampler = ResumableSampler(
        len(dataset),
        seed=train.seed,
        rank=rank,
        world_size=world_size,
        weights=_sample_weights(dataset) if train.balanced_sampling else None,
        epoch_samples=train.epoch_samples if train.balanced_sampling else None,
    )
    steps = sampler.num_samples // train.batch_size // train.accum_steps
    if steps == 0:
        raise ValueError(
            f"dataset of {len(dataset)} items gives no optimizer step per epoch with batch_size "
            f"{train.batch_size} x accum_steps {train.accum_steps} x {world_size} process(es)"
        )
    gen = torch.Generator()
    loader = _loader(GuardedDataset(SeededDataset(dataset, mask_keys=mask_keys)), collate or collate_repeated,
                     train, pin, gen, batch_size=train.batch_size, sampler=sampler, drop_last=True,
                     persistent_workers=False)  # fmt: skip
    return Feed(loader, sampler, steps, train.batch_size * train.accum_steps * world_size, gen)


def stream_feed(dataset: Any, train: Any, world_size: int, collate: Collate | None, pin: bool) -> Feed:
    """A dataset that streams (tar shards) has no length: ``train.epoch_samples`` says how many
    samples (over all processes) make an epoch; each epoch reads the stream from its start, and
    a stream that ends early starts over. The dataset splits itself across ranks and workers."""
    if train.epoch_samples is None or train.epoch_samples < 1:
        raise ValueError(
            f"{type(dataset).__name__} streams and has no length: set train.epoch_samples to the samples "
            "per epoch (e.g. the number of samples in the shards)"
        )
    if train.balanced_sampling:
        raise ValueError("train.balanced_sampling needs an indexable dataset, not a stream")
    effective = train.batch_size * train.accum_steps * world_size
    steps = train.epoch_samples // effective
    if steps == 0:
        raise ValueError(f"train.epoch_samples {train.epoch_samples} is less than one step ({effective} samples)")
    gen = torch.Generator()
    loader = _loader(GuardedStream(dataset), collate or collate_repeated, train, pin, gen,
                     batch_size=train.batch_size, drop_last=True)  # fmt: skip
    return Feed(loader, None, steps, effective, gen)


def mixed_feed(
    dataset: Any, mixing: Mixing, train: Any, rank: int, world_size: int, modalities: Sequence[str],
    collate: Collate | None, pin: bool, total_steps: Callable[[int], int],
) -> Feed:  # fmt: skip
    """Sources drawn by weight, per step or per sample (see :class:`MixedBatchSampler`);
    ``total_steps(steps_per_epoch)`` gives the run's optimizer steps (the plan covers them)."""
    if not isinstance(dataset, MixedDataset):
        raise TypeError(f"mixing= needs a MixedDataset, got {type(dataset).__name__}")
    if train.balanced_sampling:
        raise ValueError("train.balanced_sampling applies to one dataset; a mixed run samples sources by weight")
    batch_sizes = mixing.batch_sizes if mixing.mode == "per_step" else [train.batch_size]
    effective = expected_batch(mixing.weights, batch_sizes, train.accum_steps, world_size, mixing.mode)
    steps = nominal_steps_per_epoch(dataset.sizes, effective)
    sampler = MixedBatchSampler(
        sizes=dataset.sizes,
        weights=mixing.weights,
        batch_sizes=batch_sizes,
        mode=mixing.mode,
        accum_steps=train.accum_steps,
        total_steps=total_steps(steps),
        steps_per_epoch=steps,
        seed=train.seed,
        rank=rank,
        world_size=world_size,
    )
    gen = torch.Generator()
    default = collate_mixed(modalities) if mixing.mode == "per_sample" else collate_repeated
    loader = _loader(GuardedDataset(SeededDataset(dataset)), collate or default, train, pin, gen,
                     batch_sampler=sampler, persistent_workers=False)  # fmt: skip
    return Feed(loader, sampler, steps, effective, gen)
