"""The embedded dataset's shared machinery: a small deterministic dataset generated locally, so
examples and tests need no network.

Everything derives from scikit-learn's bundled UCI handwritten digits (1797 real 8x8 images, grey
levels 0..16, labels 0-9), except the ``shapes`` part (synthetic solids). Each *part* (one modality
or data set) lives in its own folder::

    <root>/v1/<part>/...            # written by the part's builder
    <root>/v1/<part>/manifest.json  # written last; its presence means "complete"

A part is built in a temporary sibling folder and moved into place with ``os.replace``, so an
interrupted run never leaves a folder that looks complete.

This module knows no modality: it holds the part registry, the dataset root, the source digits and
their split, the per-sample colours, the loop and README/manifest helpers every builder uses, and
building, checking and locating parts on disk. Each modality package builds its own part in its
``embedded.py`` (``@_part("name", version)`` on a builder ``(out_dir, progress) -> counts``); the
registry finds them through the modality registry's discovery.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from ..registry import Registry

__all__ = [
    "DATASET_VERSION", "Builder", "available_parts", "embedded_part_root", "ensure_embedded_dataset",
    "load_digits_source", "stratified_split", "verify_part",
]  # fmt: skip

DATASET_VERSION = "v1"
_ENV_VAR = "OMNIMASK_DATA_DIR"
_MANIFEST = "manifest.json"
# Fixed seeds: the split and the colours must be identical on every machine and every run.
_SPLIT_SEED = 20240601
_COLOUR_SEED = 7321
_VAL_FRACTION = 0.2
_IMAGE_SIZE = 32

Builder = Callable[[Path, bool], dict]


class _Part(NamedTuple):
    builder: Builder
    version: int  # bump it when the builder's output changes
    requires: tuple[str, ...]  # parts whose files this part's files name: built first


def _discover_parts() -> None:
    # Parts live in the modality packages: discovering the modalities imports them.
    from ..modalities.base import MODALITIES

    MODALITIES.discover()


_PARTS: Registry[_Part] = Registry("embedded dataset part", discover=_discover_parts)


def _part(name: str, version: int, requires: tuple[str, ...] = ()) -> Callable[[Builder], Builder]:
    """Register ``builder`` as the part ``name`` (``requires``: parts built before it)."""

    def register(fn: Builder) -> Builder:
        _PARTS.register(name)(_Part(fn, version, tuple(requires)))
        return fn

    return register


def available_parts() -> tuple[str, ...]:
    """Names of the parts :func:`ensure_embedded_dataset` can generate."""
    return tuple(_PARTS.names())


@functools.lru_cache(maxsize=1)
def load_digits_source() -> tuple[np.ndarray, np.ndarray]:
    """The source data shared by all parts.

    Returns:
        images: (1797, 8, 8) uint8 in 0..16; labels: (1797,) int64 in 0..9.
    """
    from sklearn.datasets import load_digits  # local import: sklearn is slow to import

    d = load_digits()
    return d.images.astype(np.uint8), d.target.astype(np.int64)


def _default_root() -> Path:
    env = os.environ.get(_ENV_VAR)
    return Path(env) if env else Path.home() / ".cache" / "omnimask" / "embedded"


def _resolve_root(root: str | os.PathLike[str] | None) -> Path:
    return (Path(root) if root is not None else _default_root()).expanduser().resolve()


def stratified_split(labels: np.ndarray, val_fraction: float = _VAL_FRACTION) -> np.ndarray:
    """Deterministic per-class split: ``round(val_fraction * n_c)`` samples of each class to val.

    Args:
        labels: (N,) int class ids.
    Returns:
        (N,) bool, True = validation sample.
    """
    rng = np.random.default_rng(_SPLIT_SEED)
    is_val = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):  # sorted, so the rng is consumed in a fixed order
        idx = np.flatnonzero(labels == c)
        n_val = int(round(val_fraction * len(idx)))
        is_val[rng.permutation(idx)[:n_val]] = True
    return is_val


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A (background, ink) RGB pair in 0..255 with a large luminance gap, so the digit stays legible.

    Half the samples are dark-on-light and half light-on-dark; hues are roughly complementary.
    """
    hue = rng.random()
    ink_hue = (hue + 0.5 + rng.uniform(-0.15, 0.15)) % 1.0
    dark = (rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.9))  # (value, saturation)
    light = (rng.uniform(0.85, 1.0), rng.uniform(0.05, 0.4))
    if rng.random() < 0.5:
        (bg_v, bg_s), (fg_v, fg_s) = light, dark
    else:
        (bg_v, bg_s), (fg_v, fg_s) = dark, light
    bg = np.array(colorsys.hsv_to_rgb(hue, bg_s, bg_v)) * 255.0
    fg = np.array(colorsys.hsv_to_rgb(ink_hue, fg_s, fg_v)) * 255.0
    return bg, fg


