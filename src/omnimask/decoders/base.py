"""The decoder contract and registry.

A decoder gets the encoded visible tokens of *its* modality (in encoder order), the modality's
:class:`~omnimask.masking.MaskSpec`, a position table for the full token grid at the decoder's
width, and optionally the rest of the encoded sequence as context (global tokens such as
``[CLS]``, and other modalities' visible tokens), and the token grid as the keyword ``grid``
(decoders that attend within local windows of the grid need its shape). It returns a prediction for **every** one of the
N grid positions, in the modality's reference patch layout: ``(B, N, out_dim)``.

Constructors receive ``in_dim`` (encoder width) and ``out_dim`` (the modality's ``patch_dim``) from
the model, and a decoder exposes its width as ``.dim``: the model builds the decoder's position
table at that width.
"""

from __future__ import annotations

from ..registry import Registry

__all__ = ["DECODERS"]

DECODERS: Registry = Registry("decoder")
