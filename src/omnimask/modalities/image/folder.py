"""Reader for ImageFolder-style trees: ``root/<class_name>/<file>`` (nested sub-folders allowed).

The same class reads the embedded dataset and users' own data. It never resizes: the transform
decides the geometry, so a wrong-size image without a resizing transform fails loudly in the model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderDataset", "load_image"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_MODES = {1: "L", 3: "RGB"}


def load_image(path: str | os.PathLike[str], channels: int = 3) -> Image.Image:
    """Decode a file fully into a PIL image with 1 ("L") or 3 ("RGB") channels.

    Raises:
        ValueError: ``cannot decode image <path>: <reason>`` for corrupt, truncated or unreadable
            files (the PIL/OS exception is chained).
    """
    if channels not in _MODES:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    try:
        with Image.open(path) as im:
            # .load() forces the full decode now; PIL is lazy and would fail later, far from the file.
            im.load()
            return im.convert(_MODES[channels])
    except Exception as e:  # PIL raises OSError, SyntaxError, struct.error, ... for bad files
        raise ValueError(f"cannot decode image {path}: {type(e).__name__}: {e}") from e


class ImageFolderDataset(Dataset):
    """Images from ``root/<class_name>/**/<file>``; classes are the sorted sub-folder names.

    Each item is ``{"image": x, "label": int, "index": int}`` where ``x`` is ``transform(pil_image)``
    or, without a transform, a float32 tensor (C, H, W) in [0, 1] with C = ``channels``.

    Args:
        root: folder holding one sub-folder per class.
        transform: callable applied to the PIL image (e.g. :func:`mae_pretrain_transform`).
        channels: 1 (grey, "L") or 3 ("RGB"); every image is converted to it.
        extensions: accepted file suffixes (case-insensitive).
        on_error: ``"raise"``: a bad file raises ValueError. ``"skip"``: it is recorded in
            :attr:`skipped`, a warning is logged, and the next decodable sample is returned instead
            (its own ``index`` is reported, so the substitution is visible). With DataLoader
            workers, :attr:`skipped` is filled in each worker process, not in the main one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Callable[[Image.Image], Any] | None = None,
        channels: int = 3,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> None:
        if channels not in _MODES:
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if isinstance(extensions, str):
            extensions = (extensions,)
        self.extensions = tuple(sorted({e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}))
        if not self.extensions:
            raise ValueError("extensions must name at least one file suffix, e.g. '.png'")
        self.root = Path(root).expanduser()
        self.transform = transform
        self.channels = channels
        self.on_error = on_error
        self.skipped: list[tuple[str, str]] = []
        self.classes, self.class_to_idx, self.samples = self._scan()

    def _scan(self) -> tuple[list[str], dict[str, int], list[tuple[str, int]]]:
        root = self.root
        if not root.exists():
            raise FileNotFoundError(f"image folder root does not exist: {root}")
        if not root.is_dir():
            raise ValueError(f"image folder root is not a directory: {root}")
        # Hidden folders (.ipynb_checkpoints, .git, ...) are never classes.
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise ValueError(
                f"no class sub-folders in {root}; expected an ImageFolder layout root/<class_name>/<image file>"
            )
        class_to_idx = {c: i for i, c in enumerate(classes)}
        samples: list[tuple[str, int]] = []
        empty: list[str] = []
        for c in classes:
            found = []
            for dirpath, dirnames, filenames in os.walk(root / c, followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found += [
                    os.path.join(dirpath, f)
                    for f in filenames
                    if not f.startswith(".") and os.path.splitext(f)[1].lower() in self.extensions
                ]
            if not found:
                empty.append(c)
            # Sorted paths within each class (classes already sorted): the order is reproducible.
            samples += [(p, class_to_idx[c]) for p in sorted(found)]
        if not samples:
            raise ValueError(
                f"no image files under {root} (classes: {classes[:10]}{' ...' if len(classes) > 10 else ''}); "
                f"accepted extensions: {list(self.extensions)}"
            )
        if empty:
            # Kept as classes so label ids match between splits, but the user should know.
            logger.warning("class folder(s) without images in %s: %s", root, empty)
        return classes, class_to_idx, samples

    @property
    def targets(self) -> list[int]:
        """Label of every sample, in sample order."""
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def _item(self, i: int, img: Image.Image) -> dict[str, Any]:
        if self.transform is not None:
            x = self.transform(img)
        else:
            x = TF.to_dtype(TF.to_image(img), torch.float32, scale=True).as_subclass(torch.Tensor)
        return {"image": x, "label": self.samples[i][1], "index": i}

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for dataset of {n} images")
        index %= n
        if self.on_error == "raise":
            return self._item(index, load_image(self.samples[index][0], self.channels))
        # "skip": try index, index+1, ... wrapping around, each sample at most once. Only decoding
        # errors are skipped; a failing transform still raises (it is a bug, not a bad file).
        for k in range(n):
            j = (index + k) % n
            path = self.samples[j][0]
            try:
                img = load_image(path, self.channels)
            except ValueError as e:
                if path not in {p for p, _ in self.skipped}:
                    self.skipped.append((path, str(e)))
                logger.warning("skipping unreadable image %s: %s", path, e)
                continue
            return self._item(j, img)
        raise ValueError(f"no decodable image in {self.root}: all {n} files failed (see .skipped)")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, samples={len(self)}, classes={len(self.classes)}, "
            f"channels={self.channels}, on_error={self.on_error!r})"
        )
