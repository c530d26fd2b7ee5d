"""Data sources that yield several modalities per sample (``data.<source>`` in a recipe config).

A per-modality dataset comes from its modality's :class:`~omnimask.modalities.ModalitySpec`
(``build_dataset``). A source whose samples carry several modalities together (image-caption
pairs; later audio-visual clips) registers a :class:`SourceSpec` here instead, from the modality
package that reads it; the recipe runner looks it up by the key of its ``data`` section. Like every
registry, :data:`SOURCES` fills itself on first lookup (the modality packages register sources).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..registry import Registry

__all__ = ["SOURCES", "SourceSpec", "register_source"]


@dataclass(frozen=True)
class SourceSpec:
    """A multi-modality data source.

    Attributes:
        name: the key of its section under ``data`` (``pairs``).
        config: the dataclass of that section (validated once when the recipe is loaded).
        build: ``(config, model modalities, split) -> dataset``; ``split`` is ``train`` (augmented),
            ``train_eval`` or ``val``; items are ``{model key: tensor, ...}``.
        keys: ``config -> the model keys its items carry`` (e.g. ``("image", "text")``).
        description: one line for ``omnimask list``.
    """

    name: str
    config: type
    build: Callable[[Any, dict, str], Any]
    keys: Callable[[Any], tuple[str, ...]]
    description: str = ""


def _discover() -> None:
    from ..modalities.base import MODALITIES  # sources are registered by the modality packages

    MODALITIES.discover()


SOURCES: Registry[SourceSpec] = Registry("data source", discover=_discover)


def register_source(spec: SourceSpec) -> SourceSpec:
    """Register ``spec`` under ``spec.name``; raises KeyError on a duplicate name."""
    SOURCES.register(spec.name)(spec)
    return spec
