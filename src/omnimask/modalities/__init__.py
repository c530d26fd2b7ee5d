"""Modalities: one package each (``modalities/<name>/``), registered by name in :data:`MODALITIES`.

A modality package holds everything about one kind of data: its tokenizer, its readers and list
formats, its preprocessing, its pictures, its part of the embedded dataset, and the
:class:`ModalitySpec` that registers it (``spec.py``). The registry imports every package here on
its first lookup, plus every installed entry point of the group ``omnimask.modalities``, so adding
a modality is adding a folder (or installing a plugin) and touches no other file.

Code outside this package imports only the modality-neutral contract re-exported here (from
:mod:`.base`); a test enforces it.
"""

from .base import MODALITIES, ModalitySpec, TokenizedInput, Tokenizer, register_modality

__all__ = ["MODALITIES", "ModalitySpec", "TokenizedInput", "Tokenizer", "register_modality"]
