"""Reconstruction objectives (registry: :data:`OBJECTIVES`)."""

from .base import OBJECTIVES
from .mse import TARGET_NORMS, MaskedMSE

__all__ = ["OBJECTIVES", "MaskedMSE", "TARGET_NORMS"]