def _each_digit(
    out: Path, progress: bool, what: str, counts: dict[str, dict[str, int]], folders: bool = True
) -> Iterator[tuple[int, np.ndarray, str, str]]:
    """The loop every digit-based part shares: make ``out/<split>/<digit>/`` folders (unless not
    ``folders``), then yield ``(index, 8x8 digit, split, label)`` for every source digit in index
    order (the image part's split), counting each into ``counts[split][label]`` once the caller has
    written it."""
    images, labels = load_digits_source()
    is_val = stratified_split(labels)
    for split in ("train", "val"):
        counts.setdefault(split, {})
        for c in range(10 if folders else 0):
            (out / split / str(c)).mkdir(parents=True)
    for i in tqdm(range(len(images)), desc=f"omnimask: generating embedded {what}", disable=not progress):
        split, c = ("val" if is_val[i] else "train"), str(int(labels[i]))
        yield i, images[i], split, c
        counts[split][c] = counts[split].get(c, 0) + 1


def _finish_part(out: Path, counts: dict[str, dict[str, int]], readme: str, **fields: object) -> dict:
    """Write ``README.txt`` (``readme`` formatted with the dataset version, the split sizes and
    ``fields``) and return the manifest counts every part has: total, train, val, per_class."""
    n_train, n_val = sum(counts["train"].values()), sum(counts["val"].values())
    text = readme.format(version=DATASET_VERSION, n_train=n_train, n_val=n_val, **fields)
    (out / "README.txt").write_text(text, encoding="utf-8")
    return {"total": n_train + n_val, "train": n_train, "val": n_val, "per_class": counts}


def _hash_tree(folder: Path) -> tuple[str, int]:
    """sha256 over (relative path, bytes) of every file except the manifest, in sorted order."""
    h = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != _MANIFEST)
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest(), len(files)


def _read_manifest(part_dir: Path) -> dict:
    try:
        return json.loads((Path(part_dir) / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _is_complete(part_dir: Path, version: int) -> bool:
    """Cheap check used on every call: manifest present, same version, same number of files."""
    m = _read_manifest(part_dir)
    if not m or m.get("dataset_version") != DATASET_VERSION or m.get("part_version") != version:
        return False
    return sum(1 for p in part_dir.rglob("*") if p.is_file() and p.name != _MANIFEST) == m.get("num_files")


def verify_part(part_dir: str | os.PathLike[str]) -> bool:
    """Full check: re-hash every file of a part and compare with its manifest (slower)."""
    m = _read_manifest(Path(part_dir))
    return bool(m) and _hash_tree(Path(part_dir))[0] == m.get("sha256")


def _build_part(name: str, base: Path, progress: bool) -> None:
    builder, version, _ = _PARTS.get(name)
    target = base / name
    base.mkdir(parents=True, exist_ok=True)
    # Temp sibling on the same filesystem, so the final os.replace is an atomic rename.
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=base))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private (0o700); the finished part is a normal folder
    try:
        counts = builder(tmp, progress)
        digest, n_files = _hash_tree(tmp)
        manifest = {
            "dataset_version": DATASET_VERSION,
            "part": name,
            "part_version": version,
            "num_files": n_files,
            "sha256": digest,
            "counts": counts,
        }
        # The manifest is written last: a folder with a manifest is a finished folder.
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if _is_complete(target, version):
            return  # another process finished the same part while we were building
        if target.exists():
            # A stale/incomplete part: rename it aside first (rename onto a non-empty dir fails).
            stale = Path(tempfile.mkdtemp(prefix=f".{name}.stale-", dir=base))
            os.replace(target, stale / name)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished the same part in the meantime; keep theirs if complete.
            if not _is_complete(target, version):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_embedded_dataset(
    root: str | os.PathLike[str] | None = None,
    parts: Sequence[str] = ("image",),
    progress: bool = True,
) -> Path:
    """Generate the missing parts of the embedded dataset and return its root directory.

    Args:
        root: dataset root; default ``$OMNIMASK_DATA_DIR`` or ``~/.cache/omnimask/embedded``.
        parts: which parts to make sure exist (see :func:`available_parts`); a part whose files
            point into another part (captions -> image) brings that part along.
        progress: show a progress bar while generating.
    Returns:
        The resolved root. Parts live under ``root / DATASET_VERSION / <part>``; use
        :func:`embedded_part_root` to get one directly. Complete parts are not rewritten.
    Raises:
        ValueError: an unknown part name.
    """
    if isinstance(parts, str):  # ("image") is a str, not a tuple: accept it rather than iterate chars
        parts = (parts,)
    unknown = [p for p in parts if p not in _PARTS]
    if unknown:
        raise ValueError(f"unknown embedded dataset part(s) {unknown}; valid parts: {list(available_parts())}")
    base = _resolve_root(root) / DATASET_VERSION
    for name in dict.fromkeys(dep for p in parts for dep in (*_PARTS.get(p).requires, p)):  # ordered, no repeats
        if not _is_complete(base / name, _PARTS.get(name).version):
            if progress:
                print(f"omnimask: building embedded '{name}' data in {base / name}", flush=True)
            _build_part(name, base, progress)
    return base.parent


def embedded_part_root(part: str, root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/<part>``, generated first if needed."""
    return ensure_embedded_dataset(root, parts=(part,), progress=progress) / DATASET_VERSION / part
