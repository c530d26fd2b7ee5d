"""Pictures of audio reconstructions: spectrogram panels per sample."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..base import Tokenizer

__all__ = ["reconstruction_spectrograms"]


def _to_grey(spec: Tensor, lo: float, hi: float) -> np.ndarray:
    """(T, F) -> (F, T) uint8 picture: time runs left to right, low frequencies at the bottom."""
    x = ((spec - lo) / max(hi - lo, 1e-6)).clamp(0, 1)
    return (x.T.flip(0).numpy() * 255).round().astype(np.uint8)


@torch.no_grad()
def reconstruction_spectrograms(
    inputs: Tensor,
    pred: Tensor,
    mask: Tensor,
    tokenizer: Tokenizer,
    objective: Any,
    processor_cfg: dict,
    max_rows: int = 4,
) -> Any:
    """A PIL picture per batch (first channel): for each sample four panels stacked top to bottom --
    original, masked input (hidden patches at the spectrogram's minimum), reconstruction, and
    reconstruction with the visible patches pasted back. Grey levels are scaled per sample over
    the original's range.

    Args:
        inputs: (B, C, T, F) spectrograms; pred: (B, N, P) predictions in the objective's target
        space; mask: (B, N) bool, True = hidden.
    """
    from PIL import Image

    inputs, pred, mask = inputs[:max_rows].float().cpu(), pred[:max_rows].float().cpu(), mask[:max_rows].cpu()
    grid = tokenizer.grid(inputs, interpolate_pos=True)
    target = tokenizer.patchify(inputs)
    recon = objective.denormalize_pred(pred, target) if hasattr(objective, "denormalize_pred") else pred
    m = mask[..., None].to(target.dtype)
    floor = inputs.flatten(1).min(1).values[:, None, None]
    panels = [
        inputs,
        tokenizer.unpatchify(target * (1 - m) + floor * m, grid),
        tokenizer.unpatchify(recon, grid),
        tokenizer.unpatchify(target * (1 - m) + recon * m, grid),
    ]
    rows = []
    for i in range(inputs.shape[0]):
        lo, hi = float(inputs[i, 0].min()), float(inputs[i, 0].max())
        cells = [_to_grey(p[i, 0], lo, hi) for p in panels]
        sep = np.full((2, cells[0].shape[1]), 255, np.uint8)
        rows.append(np.concatenate([c for cell in cells for c in (cell, sep)], axis=0))
    img = Image.fromarray(np.concatenate(rows, axis=0)[:-2])
    scale = max(1, 256 // img.height)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img
