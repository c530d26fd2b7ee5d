"""Reconstruction objectives (registry: :data:`OBJECTIVES`)."""

from .base import OBJECTIVES
from .chamfer import CHAMFER_NORMS, MaskedChamfer
from .mse import TARGET_NORMS, MaskedMSE

__all__ = ["OBJECTIVES", "CHAMFER_NORMS", "MaskedChamfer", "MaskedMSE", "TARGET_NORMS"]
