"""The objective contract: ``objective(pred, target, mask) -> scalar``.

``pred`` and ``target`` are (B, N, P) in the modality's patch layout, ``mask`` is (B, N) bool with
True = hidden; objectives average over hidden tokens only (MAE reconstructs what it did not see).
"""

from __future__ import annotations

from ..registry import Registry, discoverer

__all__ = ["OBJECTIVES"]

OBJECTIVES: Registry = Registry("objective", discover=discoverer("omnimask.objectives", "omnimask.objectives"))
