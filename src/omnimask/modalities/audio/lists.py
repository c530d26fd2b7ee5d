"""Audio list readers and balanced-sampling weights: AudioSet-style label CSVs
(:func:`read_label_csv`), AudioMAE/AST JSON lists (:func:`read_audio_json`), ``<path> <label>``
lists (:func:`read_audio_list`) and AudioMAE's per-sample weights (:func:`balanced_sample_weights`).

Problems with a list are reported as :class:`AudioListError` naming the file and the line or JSON
entry. Everything here is re-exported by :mod:`omnimask.data.audio`, the audio data path that
reads the clips these lists name.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...data.errors import split_list_line

__all__ = [
    "AudioListError",
    "Label",
    "balanced_sample_weights",
    "read_audio_json",
    "read_audio_list",
    "read_label_csv",
]

Label = int | Tensor


class AudioListError(ValueError):
    """A malformed or unusable list, JSON or label CSV; the message starts with the file and the
    line (``<file>:<line>``) or the JSON entry (``<file>: data[<k>]``)."""


# ---------------------------------------------------------------- list files


def read_label_csv(csv_file: str | os.PathLike[str]) -> dict[str, int]:
    """Read an AudioSet-style ``class_labels_indices.csv``: a header ``index,mid,display_name``,
    then one class per row (``display_name`` may be quoted and contain commas).

    Returns:
        ``{mid: index}``.
    Raises:
        FileNotFoundError: no such file.
        AudioListError: a missing column, a non-integer or negative index, a repeated mid or index,
            an empty mid, or no rows; the message names ``<file>:<line>``.
    """
    csv_file = Path(csv_file).expanduser()
    if not csv_file.is_file():
        raise FileNotFoundError(f"label CSV does not exist: {csv_file}")
    mids: dict[str, int] = {}
    seen: dict[int, str] = {}
    with open(csv_file, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in ("index", "mid") if c not in reader.fieldnames]
        if missing:
            raise AudioListError(f"{csv_file}:1: missing column(s) {missing} in the header {reader.fieldnames}; "
                                 "expected 'index,mid,display_name'")  # fmt: skip
        for row in reader:
            where = f"{csv_file}:{reader.line_num}"
            mid, raw = (row.get("mid") or "").strip(), (row.get("index") or "").strip()
            try:
                index = int(raw)
            except ValueError:
                raise AudioListError(f"{where}: the index {raw!r} is not an integer") from None
            if index < 0 or not mid:
                raise AudioListError(f"{where}: a negative index or an empty mid ({raw!r}, {mid!r})")
            if mid in mids:
                raise AudioListError(f"{where}: repeated mid {mid!r} (first with index {mids[mid]})")
            if index in seen:
                raise AudioListError(f"{where}: repeated index {index} (first for mid {seen[index]!r})")
            mids[mid], seen[index] = index, mid
    if not mids:
        raise AudioListError(f"{csv_file}: the label CSV has no rows")
    return mids


def _resolve(path_str: str, base: Path) -> Path:
    path = Path(path_str).expanduser()
    return path if path.is_absolute() else base / path


def _json_entries(json_file: Path, root: str | os.PathLike[str] | None) -> list[tuple[int, str, dict]]:
    """``(k, resolved path, entry)`` for every ``data[k]`` of an AudioMAE/AST JSON list."""
    json_file = Path(json_file).expanduser()
    if not json_file.is_file():
        raise FileNotFoundError(f"audio JSON list does not exist: {json_file}")
    try:
        doc = json.loads(json_file.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise AudioListError(f"{json_file}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise AudioListError(f'{json_file}: expected {{"data": [{{"wav": ..., "labels": ...}}, ...]}} at the top level')
    if not data:
        raise AudioListError(f"{json_file}: the 'data' list is empty")
    base = Path(os.path.abspath(Path(root).expanduser() if root is not None else json_file.parent))
    out = []
    for k, entry in enumerate(data):
        if not isinstance(entry, dict) or "wav" not in entry:
            keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise AudioListError(f"{json_file}: data[{k}] has no 'wav' key (it has: {keys})")
        path = _resolve(str(entry["wav"]), base)
        if not path.exists():
            raise AudioListError(f"{json_file}: data[{k}]: audio file does not exist: {path}")
        out.append((k, str(path), entry))
    return out


def read_audio_json(
    json_file: str | os.PathLike[str],
    label_csv: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    multi_label: bool = True,
) -> list[tuple[str, Label]]:
    """Read an AudioMAE/AST list ``{"data": [{"wav": path, "labels": "/m/a,/m/b"}, ...]}``.

    Label names (``mid``s, comma-separated) map to indices with :func:`read_label_csv`. Relative
    paths are resolved against ``root`` if given, else the JSON file's folder.

    Args:
        multi_label: True (AudioMAE's default): each label is a float32 multi-hot vector of length
            ``max index + 1``. False: an int, and each entry must have exactly one label.
    Returns:
        ``[(path, label), ...]`` in list order, absolute paths.
    Raises:
        AudioListError: ``<json>: data[<k>] ...`` for an entry without ``wav`` or ``labels``, an
            unknown label, a missing audio file, or (``multi_label=False``) several labels.
    """
    mids = read_label_csv(label_csv)
    num_classes = max(mids.values()) + 1
    items: list[tuple[str, Label]] = []
    for k, path, entry in _json_entries(Path(json_file), root):
        where = f"{json_file}: data[{k}] ({entry['wav']})"
        if "labels" not in entry:
            raise AudioListError(f"{where} has no 'labels' key (it has: {sorted(entry)})")
        raw = entry["labels"]
        names = [s.strip() for s in (raw if isinstance(raw, list) else str(raw).split(",")) if str(s).strip()]
        if not names:
            raise AudioListError(f"{where}: empty 'labels'")
        unknown = [n for n in names if n not in mids]
        if unknown:
            raise AudioListError(f"{where}: label(s) {unknown} are not in {label_csv}")
        if multi_label:
            vec = torch.zeros(num_classes)
            vec[[mids[n] for n in names]] = 1.0
            items.append((path, vec))
        elif len(names) != 1:
            raise AudioListError(f"{where}: {len(names)} labels {names}, but multi_label=False needs exactly one")
        else:
            items.append((path, mids[names[0]]))
    return items


def read_audio_list(
    list_file: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> list[tuple[str, int]]:
    """Read a ``<path> <label>`` list, one clip per line (split on the **last** run of spaces or
    tabs, so paths may contain spaces; the label must follow); blank lines and ``#`` comments are
    skipped. Labels are class indices, integers >= 0. Relative paths are
    resolved against ``root`` if given, else the list file's folder.

    Returns:
        ``[(path, label), ...]`` in file order, absolute paths.
    Raises:
        FileNotFoundError: no list file.
        AudioListError: ``<list_file>:<line>: <problem>`` for a line without a label (a path with
            spaces and no label says so), a label that is not an integer or is negative, or a
            missing audio file; or an empty list.
    """
    list_file = Path(list_file).expanduser()
    if not list_file.is_file():
        raise FileNotFoundError(f"audio list file does not exist: {list_file}")
    base = Path(os.path.abspath(Path(root).expanduser() if root is not None else list_file.parent))
    items: list[tuple[str, int]] = []
    with open(list_file, encoding="utf-8-sig") as f:
        for line_no, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{list_file}:{line_no}"
            path_str, label = split_list_line(line, where, AudioListError)
            path = _resolve(path_str, base)
            if not path.exists():
                raise AudioListError(f"{where}: audio file does not exist: {path}")
            items.append((str(path), label))
    if not items:
        raise AudioListError(f"{list_file}: the list names no audio files (only blank or '#' lines)")
    return items


# ---------------------------------------------------------------- balanced sampling


def _label_matrix(labels: Sequence[Label] | Tensor, num_classes: int | None = None) -> Tensor:
    """``(N, C)`` float from int labels (one-hot) or label vectors."""
    if isinstance(labels, Tensor) and labels.dim() == 2:
        return labels.float()
    labels = list(labels)
    if labels and all(isinstance(y, (int, np.integer)) or (isinstance(y, Tensor) and y.dim() == 0) for y in labels):
        idx = torch.tensor([int(y) for y in labels])
        return F.one_hot(idx, num_classes or int(idx.max()) + 1).float()
    return torch.stack([torch.as_tensor(y, dtype=torch.float32) for y in labels])


def balanced_sample_weights(labels: Sequence[Label] | Tensor, num_classes: int | None = None) -> Tensor:
    """AudioMAE's ``gen_weight``: a sample's weight is ``sum over its labels of 1000 / (count + 0.01)``,
    where ``count`` is how many samples carry that label. Rare labels pull their samples up.

    Args:
        labels: int class ids, multi-hot vectors, or an ``(N, C)`` tensor; a label is "carried"
            where the vector is > 0.
    Returns:
        float64 ``(N,)``, for ``torch.utils.data.WeightedRandomSampler(weights, num_samples)``. A
        sample with no label gets weight 0 (never drawn).
    """
    carried = (_label_matrix(labels, num_classes) > 0).double()
    per_label = 1000.0 / (carried.sum(dim=0) + 0.01)
    return carried @ per_label
