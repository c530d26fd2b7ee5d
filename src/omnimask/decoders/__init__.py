"""Per-modality decoders (registry: :data:`DECODERS`)."""

from .base import DECODERS
from .local_window import LocalWindowDecoder
from .mlp import MLPDecoder
from .transformer import TransformerDecoder

__all__ = ["DECODERS", "LocalWindowDecoder", "MLPDecoder", "TransformerDecoder"]
