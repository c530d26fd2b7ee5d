"""Reconstruction objectives (registry: :data:`OBJECTIVES`, filled from this package's modules and the
``omnimask.objectives`` entry points on first lookup)."""

from .base import OBJECTIVES

__all__ = ["OBJECTIVES"]
