"""Masking strategies. Polarity: ``mask`` True = hidden from the encoder (see :mod:`.base`)."""

from .base import MASKING, MaskingStrategy, MaskSpec, gather_tokens, spec_from_mask, spec_from_noise, with_decode
from .block import BlockMasking
from .dual import DualMasking
from .nearest_block import NearestBlockMasking
from .random import RandomMasking
from .running_cell import RunningCellMasking
from .span import SpanMasking
from .time_freq import TimeFreqMasking
from .tube import TubeMasking

__all__ = [
    "MASKING",
    "MaskSpec",
    "MaskingStrategy",
    "RandomMasking",
    "gather_tokens",
    "BlockMasking",
    "DualMasking",
    "NearestBlockMasking",
    "RunningCellMasking",
    "SpanMasking",
    "TimeFreqMasking",
    "TubeMasking",
    "with_decode",
    "spec_from_mask",
    "spec_from_noise",
    "build_masking",
]


def build_masking(cfg: dict, where: str = "masking") -> MaskingStrategy:
    """Build from ``{"name": ..., **kwargs}``."""
    cfg = dict(cfg)
    name = cfg.pop("name", "random")
    return MASKING.build(name, cfg, where=where)
