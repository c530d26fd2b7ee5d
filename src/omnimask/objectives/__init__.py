"""Reconstruction objectives (registry: :data:`OBJECTIVES`)."""

from .base import OBJECTIVES
from .chamfer import CHAMFER_NORMS, MaskedChamfer
from .cross_entropy import MaskedCrossEntropy
from .mse import TARGET_NORMS, MaskedMSE

__all__ = ["OBJECTIVES", "CHAMFER_NORMS", "MaskedChamfer", "MaskedCrossEntropy", "MaskedMSE", "TARGET_NORMS"]
