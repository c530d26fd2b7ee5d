"""Reconstruction pictures for point clouds: per sample, three views side by side (original |
visible groups | visible groups grey + reconstructed groups red), one fixed oblique projection."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

__all__ = ["reconstruction_views", "render_points"]

_GREY, _BLUE, _RED = (110, 110, 110), (40, 90, 200), (215, 50, 40)


def _view_matrix(elevation: float = 25.0, azimuth: float = 35.0) -> np.ndarray:
    """Rotation taking model coordinates to the view (x right, y up, z towards the viewer)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    around_y = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    around_x = np.array([[1, 0, 0], [0, math.cos(e), -math.sin(e)], [0, math.sin(e), math.cos(e)]])
    return around_x @ around_y


def render_points(
    layers: list[tuple[np.ndarray, tuple[int, int, int]]], size: int = 160, extent: float = 1.3
) -> Image.Image:
    """Draw (M, 3) point sets, each in one colour, far points first; ``extent`` = half-width shown."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    rot = _view_matrix()
    pts = [(p @ rot.T, c) for p, c in layers if len(p)]
    if not pts:
        return img
    every = np.concatenate([p for p, _ in pts])
    colours = np.concatenate([np.repeat(np.array([c]), len(p), 0) for p, c in pts])
    order = np.argsort(every[:, 2])  # painter's order: far (small z) first
    scale = (size - 8) / (2 * extent)
    for (x, y, _), colour in zip(every[order], colours[order]):
        u, v = size / 2 + x * scale, size / 2 - y * scale
        draw.rectangle([u - 1, v - 1, u + 1, v + 1], fill=tuple(int(c) for c in colour))
    return img


@torch.no_grad()
def reconstruction_views(
    inputs: Tensor, pred: Tensor, mask: Tensor, tokenizer: Any, max_samples: int = 4
) -> Image.Image:
    """Args:
    inputs: (B, N, 3) clouds; the tokenizer regroups them (same centres as in the model).
    pred: (B, G, k*3) predicted groups relative to their centres (zeros where not decoded).
    mask: (B, G) bool, True = hidden.
    """
    inputs = inputs[:max_samples].float().cpu()
    pred, mask = pred[:max_samples].float().cpu(), mask[:max_samples].cpu()
    tokenizer = tokenizer.cpu() if hasattr(tokenizer, "cpu") else tokenizer
    groups, centres = tokenizer.group(inputs)
    recon = tokenizer.unpatchify(pred, (mask.shape[1],)) + centres.unsqueeze(2)
    groups = groups + centres.unsqueeze(2)
    rows = []
    for b in range(inputs.shape[0]):
        vis, hid = groups[b][~mask[b]].reshape(-1, 3).numpy(), groups[b][mask[b]].reshape(-1, 3).numpy()
        rec = recon[b][mask[b]].reshape(-1, 3).numpy()
        extent = float(np.abs(inputs[b].numpy()).max()) * 1.05 + 1e-6
        panels = [
            render_points([(vis, _GREY), (hid, _BLUE)], extent=extent),
            render_points([(vis, _GREY)], extent=extent),
            render_points([(vis, _GREY), (rec, _RED)], extent=extent),
        ]
        rows.append(np.concatenate([np.asarray(p) for p in panels], axis=1))
    return Image.fromarray(np.concatenate(rows, axis=0))
