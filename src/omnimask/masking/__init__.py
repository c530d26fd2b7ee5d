"""Masking strategies. Polarity: ``mask`` True = hidden from the encoder (see :mod:`.base`).

Each strategy is one module here that registers itself in :data:`MASKING`; the registry imports
them all on its first lookup (and any installed ``omnimask.masking`` entry point), so adding a
strategy is adding a file. Concrete classes are imported from their modules
(``omnimask.masking.tube.TubeMasking``) or looked up by name (``MASKING.get("tube")``).
"""

from .base import (
    MASKING,
    MaskingStrategy,
    MaskSpec,
    build_masking,
    gather_tokens,
    spec_from_mask,
    spec_from_noise,
    uniform_noise,
    with_decode,
)

__all__ = [
    "MASKING",
    "MaskSpec",
    "MaskingStrategy",
    "build_masking",
    "gather_tokens",
    "spec_from_mask",
    "spec_from_noise",
    "uniform_noise",
    "with_decode",
]
