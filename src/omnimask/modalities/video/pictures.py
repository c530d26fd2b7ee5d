"""Reconstruction pictures for video clips: per sample, four strips of frames
(original | masked | reconstruction | reconstruction + visible tubes), one frame per tube slice."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..image.pictures import _to_uint8, reconstruction_variants

__all__ = ["reconstruction_frames"]


@torch.no_grad()
def reconstruction_frames(
    inputs: Tensor,
    pred: Tensor,
    mask: Tensor,
    tokenizer: Any,
    objective: Any,
    processor_cfg: dict,
    max_samples: int = 4,
    max_frames: int = 8,
) -> Image.Image:
    """Args:
    inputs: (B, C, T, H, W) normalised clips (or (B, C, H, W) with ``image_as_clip``).
    pred: (B, N, P) predictions in the objective's target space.
    mask: (B, N) bool, True = hidden.
    """
    inputs = tokenizer.as_clip(inputs[:max_samples].float().cpu())
    pred, mask = pred[:max_samples].float().cpu(), mask[:max_samples].cpu()
    variants, mean, std = reconstruction_variants(inputs, pred, mask, tokenizer, objective, processor_cfg)
    step = tokenizer.tubelet_size
    frames = list(range(0, inputs.shape[2], step))[:max_frames]
    blocks = []
    for i in range(inputs.shape[0]):
        strips = []
        for v in variants:
            cells = [_to_uint8(v[i, :, f], mean, std) for f in frames]
            sep = np.full((cells[0].shape[0], 1, 3), 255, np.uint8)
            strips.append(np.concatenate([x for cell in cells for x in (cell, sep)][:-1], axis=1))
        thin = np.full((1, strips[0].shape[1], 3), 255, np.uint8)
        blocks.append(np.concatenate([x for s in strips for x in (s, thin)][:-1], axis=0))
    thick = np.full((4, blocks[0].shape[1], 3), 255, np.uint8)
    img = np.concatenate([x for b in blocks for x in (b, thick)][:-1], axis=0)
    scale = max(1, 128 // inputs.shape[-2])
    pil = Image.fromarray(img)
    return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST) if scale > 1 else pil
