"""What the pretraining model hands a decoder beyond the encoder's output.

* The positions to reconstruct when the decoder reconstructs only a fraction of the hidden ones
  (``decoder.decode_ratio < 1``: CrossMAE's partial decoding, decoder-side masking with MAE's
  decoder): :func:`decode_selection`.
* The modality's tokens after every encoder block, for decoders that mix them
  (``decoder.wants_layers``, CrossMAE's feature fusion): :func:`layer_parts`.

Axis legend: B batch, N grid positions, K visible tokens of the modality, D encoder width.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..decoders.base import check_decode_ratio
from ..masking import MaskSpec, uniform_noise, with_decode
from ..registry import ConfigError
from ..seeds import mix_seed

__all__ = ["decode_noise", "decode_selection", "layer_parts"]

_DECODE_STREAM = 0x6465636F  # keeps the decode draw apart from the mask drawn from the same seed


def _mixed_seed(seed: int) -> int:
    """The seed of a sample's decode draw: its mask seed mixed with the decode stream."""
    return mix_seed(int(seed) ^ _DECODE_STREAM)


def decode_noise(
    shape: tuple[int, int],
    device: torch.device | str,
    generator: torch.Generator | None = None,
    seeds: Tensor | list[int] | None = None,
) -> Tensor:
    """(B, N) U[0, 1) noise that ranks the hidden positions: row ``b`` from ``seeds[b]`` alone (drawn
    on the CPU, so any batch size, device or world size gives the same row), else from
    ``generator``, else from the global RNG."""
    if seeds is None:
        return uniform_noise(shape, device, generator)
    seeds = seeds.tolist() if isinstance(seeds, Tensor) else list(seeds)
    if len(seeds) != shape[0]:
        raise ValueError(f"mask_seeds: expected {shape[0]} per-sample seeds, got {len(seeds)}")
    rows = [torch.rand(shape[1], generator=torch.Generator().manual_seed(_mixed_seed(s))) for s in seeds]
    return torch.stack(rows).to(device) if rows else torch.zeros(shape, device=device)


def decode_selection(
    spec: MaskSpec,
    decoder: Any,
    valid: Tensor | None,
    where: str,
    generator: torch.Generator | None = None,
    seeds: Tensor | list[int] | None = None,
) -> MaskSpec:
    """``spec`` with the positions ``decoder`` reconstructs, unless it already has a selection.

    A decoder that predicts every position with ``decode_ratio`` 1 gets ``spec`` unchanged; one that
    predicts hidden positions gets all of them; with ``decode_ratio < 1`` each sample gets
    ``max(1, round(ratio * hidden))`` of its hidden positions, uniformly at random (real tokens
    before padding), from :func:`decode_noise`. ``where`` is the decoder's config key.
    """
    if spec.ids_decode is not None:
        return spec
    try:
        ratio = check_decode_ratio(getattr(decoder, "decode_ratio", 1.0), f"{where}.decode_ratio")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    b, n = spec.mask.shape
    hidden = int(spec.mask[0].sum()) if b else 0
    if ratio == 1.0 or hidden == 0:
        if getattr(decoder, "predict", "all") != "hidden":
            return spec
        return with_decode(spec, spec.mask, f"{where}: the decoder predicts hidden positions; mask")
    count = max(1, round(ratio * hidden))
    rank = decode_noise((b, n), spec.mask.device, generator, seeds) + (~spec.mask).float() * 4.0  # hidden first
    if valid is not None:
        rank = rank + (~valid.to(spec.mask.device)).float() * 2.0  # ... and among them real tokens first
    chosen = torch.argsort(rank, dim=1)[:, :count]
    decode = torch.zeros_like(spec.mask).scatter(1, chosen, True)
    return with_decode(spec, decode, f"{where}.decode_ratio")


def layer_parts(enc: Any, key: str, layer: int | None = None) -> list[Tensor]:
    """Modality ``key``'s (B, K, D) tokens after each shared encoder block, up to block ``layer``
    (all by default); the last entry is what the decoder gets as its input: the encoder's (normed)
    output, or block ``layer``'s output with ``decoder_layer``. Needs ``enc.hidden_states``."""
    if enc.hidden_states is None:
        raise ValueError("the encoder ran without output_hidden_states; a decoder that mixes layers needs them")
    g = enc.global_tokens.shape[1]
    sizes = [p.shape[1] for p in enc.parts.values()]
    i = list(enc.parts).index(key)
    states = enc.hidden_states[:layer] if layer else enc.hidden_states
    out = [torch.split(h[:, g:], sizes, dim=1)[i] for h in states]
    if not layer and out:
        out[-1] = enc.parts[key]
    return out
