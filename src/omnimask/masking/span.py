"""Span masking (SpanBERT): hide contiguous runs of tokens whose lengths follow a clipped geometric law.

Meant for 1-D token sequences (text); a grid with more axes is treated in its flattened,
row-major order.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import MASKING, MaskingStrategy, MaskSpec, spec_from_mask

__all__ = ["SpanMasking"]


@MASKING.register("span")
class SpanMasking(MaskingStrategy):
    """Hide spans until exactly the strategy's hidden count is reached.

    Span lengths are drawn from a geometric distribution with success probability ``p``,
    truncated to ``[1, max_span]`` (SpanBERT: ``p = 0.2``, ``max_span = 10``, mean length 3.8):
    ``P(l) ∝ p (1 - p)^(l - 1)``. Each span starts at a uniformly drawn position; spans may touch
    or overlap (overlaps are not counted twice), and the last span is cut so that every sample hides
    exactly ``N - num_keep(N)`` tokens, keeping the visible set dense.

    Args:
        ratio: fraction hidden (BERT-style 0.15 up to M3AE's 0.5-0.75).
        p: geometric success probability.
        max_span: longest span.
        count: ``"hidden"`` (default: ``int(N * ratio)`` hidden, as BERT's budget) or ``"visible"``.
    """

    def __init__(self, ratio: float = 0.15, p: float = 0.2, max_span: int = 10, count: str = "hidden") -> None:
        super().__init__(ratio, count)
        if not 0.0 < p <= 1.0:
            raise ValueError(f"span masking: p must be in (0, 1], got {p}")
        if isinstance(max_span, bool) or not isinstance(max_span, int) or max_span < 1:
            raise ValueError(f"span masking: max_span must be a positive int, got {max_span!r}")
        self.p, self.max_span = float(p), max_span
        lengths = torch.arange(1, max_span + 1, dtype=torch.float64)
        pmf = self.p * (1 - self.p) ** (lengths - 1)
        self.length_probs = pmf / pmf.sum()  # P(length = l), l = 1..max_span

    def span_lengths(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` span lengths drawn from the clipped geometric law (long tensor)."""
        return torch.multinomial(self.length_probs, n, replacement=True, generator=generator) + 1

    def _one(self, n: int, hidden: int, generator: torch.Generator | None) -> Tensor:
        mask = torch.zeros(n, dtype=torch.bool)
        left = hidden
        while left > 0:
            length = int(self.span_lengths(1, generator))
            start = int(torch.randint(0, n, (), generator=generator))
            span = mask[start : start + length]
            new = (~span).nonzero().flatten()[:left]  # cut the last span to the exact budget
            span[new] = True
            left -= len(new)
        return mask

    def sample(
        self, batch_size: int, grid: tuple[int, ...], *, device: torch.device, generator: torch.Generator | None
    ) -> MaskSpec:
        n = math.prod(grid)
        hidden = n - self.num_keep(n)
        gen = generator if generator is None or generator.device.type == "cpu" else None  # drawn on the CPU
        mask = (
            torch.stack([self._one(n, hidden, gen) for _ in range(batch_size)])
            if batch_size
            else torch.zeros(0, n, dtype=torch.bool)
        )
        return spec_from_mask(mask.to(device))

    def __repr__(self) -> str:
        return f"SpanMasking(ratio={self.ratio}, p={self.p}, max_span={self.max_span})"
