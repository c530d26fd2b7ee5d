"""Modalities: one file each, registered by name in :data:`MODALITIES`.

Importing this package imports every modality module so their registrations run.
"""

from .base import MODALITIES, ModalitySpec, TokenizedInput, Tokenizer, register_modality
from . import image  # noqa: F401  (registers "image")
from . import video  # noqa: F401  (registers "video")
from . import points  # noqa: F401  (registers "points")
from . import text  # noqa: F401  (registers "text")
from . import audio  # noqa: F401  (registers "audio")

__all__ = ["MODALITIES", "ModalitySpec", "TokenizedInput", "Tokenizer", "register_modality"]
