"""Reader for ImageFolder-style trees: ``root/<class_name>/<file>`` (nested sub-folders allowed).

The same class reads the embedded dataset and users' own data. It never resizes: the transform
decides the geometry, so a wrong-size image without a resizing transform fails loudly in the model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from ...data.errors import DataReadError

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderDataset", "ImageReadError", "load_image"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_MODES = {1: "L", 3: "RGB"}


class ImageReadError(DataReadError, ValueError):
    """An image file that cannot be decoded or converted; the message names the file. A
    ValueError too, which :func:`load_image` has always raised."""


_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA = ("LA", "PA", "RGBA")


def _to_8bit(im: Image.Image, name: str) -> Image.Image:
    """A 16-bit image ("I;16*", or "I" holding 0..65535, as PIL opens 16-bit PNG/TIFF) -> "L",
    ``round(value / 257)``: 65535 -> 255. PIL's own convert clips at 255, so almost every pixel of
    a 16-bit image would turn white."""
    a = np.asarray(im)
    if im.mode == "I" and a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
        raise ImageReadError(
            f"cannot use image {name}: a 32-bit integer image with values {int(a.min())}..{int(a.max())} "
            "(expected 0..65535, 16-bit data); convert it to 8 or 16 bits"
        )
    return Image.fromarray(np.round(a.astype(np.float64) / 257.0).astype(np.uint8), "L")


def _onto_black(im: Image.Image) -> Image.Image:
    """An image with alpha ("LA", "PA", "RGBA") composited onto black: ``round(value * alpha / 255)``,
    returned as "L" or "RGB". Fully transparent pixels become black whatever colour they stored."""
    a = np.asarray(im.convert("RGBA") if im.mode == "PA" else im).astype(np.float64)
    out = np.round(a[..., :-1] * (a[..., -1:] / 255.0)).astype(np.uint8)
    return Image.fromarray(out[..., 0], "L") if out.shape[-1] == 1 else Image.fromarray(out, "RGB")


def _normalise_mode(im: Image.Image, name: str) -> Image.Image:
    """Any decoded mode -> "L" or "RGB" values a viewer would show (see :func:`load_image`)."""
    if im.mode in _SIXTEEN_BIT:
        return _to_8bit(im, name)
    if im.mode == "F":
        raise ImageReadError(
            f"cannot use image {name}: a 32-bit floating-point image has no known value range; "
            "convert it to 8 or 16 bits"
        )
    if "transparency" in im.info and im.mode in ("P", "L", "RGB"):  # a transparent palette entry or colour
        im = im.convert("LA" if im.mode == "L" else "RGBA")
    if im.mode in _ALPHA:
        return _onto_black(im)
    return im if im.mode in ("L", "RGB") else im.convert("RGB")  # P, 1, CMYK, YCbCr, RGBX, La, RGBa, ...


def load_image(path: str | os.PathLike[str] | IO[bytes], channels: int = 3) -> Image.Image:
    """Decode a file fully into a PIL image with 1 ("L") or 3 ("RGB") channels, as a viewer shows it.

    * EXIF orientation is applied (``ImageOps.exif_transpose``): a phone photo stored sideways
      comes out upright, with its width and height swapped.
    * 16-bit images (PIL modes "I;16", "I;16B", "I" holding 0..65535) are scaled to 8 bits with
      ``round(value / 257)``; an "I" image outside 0..65535 and a float ("F") image, whose range is
      unknown, are errors.
    * Transparency ("LA", "RGBA", palette images with a transparent entry or alpha) is composited
      onto **black**: ``round(value * alpha / 255)``, so a fully transparent pixel is 0 whatever
      colour it stored (the same as dropping alpha for the common files that store black there).
    * Palette, bilevel, CMYK (JPEG, Adobe-inverted too), YCbCr: PIL's conversion to RGB.
    * Then RGB -> "L" is PIL's ITU-R 601-2 luma; "L" -> RGB repeats the grey value.

    Raises:
        ImageReadError (a ValueError): ``cannot decode image <path>: <reason>`` for missing, empty,
            corrupt, truncated or unreadable files (the PIL/OS exception is chained), or
            ``cannot use image <path>: ...`` for a value range that cannot be mapped to 8 bits.
    """
    if channels not in _MODES:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "<in-memory image>"
    try:
        with Image.open(path) as im:
            # .load() forces the full decode now; PIL is lazy and would fail later, far from the file.
            im.load()
            upright = ImageOps.exif_transpose(im)
            return _normalise_mode(upright, name).convert(_MODES[channels])
    except ImageReadError:
        raise
    except Exception as e:  # PIL raises OSError, SyntaxError, struct.error, ... for bad files
        raise ImageReadError(f"cannot decode image {name}: {type(e).__name__}: {e}") from e


class ImageFolderDataset(Dataset):
    """Images from ``root/<class_name>/**/<file>``; classes are the sorted sub-folder names.

    Each item is ``{"image": x, "label": int, "index": int, "skipped": int}`` where ``x`` is
    ``transform(pil_image)`` or, without a transform, a float32 tensor (C, H, W) in [0, 1] with
    C = ``channels``, and ``skipped`` counts the unreadable files passed over to reach it (the
    Trainer sums it into ``skipped_samples``). Files are decoded by :func:`load_image`.

    Args:
        root: folder holding one sub-folder per class.
        transform: callable applied to the PIL image (e.g. :func:`mae_pretrain_transform`).
        channels: 1 (grey, "L") or 3 ("RGB"); every image is converted to it.
        extensions: accepted file suffixes (case-insensitive).
        on_error: ``"raise"``: a bad file raises :class:`ImageReadError` (a ValueError). ``"skip"``: it is recorded in
            :attr:`skipped`, a warning is logged, and the next decodable sample is returned instead
            (its own ``index`` is reported, so the substitution is visible). With DataLoader
            workers, :attr:`skipped` is filled in each worker process, not in the main one.
        cache: decode every file once, here, and keep the decoded images in memory (about
            H x W x channels bytes each), so an epoch pays the transform but not the file read and
            decode: for datasets that fit in RAM (the embedded digits: 1.4 k images of 32x32, 4 MB,
            where decoding was half the loading time). DataLoader workers inherit the cache. A
            file that fails to decode is remembered as its error and handled by ``on_error`` when
            its turn comes, as without the cache. The transform must not modify its input in place.
        progress: a progress bar while the cache is filled (shown after the first second).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Callable[[Image.Image], Any] | None = None,
        channels: int = 3,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        on_error: Literal["raise", "skip"] = "raise",
        cache: bool = False,
        progress: bool = True,
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
        self._cache: list[Image.Image | ImageReadError] | None = None
        if cache:
            self._cache = [self._decode(p) for p, _ in tqdm(self.samples, desc=f"omnimask: decoding {self.root.name}",
                                                              unit="image", disable=not progress, leave=False, delay=1.0)]  # fmt: skip

    def _decode(self, path: str) -> Image.Image | ImageReadError:
        try:
            return load_image(path, self.channels)
        except ImageReadError as e:
            return e

    def _load(self, j: int) -> Image.Image:
        """Sample ``j``'s decoded image: from the cache when there is one (the cached error is
        raised again), else read now."""
        if self._cache is None:
            return load_image(self.samples[j][0], self.channels)
        img = self._cache[j]
        if isinstance(img, ImageReadError):  # a fresh exception each time, with the original cause
            raise ImageReadError(str(img)) from img.__cause__
        return img

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

    def _item(self, i: int, img: Image.Image, skipped: int = 0) -> dict[str, Any]:
        if self.transform is not None:
            x = self.transform(img)
        else:
            x = TF.to_dtype(TF.to_image(img), torch.float32, scale=True).as_subclass(torch.Tensor)
        return {"image": x, "label": self.samples[i][1], "index": i, "skipped": skipped}

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for dataset of {n} images")
        index %= n
        if self.on_error == "raise":
            return self._item(index, self._load(index))
        # "skip": try index, index+1, ... wrapping around, each sample at most once. Only decoding
        # errors are skipped; a failing transform still raises (it is a bug, not a bad file).
        for k in range(n):
            j = (index + k) % n
            path = self.samples[j][0]
            try:
                img = self._load(j)
            except ValueError as e:
                if path not in {p for p, _ in self.skipped}:
                    self.skipped.append((path, str(e)))
                logger.warning("skipping unreadable image %s: %s", path, e)
                continue
            return self._item(j, img, skipped=k)
        err = ImageReadError(f"no decodable image in {self.root}: all {n} files failed (see .skipped)")
        err.after_skipping = True  # the skip policy ran and gave up
        raise err

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, samples={len(self)}, classes={len(self.classes)}, "
            f"channels={self.channels}, on_error={self.on_error!r}, cache={self._cache is not None})"
        )
