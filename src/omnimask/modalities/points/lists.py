"""Item lists of the point-cloud layouts: Point-MAE's ShapeNet-55 and ModelNet40 split lists and
plain ``<root>/<class>/<file>`` folders (see :mod:`omnimask.data.points` for the layouts).

Each function returns ``[(path, label), ...]`` for :class:`~omnimask.data.PointCloudDataset`.
Malformed lists raise :class:`~omnimask.data.PointListError` naming ``<file>:<line>``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from .reader import POINT_EXTENSIONS, PointListError

__all__ = ["folder_items", "modelnet_items", "shapenet_items"]

logger = logging.getLogger(__name__)


def _list_lines(list_file: Path) -> list[tuple[int, str]]:
    """Non-blank, non-'#' lines of a list file as ``(line_no, stripped text)``."""
    if not list_file.is_file():
        what = "is not a file" if list_file.exists() else "does not exist"
        raise FileNotFoundError(f"list file {what}: {list_file}")
    with open(list_file, encoding="utf-8-sig") as f:
        lines = [(i, raw.strip()) for i, raw in enumerate(f, start=1)]
    return [(i, s) for i, s in lines if s and not s.startswith("#")]


def _check_split(split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {list(allowed)}, got {split!r}")


def modelnet_items(
    root: str | os.PathLike[str], split: str, num_classes: int = 40, with_classes: bool = False
) -> list[tuple[str, int]] | tuple[list[tuple[str, int]], list[str]]:
    """Items of a ``modelnet40_normal_resampled`` folder (or ModelNet10 with ``num_classes=10``).

    Reads ``<root>/modelnet{K}_shape_names.txt`` (one class per line; label = line order) and
    ``<root>/modelnet{K}_{split}.txt`` (one ``<class>_<id>`` per line, e.g. ``night_stand_0001``;
    the class is everything before the last ``_``) -> ``<root>/<class>/<class>_<id>.txt``.

    Returns:
        ``[(path, label), ...]`` in list order (absolute paths); with ``with_classes`` also the
        class names (index = label).
    Raises:
        FileNotFoundError: the root or a list file is missing.
        PointListError: ``<list file>:<line>: <problem>`` for an unknown class, a malformed name,
            a point file that does not exist, a repeated class name; or an empty list.
    """
    _check_split(split, ("train", "test"))
    root = Path(os.path.abspath(Path(root).expanduser()))
    if not root.is_dir():
        raise FileNotFoundError(f"ModelNet root is not a directory: {root}")
    names_file = root / f"modelnet{num_classes}_shape_names.txt"
    classes: list[str] = []
    for line_no, name in _list_lines(names_file):
        if name in classes:
            raise PointListError(f"{names_file}:{line_no}: class {name!r} is listed twice")
        classes.append(name)
    if not classes:
        raise PointListError(f"{names_file}: the file names no classes")
    class_to_idx = {c: i for i, c in enumerate(classes)}
    list_file = root / f"modelnet{num_classes}_{split}.txt"
    items: list[tuple[str, int]] = []
    for line_no, shape_id in _list_lines(list_file):
        where = f"{list_file}:{line_no}"
        cls, sep, num = shape_id.rpartition("_")
        if not sep or not cls or not num:
            raise PointListError(f"{where}: expected '<class>_<id>' (e.g. airplane_0001), got {shape_id!r}")
        if cls not in class_to_idx:
            raise PointListError(f"{where}: class {cls!r} of {shape_id!r} is not in {names_file.name}")
        path = root / cls / f"{shape_id}.txt"
        if not path.is_file():
            raise PointListError(f"{where}: point file does not exist: {path}")
        items.append((str(path), class_to_idx[cls]))
    if not items:
        raise PointListError(f"{list_file}: the list names no shapes")
    return (items, classes) if with_classes else items


def _shapenet_name(entry: str) -> tuple[str, str]:
    """``<synset>-<model>[.npy]`` -> (synset, file name)."""
    name = entry if entry.endswith(".npy") else entry + ".npy"
    synset, sep, model = name[: -len(".npy")].partition("-")
    return (synset if sep and synset and model else ""), name


def shapenet_items(
    root: str | os.PathLike[str], split: str, with_classes: bool = False
) -> list[tuple[str, int]] | tuple[list[tuple[str, int]], list[str]]:
    """Items of a Point-MAE ``ShapeNet55-34`` folder: ``<root>/ShapeNet-55/<split>.txt`` lines name
    ``<synset>-<model>.npy`` files in ``<root>/shapenet_pc/``.

    Label = position of the synset in the sorted synsets named by ALL split lists found in
    ``<root>/ShapeNet-55/`` (``train.txt`` and ``test.txt``), so train and test agree on label ids.

    Returns:
        ``[(path, label), ...]`` in list order; with ``with_classes`` also the synset ids.
    Raises:
        FileNotFoundError: the root or the split list is missing.
        PointListError: ``<list file>:<line>: <problem>`` for a malformed name or a missing point
            file; or an empty list.
    """
    _check_split(split, ("train", "test"))
    root = Path(os.path.abspath(Path(root).expanduser()))
    if not root.is_dir():
        raise FileNotFoundError(f"ShapeNet root is not a directory: {root}")
    list_dir, data_dir = root / "ShapeNet-55", root / "shapenet_pc"
    names = [s for s in ("train", "test") if s == split or (list_dir / f"{s}.txt").is_file()]
    lists = {s: _list_lines(list_dir / f"{s}.txt") for s in names}
    for s, lines in lists.items():
        for line_no, entry in lines:
            if not _shapenet_name(entry)[0]:
                raise PointListError(
                    f"{list_dir / f'{s}.txt'}:{line_no}: expected '<synset>-<model>.npy' "
                    f"(e.g. 02691156-1021a0914a7207aff927ed529ad90a11.npy), got {entry!r}"
                )
    synsets = sorted({_shapenet_name(e)[0] for lines in lists.values() for _, e in lines})
    class_to_idx = {c: i for i, c in enumerate(synsets)}
    list_file = list_dir / f"{split}.txt"
    items: list[tuple[str, int]] = []
    for line_no, entry in lists[split]:
        synset, name = _shapenet_name(entry)
        path = data_dir / name
        if not path.is_file():
            raise PointListError(f"{list_file}:{line_no}: point file does not exist: {path}")
        items.append((str(path), class_to_idx[synset]))
    if not items:
        raise PointListError(f"{list_file}: the list names no shapes")
    return (items, synsets) if with_classes else items


def folder_items(
    root: str | os.PathLike[str], extensions: Sequence[str] = POINT_EXTENSIONS, with_classes: bool = False
) -> list[tuple[str, int]] | tuple[list[tuple[str, int]], list[str]]:
    """Items of a ``<root>/<class>/**/<file>`` tree (files with the given suffixes, any depth).

    Classes are the sorted sub-folder names (hidden ones excluded; label = sorted position, so a
    ``train/`` and a ``val/`` tree with the same classes agree); files are sorted within a class.
    A class folder without point files keeps its label (logged as a warning).

    Returns:
        ``[(path, label), ...]``; with ``with_classes`` also the class names.
    Raises:
        FileNotFoundError: the root does not exist.
        PointListError: the root has no class folders or no point files.
    """
    root = Path(os.path.abspath(Path(root).expanduser()))
    if not root.is_dir():
        raise FileNotFoundError(f"point folder root is not a directory: {root}")
    if isinstance(extensions, str):
        extensions = (extensions,)
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise PointListError(f"{root}: no class sub-folders; expected root/<class_name>/<point file>")
    items: list[tuple[str, int]] = []
    empty: list[str] = []
    for label, c in enumerate(classes):
        found = []
        for dirpath, dirnames, filenames in os.walk(root / c, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [os.path.join(dirpath, f) for f in filenames
                      if not f.startswith(".") and os.path.splitext(f)[1].lower() in exts]  # fmt: skip
        if not found:
            empty.append(c)
        items += [(p, label) for p in sorted(found)]
    if not items:
        raise PointListError(f"{root}: no point files (classes: {classes[:10]}); accepted extensions: {sorted(exts)}")
    if empty:
        logger.warning("class folder(s) without point files in %s: %s", root, empty)
    return (items, classes) if with_classes else items
