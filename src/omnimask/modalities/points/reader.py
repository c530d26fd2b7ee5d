"""Point-cloud data path: file readers, per-shape normalisation, resampling, augmentation and a
dataset; the item lists for the ShapeNet-55 / ModelNet40 layouts and plain class folders are in
:mod:`omnimask.data.point_lists` (re-exported here).

The layouts follow Point-MAE (Pang-Yatian/Point-MAE, ``DATASET.md``):

* ShapeNet-55: ``<root>/shapenet_pc/<synset>-<model>.npy`` (8192 x 3 float) and the split lists
  ``<root>/ShapeNet-55/{train,test}.txt`` naming one ``<synset>-<model>.npy`` per line;
* ModelNet40 (``modelnet40_normal_resampled``): ``<root>/<class>/<class>_<id>.txt`` with one
  ``x,y,z,nx,ny,nz`` line per point, the class list ``modelnet40_shape_names.txt`` and the split
  lists ``modelnet40_{train,test}.txt`` naming one ``<class>_<id>`` per line.

Arrays are ``float32`` ``(N, C)``: columns 0..2 are ``x, y, z``; with normals, 3..5 are
``nx, ny, nz``. Clouds handed to a model are ``(num_points, 3)`` or ``(num_points, 6)`` tensors.

Fix-ups (a cloud is usable but had to be changed) are returned as flags by the functions that
make them and recorded per item by :class:`PointCloudDataset`:

* :func:`resample` of a cloud with fewer than ``n`` points keeps every point once and draws the
  missing ``n - m`` with replacement (duplicates); it returns how many points were duplicated.
* :func:`normalize_unit_sphere` of a cloud whose points all coincide (no extent) cannot divide by
  the radius; it returns all-zero coordinates and a ``True`` flag.

Randomness: :func:`resample` and :func:`scale_and_translate` take an explicit
``np.random.Generator``. :class:`PointCloudDataset` builds it from one draw of torch's global RNG
per training item, so wrapping it in :class:`omnimask.training.SeededDataset` makes every item a
function of ``(index, sample_seed)`` only, whatever the number of DataLoader workers. Evaluation
items use no global randomness at all.
"""

from __future__ import annotations

import io
import logging
import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ...data.errors import DataReadError, check_item_labels, check_readable_file, read_with_policy

__all__ = [
    "POINT_EXTENSIONS",
    "PointCloudDataset",
    "PointListError",
    "PointReadError",
    "load_points",
    "normalize_unit_sphere",
    "read_points_npy",
    "read_points_txt",
    "resample",
    "scale_and_translate",
]

logger = logging.getLogger(__name__)

TEXT_EXTENSIONS: tuple[str, ...] = (".txt", ".xyz", ".pts", ".csv")
ARRAY_EXTENSIONS: tuple[str, ...] = (".npy", ".npz")
POINT_EXTENSIONS: tuple[str, ...] = TEXT_EXTENSIONS + ARRAY_EXTENSIONS
# Seed of the evaluation subset: the permutation depends only on (this seed, number of points).
_EVAL_SEED = 20240611
# A cloud whose max radius about its centroid is below this fraction of its distance from the
# origin (or exactly 0) has no usable extent: float32 rounding alone is of this order.
_DEGENERATE_RTOL = 1e-6


class PointReadError(DataReadError):
    """A point-cloud file that cannot be read or used; the message names the file and the problem."""


class PointListError(ValueError):
    """A malformed split list or folder layout; the message starts with ``<file>:<line>`` where there is one."""


# ---------------------------------------------------------------- readers


def _stat_file(path: Path) -> int:
    """Size in bytes of an existing regular file (0 allowed: the readers explain empty files), else PointReadError."""
    return check_readable_file(path, PointReadError, "point cloud", allow_empty=True)


