"""Modality-free data machinery: the embedded dataset's core, multi-modality sources, the read-error
policy, dataset wrappers and batch collation.

Readers of one modality (image folders, video lists, audio lists, point files, captions) live in
that modality's package: ``omnimask.modalities.<name>``.
"""

from .collate import collate_repeated
from .embedded import (
    DATASET_VERSION,
    available_parts,
    embedded_part_root,
    ensure_embedded_dataset,
    load_digits_source,
    stratified_split,
    verify_part,
)
from .errors import DataReadError
from .sources import SOURCES, SourceSpec, register_source
from .wrappers import RenamedKeys

__all__ = [
    "DATASET_VERSION",
    "DataReadError",
    "RenamedKeys",
    "SOURCES",
    "SourceSpec",
    "available_parts",
    "collate_repeated",
    "embedded_part_root",
    "ensure_embedded_dataset",
    "load_digits_source",
    "register_source",
    "stratified_split",
    "verify_part",
]
