"""InfoNCE between pooled representations of two modalities of the same samples.

Unlike the reconstruction objectives (``objective(pred, target, mask)``, one per modality), this
one compares two modalities: ``infonce(a, b)`` with ``a``, ``b`` (B, D) pooled features where row
i of both comes from sample i. It is configured once per model under ``contrastive`` (see
:class:`~omnimask.model_config.OmniMaskConfig`), never as a modality's ``objective``.

With ``f(x) = x / |x|`` and ``s`` the scale (1 / temperature), the logits are
``s * f(b) @ f(a).T``: row j holds sample j of the second modality against every sample of the
first. The one-directional loss is the cross-entropy of each row against its own sample (CAV-MAE's
``-mean(diag(log_softmax(s * f(a) @ f(b).T, dim=0)))`` with ``a`` = audio, ``b`` = visual);
``symmetric`` averages it with the other direction. Under DDP the features of every process are
gathered (with their gradients) so each sample is contrasted with the whole global batch, as in
one process holding it all.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .base import OBJECTIVES

__all__ = ["InfoNCE", "gather_with_grad"]


class _Gather(torch.autograd.Function):
    """All-gather along dim 0 whose backward hands each process the gradient of its own rows,
    summed over every process's loss (an all-reduce, which every backend has)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """``(rows of every process concatenated, offset of this process's rows)``; ``(x, 0)`` when
    not distributed. Every process must pass the same number of rows."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return x, 0
    return _Gather.apply(x), dist.get_rank() * x.shape[0]


@OBJECTIVES.register("infonce")
class InfoNCE(nn.Module):
    """InfoNCE (CAV-MAE: temperature 0.05, fixed, one direction; CLIP: learned, symmetric).

    Args:
        temperature: the softmax temperature (the initial one when learned).
        learn_temperature: learn ``log(1 / temperature)`` (CLIP), the scale capped at 100.
        symmetric: average both directions instead of the second modality picking its partner
            among the first's samples only.
        gather: under DDP, contrast with every process's samples (the global batch) in training.
    """

    pairwise = True  # takes two modalities' features, not (pred, target, mask)

    def __init__(
        self, temperature: float = 0.05, learn_temperature: bool = False, symmetric: bool = False, gather: bool = True
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.symmetric, self.gather = bool(symmetric), bool(gather)
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale, persistent=False)

    @property
    def scale(self) -> Tensor:
        return self.log_scale.clamp(max=math.log(100.0)).exp()

    def logits(self, a: Tensor, b: Tensor) -> Tensor:
        """(B_b, B_a): ``scale * f(b) @ f(a).T`` in float32."""
        return self.scale * F.normalize(b.float(), dim=-1) @ F.normalize(a.float(), dim=-1).T

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if a.shape != b.shape or a.ndim != 2:
            raise ValueError(
                f"infonce: expected two (B, D) feature tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        gather = self.gather and self.training and torch.is_grad_enabled()
        a_all, offset = gather_with_grad(a) if gather else (a, 0)
        b_all = gather_with_grad(b)[0] if gather and self.symmetric else b
        target = torch.arange(a.shape[0], device=a.device) + offset
        loss = F.cross_entropy(self.logits(a_all, b), target)  # each b picks its a
        if self.symmetric:
            loss = (loss + F.cross_entropy(self.logits(b_all, a), target)) / 2
        return loss

    @torch.no_grad()
    def accuracy(self, a: Tensor, b: Tensor) -> Tensor:
        """Share of rows of the second modality whose best match is their own sample (this batch)."""
        return (self.logits(a, b).argmax(dim=1) == torch.arange(a.shape[0], device=a.device)).float().mean()
