"""A run over several data sources (``data.sources``): parsing, datasets, pictures, evaluation.

A recipe's ``data`` section lists its sources and how they mix::

    data:
      mixing: {mode: per_step}               # or per_sample (omnimask.data.mixing)
      sources:
        digits:   {image: {scale: [0.5, 1.0]}, batch_size: 64}           # weight: size-proportional
        clips:    {video: {}, batch_size: 16, weight: 1.0}
        captions: {pairs: {format: embedded}, batch_size: 32}            # a multi-modality source

Each source names exactly one data key: one of the model's modalities (read by that modality's
reader) or a registered multi-modality source such as ``pairs``. ``weight`` defaults to the
source's size (size-proportional sampling); ``batch_size`` to ``train.batch_size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..data.mixing import MixedDataset, MixingConfig
from ..data.sources import SOURCES
from ..modalities import MODALITIES
from ..model_config import OmniMaskConfig
from ..registry import ConfigError, check_keys
from ..run_config import from_dict
from ..training import Mixing
from .common import build_dataset

__all__ = ["RunSource", "parse_sources", "mixed_datasets", "source_keys", "build_source"]

_SOURCE_OPTIONS = ("weight", "batch_size")


@dataclass
class RunSource:
    """One entry of ``data.sources``: its data key (a model modality or a source kind), the typed
    data config of that key, and its mixing weight and batch size (``None``: the defaults)."""

    name: str
    key: str
    config: Any
    weight: float | None = None
    batch_size: int | None = None


def parse_sources(config: OmniMaskConfig, data: dict) -> tuple[MixingConfig, list[RunSource]]:
    """Validate ``data.mixing`` and ``data.sources`` once: named errors for an unknown modality,
    a weight that is not positive, a batch size below 1, or a source with no or several data keys."""
    check_keys(data, ("mixing", "sources"), "data (a mixed run)")
    mixing = from_dict(MixingConfig, data.get("mixing") or {}, "data.mixing")
    raw = data.get("sources")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            "data.sources must map source names to {<modality or source kind>: {...}, weight, batch_size}"
        )
    known = [*config.modalities, *SOURCES.names()]
    sources = []
    for name, entry in raw.items():
        where = f"data.sources.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping, got {entry!r}")
        keys = [k for k in entry if k not in _SOURCE_OPTIONS]
        if len(keys) != 1:
            raise ConfigError(
                f"{where} must name exactly one of the model's modalities or a data source kind {known}; got {keys}"
            )
        key = keys[0]
        if key not in known:
            if key in MODALITIES:
                raise ConfigError(f"{where}: the model has no modality {key!r} (it has {list(config.modalities)})")
            raise ConfigError(f"{where}: {key!r} is neither a modality of the model {list(config.modalities)} "
                              f"nor a data source kind {SOURCES.names()}")  # fmt: skip
        weight, batch = entry.get("weight"), entry.get("batch_size")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0):
            raise ConfigError(f"{where}.weight must be a positive number, got {weight!r}")
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise ConfigError(f"{where}.batch_size must be a positive integer, got {batch!r}")
        typed = _typed(config, key, entry[key] or {}, f"{where}.{key}")
        sources.append(RunSource(name, key, typed, None if weight is None else float(weight), batch))
    return mixing, sources


def _typed(config: OmniMaskConfig, key: str, section: dict, where: str) -> Any:
    if key in config.modalities:
        spec = MODALITIES.get(config.modalities[key]["type"])
        if spec.data_config is None:
            raise ConfigError(f"{where}: modality type {config.modalities[key]['type']!r} has no dataset reader")
        return from_dict(spec.data_config, section, where)
    return from_dict(SOURCES.get(key).config, section, where)


def source_keys(src: RunSource) -> tuple[str, ...]:
    """The model keys a source's items carry."""
    return SOURCES.get(src.key).keys(src.config) if src.key in SOURCES else (src.key,)


def build_source(config: OmniMaskConfig, src: RunSource, split: str) -> Any:
    """A source's dataset for ``split`` (``train``, ``train_eval`` or ``val``)."""
    if src.key in SOURCES:
        return SOURCES.get(src.key).build(src.config, config.modalities, split)
    return build_dataset(config, {src.key: src.config}, src.key, split)


def mixed_datasets(
    config: OmniMaskConfig, sources: list[RunSource], mode: str, batch_size: int
) -> tuple[MixedDataset, Mixing]:
    """The training datasets end to end and how to draw them."""
    datasets = [build_source(config, s, "train") for s in sources]
    for s, d in zip(sources, datasets):
        if not hasattr(d, "__len__"):
            raise ConfigError(f"data.sources.{s.name}: a streaming source cannot be mixed (it has no length)")
    dataset = MixedDataset(datasets, [s.name for s in sources], [source_keys(s) for s in sources])
    weights = [s.weight if s.weight is not None else float(n) for s, n in zip(sources, dataset.sizes)]
    batches = [s.batch_size or batch_size for s in sources]
    return dataset, Mixing(weights=weights, batch_sizes=batches, mode=mode)


def picture_samples(config: OmniMaskConfig, sources: list[RunSource], count: int = 8) -> list[dict[str, torch.Tensor]]:
    """Fixed samples per source for reconstruction pictures (held-out where there is a split)."""
    groups = []
    for s in sources:
        try:
            ds = build_source(config, s, "val")
        except ValueError:
            ds = build_source(config, s, "train_eval")
        picks = torch.linspace(0, len(ds) - 1, min(count, len(ds))).long().tolist()
        items = [ds[i] for i in picks]
        groups.append({k: torch.stack([it[k] for it in items]) for k in source_keys(s)})
    return groups
