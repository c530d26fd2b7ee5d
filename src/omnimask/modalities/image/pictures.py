"""Reconstruction pictures for images: original | masked | reconstruction (+ visible patches pasted)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .transforms import denormalize

__all__ = ["reconstruction_grid", "reconstruction_variants"]


def _to_uint8(x: Tensor, mean: Tensor, std: Tensor) -> np.ndarray:
    """(C, H, W) normalised -> (H, W, 3) uint8."""
    x = denormalize(x, mean.tolist(), std.tolist()).clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    elif x.shape[0] != 3:
        x = x[:3] if x.shape[0] > 3 else x.mean(0, keepdim=True).expand(3, -1, -1)
    return (x.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def reconstruction_variants(
    inputs: Tensor, pred: Tensor, mask: Tensor, tokenizer: Any, objective: Any, processor_cfg: dict
) -> tuple[list[Tensor], Tensor, Tensor]:
    """The four pictures of a reconstruction, in the input's layout and normalisation: original,
    masked input (hidden patches grey), reconstruction, reconstruction with the visible patches
    pasted back. Works for any patch tokenizer (channel-last patch vectors).

    Returns:
        ``([original, masked, reconstruction, pasted], mean, std)`` with the processor's mean/std.
    """
    grid = tokenizer.grid(inputs, interpolate_pos=True)
    target = tokenizer.patchify(inputs)
    recon_p = objective.denormalize_pred(pred, target) if hasattr(objective, "denormalize_pred") else pred
    c = inputs.shape[1]
    m = mask[..., None].to(target.dtype)
    mean = torch.tensor(processor_cfg["mean"], dtype=torch.float32)
    std = torch.tensor(processor_cfg["std"], dtype=torch.float32)
    grey = ((0.5 - mean) / std)[None, None, :].repeat(1, 1, target.shape[-1] // c)
    variants = [
        inputs,
        tokenizer.unpatchify(target * (1 - m) + grey * m, grid),
        tokenizer.unpatchify(recon_p, grid),
        tokenizer.unpatchify(target * (1 - m) + recon_p * m, grid),
    ]
    return variants, mean, std


@torch.no_grad()
def reconstruction_grid(
    inputs: Tensor, pred: Tensor, mask: Tensor, tokenizer: Any, objective: Any, processor_cfg: dict, max_rows: int = 8
) -> Image.Image:
    """One row per sample: original, masked input (hidden patches grey), reconstruction,
    and reconstruction with the visible patches pasted back (as in the MAE paper figures).

    Args:
        inputs: (B, C, H, W) normalised images.
        pred: (B, N, P) model predictions (in the objective's normalised target space).
        mask: (B, N) bool, True = hidden.
    """
    inputs, pred, mask = inputs[:max_rows].float().cpu(), pred[:max_rows].float().cpu(), mask[:max_rows].cpu()
    variants, mean, std = reconstruction_variants(inputs, pred, mask, tokenizer, objective, processor_cfg)
    rows = []
    for i in range(inputs.shape[0]):
        cells = [_to_uint8(t[i], mean, std) for t in variants]
        sep = np.full((cells[0].shape[0], 2, 3), 255, np.uint8)
        rows.append(np.concatenate([c for cell in cells for c in (cell, sep)][:-1], axis=1))
    hsep = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
    img = np.concatenate([r for row in rows for r in (row, hsep)][:-1], axis=0)
    scale = max(1, 256 // inputs.shape[-2])
    pil = Image.fromarray(img)
    return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST) if scale > 1 else pil
