"""``train.compile``: :func:`torch.compile` of the module the step runs, and what compiling cost.

The trainer compiles the module it calls (after DDP/FSDP wrapping: DDP's bucketed all-reduce then
splits the graph where it should); checkpoints, ``full_model`` and hooks keep using the model
itself, so parameter names and state-dict keys are those of an uncompiled run and a checkpoint loads
into a plain model. Compiling happens in the first step(s); :class:`CompileTimer` reports it as the
extra time of the first step over the steady step time.
"""

from __future__ import annotations

import logging
import statistics

import torch
from torch import nn

from ..registry import ConfigError

__all__ = ["CompileTimer", "compile_module"]

logger = logging.getLogger(__name__)


def compile_module(net: nn.Module) -> nn.Module:
    """``torch.compile(net)``; the compiled module shares ``net``'s parameters.

    ``train.activation_checkpointing`` works with it (the blocks use non-reentrant checkpointing,
    which dynamo traces; tested: the same losses as the plain run). The masking code draws per-sample
    seeds and checks masks on the host, so the graph breaks there: the transformer blocks, where
    the time goes, compile whole.
    """
    if not hasattr(torch, "compile"):  # pragma: no cover - torch < 2
        raise ConfigError("train.compile needs torch >= 2.0 (torch.compile)")
    return torch.compile(net)


class CompileTimer:
    """Times the first ``1 + steady`` optimizer steps of a compiled run.

    ``compile_seconds`` = first step - median of the next ``steady`` steps (the steps that ran, when
    fewer); with a single step it is the whole first step (an upper bound). Logged once.
    """

    def __init__(self, steady: int = 3) -> None:
        self.steady = steady
        self.times: list[float] = []
        self.compile_seconds: float | None = None

    def add(self, seconds: float) -> None:
        if self.compile_seconds is not None:
            return
        self.times.append(seconds)
        if len(self.times) > self.steady:
            self.finish()

    def finish(self) -> float | None:
        """Compute (once) and log the compile time from the steps timed so far; None without any."""
        if self.compile_seconds is not None or not self.times:
            return self.compile_seconds
        first, rest = self.times[0], self.times[1:]
        if rest:
            steady = statistics.median(rest)
            self.compile_seconds = max(first - steady, 0.0)
            logger.info(
                "torch.compile: first step %.1f s, steady %.3f s/step -> compile ~%.1f s",
                first,
                steady,
                self.compile_seconds,
            )
        else:
            self.compile_seconds = first
            logger.info(
                "torch.compile: first step %.1f s (no later step to compare) -> compile <= %.1f s", first, first
            )
        return self.compile_seconds