def _check_cloud(arr: Any, path: Path, what: str = "") -> np.ndarray:
    """Validate an (N, C >= 3) numeric array and return it as contiguous float32."""
    where = f"cannot read point cloud {path}{what}"
    if (
        not isinstance(arr, np.ndarray)
        or arr.dtype.fields is not None
        or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating))
    ):
        kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
        raise PointReadError(f"{where}: expected a numeric array, got {kind}")
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise PointReadError(
            f"{where}: expected a 2-D array (num_points, 3 or more columns: x, y, z, ...), got shape {arr.shape}"
        )
    if arr.shape[0] < 1:
        raise PointReadError(f"{where}: the cloud has no points (shape {arr.shape})")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        overflow = bool(np.isfinite(arr[rows[0]]).all())  # finite before the float32 cast
        why = "a value too large for float32" if overflow else "NaN or infinite coordinates"
        raise PointReadError(
            f"{where}: {len(rows)} point(s) with {why} (first at row {int(rows[0])}: {arr[rows[0]].tolist()})"
        )
    return out


def _split_fields(line: str, delimiter: str | None) -> list[str]:
    return [f.strip() for f in line.split(delimiter)] if delimiter else line.split()


def _diagnose_text(text: str, path: Path, columns: int | None, delimiter: str | None) -> np.ndarray:
    """Line-by-line parse that reports the first bad line; used when the fast path fails."""
    rows: list[list[float]] = []
    expected = columns
    sep = "comma-separated" if delimiter else "whitespace-separated"
    for line_no, raw in enumerate(text.split("\n"), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"cannot read point cloud {path}: line {line_no}"
        fields = _split_fields(line, delimiter)
        if expected is None:
            if len(fields) < 3:
                raise PointReadError(
                    f"{where}: expected at least 3 {sep} values (x, y, z[, nx, ny, nz]), "
                    f"found {len(fields)} in {raw.strip()!r}"
                )
            expected = len(fields)
        if len(fields) != expected:
            first = "" if columns is not None else " (set by the first point)"
            raise PointReadError(
                f"{where}: expected {expected} {sep} values{first}, found {len(fields)} in {raw.strip()!r}"
            )
        try:
            values = [float(f) for f in fields]
        except ValueError:
            bad = next(f for f in fields if not _is_float(f))
            raise PointReadError(f"{where}: {bad!r} is not a number (in {raw.strip()!r})") from None
        if not all(math.isfinite(v) for v in values):
            raise PointReadError(f"{where}: NaN or infinite coordinate in {raw.strip()!r}")
        rows.append(values)
    if not rows:
        raise PointReadError(f"cannot read point cloud {path}: the file contains no points (only blank or '#' lines)")
    return _check_cloud(np.asarray(rows, dtype=np.float64), path)


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_points_txt(path: str | os.PathLike[str], columns: int | None = None) -> np.ndarray:
    """Read a text point cloud: one point per line, ``x y z`` or ``x,y,z[,nx,ny,nz,...]``.

    The delimiter is a comma if the first point line has one, else whitespace (ModelNet40's
    ``modelnet40_normal_resampled`` files are comma-separated, ``.xyz`` files usually not).
    Blank lines and ``#`` comments are ignored. Every line must have the same number of values:
    ``columns`` if given, else the first line's count, which must be at least 3.

    Returns:
        float32 ``(N, C)``, ``N >= 1``.
    Raises:
        PointReadError: ``cannot read point cloud <path>: <problem>``, naming the line for a wrong
            or ragged value count, a non-numeric value or a NaN/infinite coordinate; also for a
            missing, empty or binary file.
    """
    path = Path(path).expanduser()
    if columns is not None and (int(columns) != columns or columns < 3):
        raise ValueError(f"columns must be None or an integer >= 3, got {columns!r}")
    if _stat_file(path) == 0:
        raise PointReadError(f"cannot read point cloud {path}: the file is empty (0 bytes)")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        why = f"not a text file ({e.reason} at byte {e.start})"
        raise PointReadError(f"cannot read point cloud {path}: {why}") from None
    except OSError as e:
        raise PointReadError(f"cannot read point cloud {path}: {e}") from e
    first = next((s for s in (ln.split("#", 1)[0].strip() for ln in text.split("\n")) if s), None)
    if first is None:
        raise PointReadError(f"cannot read point cloud {path}: the file contains no points (only blank or '#' lines)")
    delimiter = "," if "," in first else None
    try:  # fast path: numpy's C parser; any problem is re-parsed line by line to name the line
        arr = np.loadtxt(io.StringIO(text), delimiter=delimiter, dtype=np.float64, ndmin=2, comments="#")
    except ValueError:
        arr = None
    wrong_columns = arr is not None and (arr.shape[1] < 3 or (columns is not None and arr.shape[1] != columns))
    if arr is None or wrong_columns or not np.isfinite(arr).all():
        return _diagnose_text(text, path, columns, delimiter)
    return _check_cloud(arr, path)


def read_points_npy(path: str | os.PathLike[str], key: str | None = None) -> np.ndarray:
    """Read a ``.npy`` array, or one array of a ``.npz`` archive, as a point cloud.

    Args:
        key: the ``.npz`` member to read; without it the archive must hold exactly one array.
            Ignored for ``.npy`` files (they hold one unnamed array).
    Returns:
        float32 ``(N, C)``, ``N >= 1``, ``C >= 3``.
    Raises:
        PointReadError: ``cannot read point cloud <path>: <problem>`` for a missing, empty or
            corrupt file, a missing key (the available ones are listed), an ambiguous archive, an
            array that is not 2-D with at least 3 columns, no points, or NaN/inf values.
    """
    path = Path(path).expanduser()
    if _stat_file(path) == 0:
        raise PointReadError(f"cannot read point cloud {path}: the file is empty (0 bytes)")
    what = ""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
            if not (magic == b"\x93NUMPY" or magic[:2] == b"PK"):
                raise PointReadError(
                    f"cannot read point cloud {path}: not a .npy or .npz file (unrecognised header {magic!r})"
                )
            f.seek(0)
            data = np.load(f, allow_pickle=False)
            if isinstance(data, np.lib.npyio.NpzFile):
                with data:
                    names = list(data.files)
                    if key is not None:
                        if key not in names:
                            raise PointReadError(
                                f"cannot read point cloud {path}: the archive has no array {key!r} (arrays: {names})"
                            )
                    elif len(names) != 1:
                        raise PointReadError(
                            f"cannot read point cloud {path}: the archive holds {len(names)} arrays {names}; "
                            "pass key=<name> to choose one"
                        )
                    else:
                        key = names[0]
                    what = f" (array {key!r})"
                    arr = data[key]
            else:
                arr = data
    except PointReadError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise PointReadError(f"cannot read point cloud {path}: not a readable .npy/.npz file ({e})") from e
    return _check_cloud(arr, path, what)


def load_points(path: str | os.PathLike[str], columns: int | None = None, key: str | None = None) -> np.ndarray:
    """Read a point cloud by suffix: ``.txt .xyz .pts .csv`` with :func:`read_points_txt`
    (``columns``), ``.npy .npz`` with :func:`read_points_npy` (``key``).

    Raises:
        PointReadError: an unknown suffix, or any reader error (the message names the file).
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix in TEXT_EXTENSIONS:
        return read_points_txt(path, columns)
    if suffix in ARRAY_EXTENSIONS:
        return read_points_npy(path, key)
    raise PointReadError(
        f"cannot read point cloud {path}: unsupported file type {suffix or '(no suffix)'!r}; "
        f"supported: {list(POINT_EXTENSIONS)}"
    )


# ---------------------------------------------------------------- geometry


def _float_dtype(points: np.ndarray) -> np.dtype:
    return points.dtype if np.issubdtype(points.dtype, np.floating) else np.dtype(np.float64)


def normalize_unit_sphere(points: np.ndarray) -> tuple[np.ndarray, bool]:
    """Point-MAE's ``pc_norm``: subtract the centroid of ``x, y, z``, divide by the largest radius.

    Only columns 0..2 change; further columns (normals, colours) are copied unchanged (a uniform
    scale does not change a normal's direction). Computed in float64.

    Fix-up: when every point coincides (largest radius 0, or below ``1e-6`` of the centroid's
    distance from the origin, i.e. float32 rounding noise) there is no extent to divide by; the
    coordinates are set to 0 (the cloud collapses onto the origin) and the flag is ``True``.

    Returns:
        ``(normalised copy, same shape and float dtype (integers become float64); degenerate flag)``.
    Raises:
        ValueError: not an ``(N, C >= 3)`` array with ``N >= 1``, or non-finite coordinates.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3 or points.shape[0] < 1:
        raise ValueError(f"expected a (num_points, 3+) array with at least one point, got shape {points.shape}")
    xyz = points[:, :3].astype(np.float64)
    if not np.isfinite(xyz).all():
        raise ValueError("cannot normalise a cloud with NaN or infinite coordinates")
    centroid = xyz.mean(axis=0)
    xyz -= centroid
    radius = float(np.sqrt((xyz * xyz).sum(axis=1)).max())
    out = points.astype(_float_dtype(points), copy=True)
    degenerate = radius == 0.0 or radius <= _DEGENERATE_RTOL * float(np.abs(centroid).max())
    out[:, :3] = 0.0 if degenerate else xyz / radius
    return out, degenerate


def resample(points: np.ndarray, n: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
    """Choose exactly ``n`` rows of an ``(m, C)`` cloud.

    * ``m >= n``: a random subset without replacement, the first ``n`` of a permutation (Point-MAE's
      ``random_sample``), in that permuted order.
    * ``m < n`` (fix-up): every point once plus ``n - m`` points drawn with replacement, shuffled
      together; ``n - m`` points are duplicates.

    With ``rng=None`` the choice is deterministic (evaluation): the permutation comes from a
    generator seeded by a fixed seed and ``m``, so it depends only on the number of points, not on
    any global RNG or the item's position in a list.

    Returns:
        ``(rows (n, C) same dtype, number of duplicated points: 0 or n - m)``.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    n = int(n)
    points = np.asarray(points)
    m = len(points)
    if m < 1:
        raise ValueError("cannot resample an empty cloud")
    g = rng if rng is not None else np.random.default_rng([_EVAL_SEED, m])
    if m >= n:
        return points[g.permutation(m)[:n]], 0
    extra = g.integers(0, m, size=n - m)
    return points[g.permutation(np.concatenate([np.arange(m), extra]))], n - m


def scale_and_translate(
    points: np.ndarray,
    rng: np.random.Generator,
    scale: tuple[float, float] = (2.0 / 3.0, 3.0 / 2.0),
    translate: tuple[float, float] = (-0.2, 0.2),
) -> np.ndarray:
    """Point-MAE's ``PointcloudScaleAndTranslate`` for one cloud: ``xyz * s + t`` with a per-axis
    scale ``s ~ U(scale)`` and shift ``t ~ U(translate)``, both (3,), drawn once per cloud (scale
    first, then translation).

    Normals (columns 3..5, if present) are transformed as normals are under ``diag(s)``: divided
    by ``s`` and renormalised to unit length (zero normals stay zero). Further columns are copied.

    Returns:
        A transformed copy, same shape and float dtype (integers become float64).
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"expected a (num_points, 3+) array, got shape {points.shape}")
    if not 0.0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
    if not translate[0] <= translate[1]:
        raise ValueError(f"translate must be (low, high) with low <= high, got {translate!r}")
    s = rng.uniform(scale[0], scale[1], size=3)
    t = rng.uniform(translate[0], translate[1], size=3)
    out = points.astype(_float_dtype(points), copy=True)
    out[:, :3] = points[:, :3] * s + t
    if points.shape[1] >= 6:
        nrm = points[:, 3:6].astype(np.float64) / s
        length = np.sqrt((nrm * nrm).sum(axis=1, keepdims=True))
        out[:, 3:6] = np.divide(nrm, length, out=np.zeros_like(nrm), where=length > 0)
    return out


# ---------------------------------------------------------------- dataset


class PointCloudDataset(Dataset):
    """Point clouds from ``(path, label)`` items, one file per item (any :func:`load_points` format).

    Each item is ``{"points": x, "label": int, "index": int, "skipped": int, "resampled": int,
    "degenerate": int}`` with ``x`` float32 ``(num_points, 3)``, or ``(num_points, 6)`` with
    ``use_normals`` (``x, y, z, nx, ny, nz``; files need at least 6 columns then).

    Pipeline per item: read -> check ``min_points`` -> (``normalize="cloud"``) normalise the whole
    cloud to the unit sphere -> :func:`resample` to ``num_points`` -> (``normalize="subset"``)
    normalise the chosen points -> (``train and augment``) :func:`scale_and_translate`.

    * ``train=True``: a random subset (a fresh permutation per item) and, with ``augment``, a random
      per-axis scale and shift.
    * ``train=False``: deterministic and unaugmented: the first ``num_points`` of a fixed-seed
      permutation that depends only on the cloud's point count (``resample(..., rng=None)``), no FPS.

    ``normalize``: ``"cloud"`` (default) normalises the full cloud before subsetting, so a shape's
    scale does not depend on the random subset (Point-MAE's ModelNet loader); ``"subset"`` normalises
    the ``num_points`` chosen (Point-MAE's ShapeNet-55 pretraining loader: ``random_sample`` then
    ``pc_norm``); ``"none"`` keeps the file's coordinates.

    Recorded fix-ups (the item is still returned):

    * ``"resampled": 1`` when the cloud had fewer than ``num_points`` points and was filled up with
      duplicates (:func:`resample`); :attr:`resampled` maps each such file to its point count.
    * ``"degenerate": 1`` when all its points coincide and normalising set them to 0
      (:func:`normalize_unit_sphere`); :attr:`degenerate` lists such files.

    Each file is logged once per process at WARNING level the first time it needs a fix-up.

    Errors: a file that cannot be read, lacks normals under ``use_normals``, or has fewer than
    ``min_points`` points (e.g. groups x group size for a tokenizer that cannot repeat points).
    With ``on_error="raise"``: :class:`PointReadError` naming the file (and, for ``min_points``,
    both counts). With ``"skip"``: a warning is logged, the failure is recorded in :attr:`skipped`
    (``(path, message)``, each file once, per process) and items ``i+1, i+2, ...`` (wrapping) are
    tried; the item's ``"index"`` is the one returned and ``"skipped"`` counts the failed reads
    before it. After ``max_skips`` consecutive failures (or when every file failed) PointReadError
    is raised.

    Args:
        items: ``[(path, label), ...]``, e.g. from :func:`modelnet_items`, :func:`shapenet_items`
            or :func:`folder_items`.
        num_points: points per item.
        key: the array to read from ``.npz`` files (see :func:`read_points_npy`).
        scale, translate: the :func:`scale_and_translate` ranges.
    """

    def __init__(
        self,
        items: Sequence[tuple[str | os.PathLike[str], int]],
        num_points: int = 1024,
        train: bool = True,
        augment: bool = True,
        use_normals: bool = False,
        on_error: Literal["raise", "skip"] = "raise",
        min_points: int | None = None,
        normalize: Literal["cloud", "subset", "none"] = "cloud",
        key: str | None = None,
        scale: tuple[float, float] = (2.0 / 3.0, 3.0 / 2.0),
        translate: tuple[float, float] = (-0.2, 0.2),
        max_skips: int = 10,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if normalize not in ("cloud", "subset", "none"):
            raise ValueError(f"normalize must be 'cloud', 'subset' or 'none', got {normalize!r}")
        for name, value, low in (("num_points", num_points, 1), ("max_skips", max_skips, 1),
                                 ("min_points", 1 if min_points is None else min_points, 1)):  # fmt: skip
            if int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.items = [(os.fspath(p), int(label)) for p, label in items]
        check_item_labels(self.items, "point cloud")
        if not self.items:
            raise ValueError("PointCloudDataset needs at least one (path, label) item")
        self.num_points = int(num_points)
        self.train, self.augment = bool(train), bool(augment)
        self.use_normals = bool(use_normals)
        self.channels = 6 if self.use_normals else 3
        self.on_error = on_error
        self.min_points = None if min_points is None else int(min_points)
        self.normalize = normalize
        self.key = key
        self.scale, self.translate = (float(scale[0]), float(scale[1])), (float(translate[0]), float(translate[1]))
        self.max_skips = int(max_skips)
        self.skipped: list[tuple[str, str]] = []
        self.resampled: dict[str, int] = {}
        self.degenerate: list[str] = []

    @property
    def targets(self) -> list[int]:
        """Label of every item, in item order."""
        return [label for _, label in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def read(self, path: str) -> np.ndarray:
        """Read one file and apply the checks (columns, ``min_points``): float32 ``(m, channels)``."""
        cloud = load_points(path, key=self.key)
        if cloud.shape[1] < self.channels:
            raise PointReadError(
                f"cannot use point cloud {path}: it has {cloud.shape[1]} columns, use_normals=True needs 6 "
                "(x, y, z, nx, ny, nz)"
            )
        if self.min_points is not None and len(cloud) < self.min_points:
            raise PointReadError(
                f"cannot use point cloud {path}: it has {len(cloud)} points, fewer than min_points={self.min_points}"
            )
        return cloud[:, : self.channels]

    def _process(self, path: str, cloud: np.ndarray, rng: np.random.Generator | None) -> tuple[np.ndarray, int, bool]:
        degenerate = False
        if self.normalize == "cloud":
            cloud, degenerate = normalize_unit_sphere(cloud)
        m = len(cloud)
        cloud, repeated = resample(cloud, self.num_points, rng)
        if self.normalize == "subset":
            cloud, degenerate = normalize_unit_sphere(cloud)
        if rng is not None and self.augment:
            cloud = scale_and_translate(cloud, rng, self.scale, self.translate)
        if repeated and path not in self.resampled:
            self.resampled[path] = m
            logger.warning(
                "point cloud %s has %d points, fewer than num_points=%d: %d points duplicated",
                path, m, self.num_points, repeated,
            )  # fmt: skip
        if degenerate and path not in self.degenerate:
            self.degenerate.append(path)
            logger.warning("point cloud %s: all points coincide; normalised to the origin", path)
        return cloud, repeated, degenerate

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.items)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for dataset of {n} point clouds")
        index %= n
        rng = np.random.default_rng(int(torch.randint(2**62, ()))) if self.train else None
        j, label, cloud, failures = read_with_policy(
            self.items,
            index,
            self.read,
            on_error=self.on_error,
            max_skips=self.max_skips,
            skipped=self.skipped,
            error=PointReadError,
            what="point cloud",
            logger=logger,
        )
        path = self.items[j][0]
        cloud, repeated, degenerate = self._process(path, cloud, rng)
        return {
            "points": torch.from_numpy(np.ascontiguousarray(cloud, dtype=np.float32)),
            "label": label,
            "index": j,
            "skipped": failures,
            "resampled": int(repeated > 0),
            "degenerate": int(degenerate),
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(clouds={len(self)}, num_points={self.num_points}, train={self.train}, "
            f"augment={self.augment}, use_normals={self.use_normals}, normalize={self.normalize!r}, "
            f"min_points={self.min_points}, on_error={self.on_error!r})"
        )
