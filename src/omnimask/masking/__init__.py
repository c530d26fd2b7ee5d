"""Masking strategies. Polarity: ``mask`` True = hidden from the encoder (see :mod:`.base`)."""

from .base import MASKING, MaskingStrategy, MaskSpec, gather_tokens, spec_from_mask, spec_from_noise
from .block import BlockMasking
from .random import RandomMasking

__all__ = [
    "MASKING",
    "MaskSpec",
    "MaskingStrategy",
    "RandomMasking",
    "gather_tokens",
    "BlockMasking",
    "spec_from_mask",
    "spec_from_noise",
    "build_masking",
]


def build_masking(cfg: dict, where: str = "masking") -> MaskingStrategy:
    """Build from ``{"name": ..., **kwargs}``."""
    cfg = dict(cfg)
    name = cfg.pop("name", "random")
    return MASKING.build(name, cfg, where=where)
