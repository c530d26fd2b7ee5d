"""Block-wise masking over a 2-D token grid (BEiT / SimMIM style).

Rectangles of random area and aspect ratio are hidden until the target count is reached, as
BEiT's ``MaskingGenerator`` does. BEiT may stop short of the target; because the visible set must
be dense, the shortfall (usually a few tokens) is topped up with random single tokens so every
sample hides exactly ``N - int(N * (1 - ratio))`` tokens.
"""

from __future__ import annotations

import math

import torch

from .base import MASKING, MaskingStrategy, MaskSpec, spec_from_mask

__all__ = ["BlockMasking"]


def _uniform(lo: float, hi: float, g: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _randint(lo: int, hi: int, g: torch.Generator | None) -> int:
    """Uniform integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


@MASKING.register("block")
class BlockMasking(MaskingStrategy):
    """Hide rectangular blocks of a (rows, cols) grid; grids of more than 2 axes use the last two.

    Args:
        ratio: fraction of tokens hidden (exact after top-up).
        min_block: smallest block area in tokens (BEiT uses 16 on a 14x14 grid).
        max_block: largest block area; ``None`` = no limit beyond the target.
        min_aspect: aspect ratios are drawn log-uniformly from [min_aspect, 1 / min_aspect].
    """

    def __init__(self, ratio: float = 0.4, min_block: int = 4, max_block: int | None = None, min_aspect: float = 0.3):
        super().__init__(ratio)
        if min_block < 1:
            raise ValueError(f"min_block must be >= 1, got {min_block}")
        if not 0 < min_aspect <= 1:
            raise ValueError(f"min_aspect must be in (0, 1], got {min_aspect}")
        self.min_block = min_block
        self.max_block = max_block
        self.log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))

    def _one(self, rows: int, cols: int, target: int, g: torch.Generator | None) -> torch.Tensor:
        hidden = torch.zeros(rows, cols, dtype=torch.bool)
        count = 0
        while count < target:
            budget = target - count
            if self.max_block is not None:
                budget = min(budget, self.max_block)
            added = 0
            for _ in range(10):  # BEiT's attempt limit per block
                if budget < self.min_block:
                    break
                area = _uniform(self.min_block, budget, g)
                aspect = math.exp(_uniform(*self.log_aspect, g))
                h = int(round(math.sqrt(area * aspect)))
                w = int(round(math.sqrt(area / aspect)))
                if 0 < h < rows and 0 < w < cols:
                    top, left = _randint(0, rows - h, g), _randint(0, cols - w, g)
                    block = hidden[top : top + h, left : left + w]
                    new = int((~block).sum())
                    if 0 < new <= budget:
                        block.fill_(True)
                        added = new
                        break
            if added == 0:
                break
            count += added
        if count < target:  # top up with random single tokens
            free = (~hidden).flatten().nonzero().squeeze(1)
            pick = free[torch.randperm(free.numel(), generator=g)[: target - count]]
            hidden.view(-1)[pick] = True
        return hidden.flatten()

    def sample(
        self, batch_size: int, grid: tuple[int, ...], *, device: torch.device, generator: torch.Generator | None
    ) -> MaskSpec:
        if len(grid) < 2:
            raise ValueError(f"block masking needs a grid of at least 2 axes, got {grid}")
        lead, rows, cols = math.prod(grid[:-2]), grid[-2], grid[-1]
        n = math.prod(grid)
        target = self.num_hidden(n)
        if generator is not None and generator.device.type != "cpu":
            raise ValueError("block masking draws its blocks on the CPU; pass a CPU torch.Generator")
        g = generator
        # Blocks are drawn per 2-D slice and the per-slice targets add up to the total.
        per_slice = [target // lead + (1 if i < target % lead else 0) for i in range(lead)]
        masks = [torch.cat([self._one(rows, cols, t, g) for t in per_slice]) for _ in range(batch_size)]
        return spec_from_mask(torch.stack(masks).to(device))
