"""Dual masking (VideoMAE V2): one strategy hides tokens from the encoder, a second one chooses
which positions the decoder reconstructs, so the decoder runs on a fraction of the tokens."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import MASKING, MaskingStrategy, MaskSpec, build_masking, with_decode

__all__ = ["DualMasking"]


@MASKING.register("dual")
class DualMasking(MaskingStrategy):
    """Encoder masking plus decoder masking.

    Args:
        encoder: the encoder's strategy config, e.g. ``{"name": "tube", "ratio": 0.9}``.
        decoder: the strategy whose mask (True) *drops* positions from the decoder, e.g.
            ``{"name": "running_cell", "ratio": 0.5}``; the decoder reconstructs the rest.

    The two draws are independent, as in VideoMAE V2: some decoded positions are visible to the
    encoder; they are decoded (they cost compute) but the loss only counts hidden ones
    (:attr:`MaskSpec.loss_mask`). ``noise=`` and ``mask=`` fix the encoder mask; the decoder's
    selection then comes from ``decode=`` or a fresh draw.
    """

    def __init__(self, encoder: dict, decoder: dict) -> None:
        if not isinstance(encoder, dict) or not isinstance(decoder, dict):
            raise ValueError("dual masking takes encoder: {name: ..., ...} and decoder: {name: ..., ...} mappings")
        self.encoder = build_masking(encoder, "masking.encoder")
        self.decoder = build_masking(decoder, "masking.decoder")
        if isinstance(self.encoder, DualMasking) or isinstance(self.decoder, DualMasking):
            raise ValueError("dual masking cannot nest another dual masking")
        self.ratio = self.encoder.ratio
        self.count = self.encoder.count
        self.uses_noise = self.encoder.uses_noise
        self.needs_coords = self.encoder.needs_coords or self.decoder.needs_coords

    def noise_shape(self, grid: tuple[int, ...]) -> tuple[int, ...]:
        return self.encoder.noise_shape(grid)

    def _draw(
        self,
        batch_size: int,
        grid: tuple[int, ...],
        device: torch.device,
        *,
        noise: Tensor | None = None,
        mask: Tensor | None = None,
        decode: Tensor | None = None,
        generator: torch.Generator | None = None,
        coords: Tensor | None = None,
        valid: Tensor | None = None,
    ) -> MaskSpec:
        spec = self.encoder._draw(
            batch_size, grid, device, noise=noise, mask=mask, generator=generator, coords=coords, valid=valid
        )
        if decode is None:
            decode = ~self.decoder._draw(batch_size, grid, device, generator=generator, coords=coords).mask
        return with_decode(spec, decode.to(device))

    def __repr__(self) -> str:
        return f"DualMasking(encoder={self.encoder!r}, decoder={self.decoder!r})"
