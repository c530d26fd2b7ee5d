"""The sampler of a mixed run: every micro-batch's source and samples, a pure function of the step.

See :mod:`omnimask.data.mixing` for the two mixing modes. The plan is drawn from ``(seed, step)``
and each source reads its own stream of ``(seed, source, epoch)`` permutations, so resuming at
step ``t`` replays the same sources and samples with no sampler state to checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from ..data.mixing import MIXING_MODES
from .sampler import mix_seed

__all__ = ["MixedBatchSampler", "expected_batch", "nominal_steps_per_epoch", "source_probabilities"]

_SALT_CHOICE, _SALT_ORDER = 0x6D6978, 0x6F7264  # keep the choice and order streams apart


class MixedBatchSampler(Sampler[list[tuple[int, int]]]):
    """Micro-batches of ``(global index, sample seed)`` for a :class:`MixedDataset`.

    Args:
        sizes: items per source.
        weights: sampling weight per source (positive; normalised here).
        batch_sizes: per-rank micro-batch size per source (``per_step``); ``per_sample`` uses
            ``batch_sizes[0]`` for every batch.
        accum_steps: micro-batches per optimizer step (all from one source with ``per_step``).
        total_steps: optimizer steps the run will take (the plan is drawn for them).
        steps_per_epoch: optimizer steps per (nominal) epoch of the training loop.
        seed, rank, world_size: every rank uses the same seed and takes its own slice of each
            global micro-batch.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        batch_sizes: Sequence[int],
        accum_steps: int,
        total_steps: int,
        steps_per_epoch: int,
        mode: str = "per_step",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if mode not in MIXING_MODES:
            raise ValueError(f"mixing mode must be one of {MIXING_MODES}, got {mode!r}")
        self.sizes, self.weights = [int(n) for n in sizes], source_probabilities(weights, len(sizes))
        self.batch_sizes = [int(b) for b in batch_sizes]
        self.mode, self.accum, self.seed = mode, int(accum_steps), int(seed)
        self.rank, self.world_size = rank, world_size
        self.total_steps, self.steps_per_epoch = int(total_steps), int(steps_per_epoch)
        self._orders: dict[tuple[int, int], list[int]] = {}
        # consumed[t, s]: samples of source s used (over all ranks) before step t.
        self.consumed = torch.zeros(self.total_steps + 1, len(self.sizes), dtype=torch.long)
        for t in range(self.total_steps):
            self.consumed[t + 1] = self.consumed[t] + torch.bincount(self._slots(t), minlength=len(self.sizes))
        self.epoch, self.start = 0, 0

    # ---- the plan, a pure function of (seed, step)
    def _slots(self, step: int) -> torch.Tensor:
        """Source of every global sample slot of ``step``, in (micro-batch, rank, position) order."""
        g = torch.Generator().manual_seed(mix_seed(self.seed, _SALT_CHOICE, step))
        if self.mode == "per_step":
            s = int(torch.multinomial(self.weights, 1, generator=g))
            return torch.full((self.accum * self.world_size * self.batch_sizes[s],), s, dtype=torch.long)
        n = self.accum * self.world_size * self.batch_sizes[0]
        return torch.multinomial(self.weights, n, replacement=True, generator=g)

    def source_of_step(self, step: int) -> int | None:
        """The one source of ``step`` under ``per_step`` mixing (``None`` for ``per_sample``)."""
        return int(self._slots(step)[0]) if self.mode == "per_step" else None

    def _order(self, source: int, epoch: int) -> list[int]:
        key = (source, epoch)
        if key not in self._orders:
            if len(self._orders) > 64:  # old epochs are never revisited
                self._orders.clear()
            g = torch.Generator().manual_seed(mix_seed(self.seed, _SALT_ORDER, source, epoch))
            self._orders[key] = torch.randperm(self.sizes[source], generator=g).tolist()
        return self._orders[key]

    def _sample(self, source: int, position: int) -> tuple[int, int]:
        """``(index within the source, sample seed)`` at ``position`` of the source's stream."""
        epoch, k = divmod(position, self.sizes[source])
        i = self._order(source, epoch)[k]
        return i, mix_seed(self.seed, source, epoch, i)

    def step_batches(self, step: int) -> list[list[tuple[int, int, int]]]:
        """This rank's micro-batches of ``step`` as ``(source, index in source, seed)`` triples."""
        slots = self._slots(step).view(self.accum, self.world_size, -1)
        used = self.consumed[step].clone()
        out = []
        for micro in range(self.accum):
            mine = []
            for r in range(self.world_size):
                for s in slots[micro, r].tolist():
                    pos = int(used[s])
                    used[s] += 1
                    if r == self.rank:
                        mine.append((s, *self._sample(s, pos)))
            out.append(mine)
        return out

    def source_epochs(self, step: int) -> list[float]:
        """Passes over each source completed before ``step`` (samples used / source size)."""
        return [float(c) / n for c, n in zip(self.consumed[step].tolist(), self.sizes)]

    # ---- the Sampler interface used by the training loop
    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start = epoch, 0

    def set_start_step(self, step_in_epoch: int) -> None:
        """Skip the epoch's first ``step_in_epoch`` optimizer steps (resume)."""
        self.start = step_in_epoch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        offsets = [0]
        for size in self.sizes[:-1]:
            offsets.append(offsets[-1] + size)
        first = self.epoch * self.steps_per_epoch + self.start
        last = min((self.epoch + 1) * self.steps_per_epoch, self.total_steps)
        for step in range(first, last):
            for batch in self.step_batches(step):
                yield [(offsets[s] + i, seed) for s, i, seed in batch]

    def __len__(self) -> int:
        first = self.epoch * self.steps_per_epoch + self.start
        return max(0, min((self.epoch + 1) * self.steps_per_epoch, self.total_steps) - first) * self.accum

    def expected_batch(self) -> float:
        """Samples per optimizer step over all ranks, in expectation over the source draw."""
        return expected_batch(self.weights, self.batch_sizes, self.accum, self.world_size, self.mode)


def source_probabilities(weights: Sequence[float], count: int) -> torch.Tensor:
    """``weights`` normalised to probabilities; a named error unless there is one positive,
    finite weight per source."""
    w = torch.as_tensor(list(weights), dtype=torch.float64)
    if w.numel() != count or not bool(torch.isfinite(w).all()) or bool((w <= 0).any()):
        raise ValueError(f"source weights must be positive and finite, one per source; got {list(weights)}")
    return w / w.sum()


def expected_batch(
    weights: Sequence[float] | torch.Tensor, batch_sizes: Sequence[int], accum_steps: int, world_size: int, mode: str
) -> float:
    """Samples per optimizer step over all ranks, in expectation over the source draw (``per_sample``
    batches have ``batch_sizes[0]`` samples whatever their sources)."""
    if mode == "per_sample":
        return float(batch_sizes[0] * accum_steps * world_size)
    p = source_probabilities(weights, len(batch_sizes))
    return float((p * torch.as_tensor(list(batch_sizes), dtype=torch.float64)).sum()) * accum_steps * world_size


def nominal_steps_per_epoch(sizes: Sequence[int], expected_batch: float) -> int:
    """Optimizer steps that use, in expectation, as many samples as all sources hold."""
    return max(1, math.floor(sum(sizes) / expected_batch))
