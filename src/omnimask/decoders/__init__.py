"""Per-modality decoders (registry: :data:`DECODERS`)."""

from .base import DECODERS
from .transformer import TransformerDecoder

__all__ = ["DECODERS", "TransformerDecoder"]
