"""The ``image`` part of the embedded dataset: each source digit as a colourised 32x32 RGB PNG in an
ImageFolder tree (:func:`render_digit` draws one)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ...data.embedded import _COLOUR_SEED, _IMAGE_SIZE, _colours, _each_digit, _finish_part, _part, embedded_part_root

__all__ = ["render_digit"]

_NOISE_STD = 3.0  # in 0..255 units


def render_digit(digit: np.ndarray, index: int) -> np.ndarray:
    """Turn one 8x8 digit into a colourised 32x32 RGB image, seeded by its sample index.

    Args:
        digit: (8, 8) grey levels 0..16.
        index: sample index in the source; seeds the colours and the noise.
    Returns:
        (32, 32, 3) uint8.
    """
    grey = Image.fromarray(digit.astype(np.float32) / 16.0)  # float32 -> mode "F"
    # Float-mode bicubic is smooth and IEEE-deterministic; bicubic overshoots, hence the clip.
    alpha = np.clip(np.asarray(grey.resize((_IMAGE_SIZE,) * 2, Image.Resampling.BICUBIC)), 0.0, 1.0)
    rng = np.random.default_rng([_COLOUR_SEED, index])
    bg, fg = _colours(rng)
    rgb = bg * (1.0 - alpha[..., None]) + fg * alpha[..., None]
    rgb = rgb + rng.normal(0.0, _NOISE_STD, size=rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


_IMAGE_README = """\
omnimask embedded dataset, image part ({version})

Source: the UCI ML hand-written digits data set (optical recognition of handwritten digits,
E. Alpaydin & C. Kaynak), as bundled with scikit-learn (sklearn.datasets.load_digits):
1797 real 8x8 images with 17 grey levels (0..16), labels 0-9.

Format: ImageFolder tree, 32x32 RGB PNG.
  train/<digit>/<id>.png   {n_train} images
  val/<digit>/<id>.png     {n_val} images
<id> is the zero-padded sample index in load_digits(), so each file maps back to its source.

Split: stratified, round(20%) of each class to val, chosen by a fixed-seed permutation.
Rendering: the 8x8 digit is upsampled to 32x32 (bicubic, clipped to [0, 1]) and used as the
blend weight between a per-sample background colour and a contrasting ink colour (both drawn
from a generator seeded by the sample index), plus Gaussian pixel noise (std 3/255).
The generation is deterministic (fixed seeds, no time-dependent metadata): manifest.json
records a sha256 over the files and one over the raw pixels to check a copy against.
"""


@_part("image", version=1)
def _build_image(out: Path, progress: bool) -> dict:
    """Write the image part into ``out`` (an empty directory); return counts for the manifest."""
    pixels = hashlib.sha256()  # zlib-independent fingerprint of the content, in file order
    counts: dict[str, dict[str, int]] = {}
    for i, digit, split, c in _each_digit(out, progress, "image data", counts):
        rgb = render_digit(digit, i)
        pixels.update(rgb.tobytes())
        # No metadata chunks (no timestamps), so the bytes depend only on the pixels and zlib.
        Image.fromarray(rgb).save(out / split / c / f"{i:04d}.png", format="PNG")
    return {
        **_finish_part(out, counts, _IMAGE_README),
        "image_size": [_IMAGE_SIZE, _IMAGE_SIZE],
        "pixels_sha256": pixels.hexdigest(),
    }


def embedded_image_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/image`` (holding ``train/`` and ``val/`` ImageFolder trees), generated if needed."""
    return embedded_part_root("image", root, progress)
