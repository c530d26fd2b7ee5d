"""Per-modality decoders (registry: :data:`DECODERS`, filled from this package's modules and the
``omnimask.decoders`` entry points on first lookup)."""

from .base import DECODERS, Decoder

__all__ = ["DECODERS", "Decoder"]
