"""The point-cloud parts of the embedded dataset: ``points`` (each source digit's strokes lifted to a
3-D cloud, :func:`digit_point_cloud`) and ``shapes`` (points on the surfaces of synthetic solids,
:func:`shape_surface_points` / :func:`shape_point_cloud`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ...data.embedded import _each_digit, _finish_part, _part, embedded_part_root

__all__ = ["SHAPE_CLASSES", "digit_point_cloud", "shape_point_cloud", "shape_surface_points"]

# Points part: 2048 points per digit, sampled from its inked strokes and lifted to 3-D.
_POINTS_SEED = 4409
_NUM_POINTS = 2048
_INK_GRID = 32  # the 8x8 digit is upsampled to this grid before sampling
_INK_THICKNESS = 0.15  # half-depth along z of a fully inked pixel, in the [-1, 1] xy frame
_POINT_NOISE = 0.01
# Shapes part: simple solids, points on their surfaces.
_SHAPES_SEED = 9127
SHAPE_CLASSES: tuple[str, ...] = ("cone", "cube", "cylinder", "sphere", "torus")  # sorted: label = position
_SHAPES_TRAIN, _SHAPES_VAL = 120, 30  # per class
_SHAPE_NOISE = 0.005
_SIZE_RANGE = (0.5, 1.0)
_SHIFT = 0.1


def digit_point_cloud(digit: np.ndarray, index: int, num_points: int = _NUM_POINTS) -> np.ndarray:
    """A 3-D point cloud of one 8x8 digit's strokes, seeded by its sample index.

    The digit is upsampled to 32x32 (float bicubic, clipped to [0, 1]: the "ink"); ``num_points``
    grid cells are drawn with probability proportional to ink, each point placed uniformly inside
    its cell. The image maps onto ``x, y`` in ``[-1, 1]`` (x to the right, y up: column ``c`` of
    the 8x8 image covers ``x`` in ``[-1 + c/4, -1 + (c+1)/4]``, row ``r`` covers ``y`` in
    ``[1 - (r+1)/4, 1 - r/4]``); ``z`` is uniform in ``[-0.15 ink, 0.15 ink]`` (strokes are thicker
    where the ink is darker); then Gaussian noise (std 0.01) on all three coordinates.

    Returns:
        (num_points, 3) float32.
    """
    grey = Image.fromarray(digit.astype(np.float32) / 16.0)  # mode "F", as render_digit
    ink = np.clip(np.asarray(grey.resize((_INK_GRID,) * 2, Image.Resampling.BICUBIC)), 0.0, 1.0).astype(np.float64)
    if not ink.sum() > 0:
        raise ValueError(f"digit {index} has no ink to sample points from")
    rng = np.random.default_rng([_POINTS_SEED, index])
    cells = rng.choice(ink.size, size=num_points, p=(ink / ink.sum()).ravel())
    row, col = np.divmod(cells, _INK_GRID)
    x = (col + rng.random(num_points)) * (2.0 / _INK_GRID) - 1.0
    y = 1.0 - (row + rng.random(num_points)) * (2.0 / _INK_GRID)
    z = rng.uniform(-1.0, 1.0, num_points) * _INK_THICKNESS * ink[row, col]
    xyz = np.stack([x, y, z], axis=1) + rng.normal(0.0, _POINT_NOISE, size=(num_points, 3))
    return xyz.astype(np.float32)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed 3x3 rotation (from a normalised Gaussian quaternion)."""
    w, x, y, z = (q := rng.normal(size=4)) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def _disk(rng: np.random.Generator, n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Area-uniform points in a disk: (x, y)."""
    r, t = radius * np.sqrt(rng.random(n)), rng.uniform(0.0, 2.0 * np.pi, n)
    return r * np.cos(t), r * np.sin(t)


def shape_surface_points(name: str, n: int, rng: np.random.Generator, **dims: float) -> tuple[np.ndarray, dict]:
    """``n`` points distributed uniformly by area on the surface of a canonical solid (centred at 0).

    Shapes and their dimensions (drawn from ``rng`` unless given as keyword arguments):

    * ``sphere``: radius 1.
    * ``cube``: a box with half-sides ``a, b, c`` each in U(0.8, 1.25) (a mildly stretched cube);
      a face is chosen with probability proportional to its area.
    * ``cylinder``: radius 1, half-height ``h`` in U(0.6, 1.6), axis z; side and caps by area.
    * ``cone``: base radius 1, height ``h`` in U(0.8, 2.0), axis z (base at ``-h/2``, apex at
      ``+h/2``); the lateral surface uses ``t = sqrt(u)`` for the fraction of the way from the apex.
    * ``torus``: major radius 1, tube radius ``a`` in U(0.25, 0.5), axis z; the tube angle is
      rejection-sampled with density proportional to ``1 + a cos(angle)`` (the area element).

    Returns:
        ``((n, 3) float64, the dimensions used)``.
    """
    if name == "sphere":
        g = rng.normal(size=(n, 3))
        return g / np.linalg.norm(g, axis=1, keepdims=True), {}
    if name == "cube":
        half = np.array([dims.get(k, rng.uniform(0.8, 1.25)) for k in ("a", "b", "c")])
        face_area = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]])  # faces normal to x, y, z
        axis = rng.choice(3, size=n, p=face_area / face_area.sum())
        pts = rng.uniform(-1.0, 1.0, size=(n, 3))
        pts[np.arange(n), axis] = rng.choice([-1.0, 1.0], size=n)
        return pts * half, dict(zip("abc", half.tolist()))
    if name == "cylinder":
        h = dims.get("h", rng.uniform(0.6, 1.6))
        side = rng.random(n) < (2.0 * h) / (2.0 * h + 1.0)  # side 2 pi r (2h) vs caps 2 pi r^2, r = 1
        t = rng.uniform(0.0, 2.0 * np.pi, n)
        dx, dy = _disk(rng, n, 1.0)
        cap_z = rng.choice([-h, h], size=n)
        pts = np.where(side[:, None], np.stack([np.cos(t), np.sin(t), rng.uniform(-h, h, n)], 1),
                       np.stack([dx, dy, cap_z], 1))  # fmt: skip
        return pts, {"h": h}
    if name == "cone":
        h = dims.get("h", rng.uniform(0.8, 2.0))
        slant = np.hypot(1.0, h)
        side = rng.random(n) < slant / (slant + 1.0)  # lateral pi r L vs base pi r^2, r = 1
        frac = np.sqrt(rng.random(n))  # 0 at the apex, 1 at the base rim
        t = rng.uniform(0.0, 2.0 * np.pi, n)
        dx, dy = _disk(rng, n, 1.0)
        pts = np.where(side[:, None], np.stack([frac * np.cos(t), frac * np.sin(t), h / 2 - h * frac], 1),
                       np.stack([dx, dy, np.full(n, -h / 2)], 1))  # fmt: skip
        return pts, {"h": h}
    if name == "torus":
        a = dims.get("a", rng.uniform(0.25, 0.5))
        tube: list[np.ndarray] = []
        have = 0
        while have < n:  # acceptance >= 1 / (1 + a) >= 2/3 per candidate
            cand = rng.uniform(0.0, 2.0 * np.pi, 2 * n)
            keep = cand[rng.random(2 * n) * (1.0 + a) < 1.0 + a * np.cos(cand)]
            tube.append(keep)
            have += len(keep)
        theta = np.concatenate(tube)[:n]
        phi = rng.uniform(0.0, 2.0 * np.pi, n)
        ring = 1.0 + a * np.cos(theta)
        return np.stack([ring * np.cos(phi), ring * np.sin(phi), a * np.sin(theta)], 1), {"a": a}
    raise ValueError(f"unknown shape {name!r}; shapes: {list(SHAPE_CLASSES)}")


def shape_point_cloud(name: str, index: int, num_points: int = _NUM_POINTS) -> np.ndarray:
    """One sample of the shapes part: :func:`shape_surface_points`, then a random size (scale in
    U(0.5, 1.0)), a uniform random rotation, a shift in U(-0.1, 0.1) per axis and Gaussian noise
    (std 0.005), all from a generator seeded by ``index``.

    Returns:
        (num_points, 3) float32.
    """
    rng = np.random.default_rng([_SHAPES_SEED, index])
    pts, _ = shape_surface_points(name, num_points, rng)
    size = rng.uniform(*_SIZE_RANGE)
    rot = _random_rotation(rng)
    shift = rng.uniform(-_SHIFT, _SHIFT, size=3)
    xyz = (pts * size) @ rot.T + shift + rng.normal(0.0, _SHAPE_NOISE, size=pts.shape)
    return xyz.astype(np.float32)


_POINTS_README = """\
omnimask embedded dataset, points part ({version})

Source: the UCI ML hand-written digits data set (optical recognition of handwritten digits,
E. Alpaydin & C. Kaynak), as bundled with scikit-learn (sklearn.datasets.load_digits):
1797 real 8x8 images with 17 grey levels (0..16), labels 0-9.

Format: one .npy file per sample, float32 ({num_points}, 3) = x, y, z (no normals).
  train/<digit>/<id>.npy   {n_train} clouds
  val/<digit>/<id>.npy     {n_val} clouds
  classes.txt              the class names (0..9), one per line; label = line index
<id> is the zero-padded sample index in load_digits(), so each file maps back to its source.
omnimask.data.folder_items(<this folder>/train) lists (path, label) items for PointCloudDataset.

Split: the image part's split (stratified, round(20%) of each class to val, fixed-seed permutation).
Generation: the 8x8 digit is upsampled to 32x32 (float bicubic, clipped to [0, 1]: the ink);
{num_points} cells are drawn with probability proportional to ink, each point uniform inside its
cell, the image spanning x, y in [-1, 1] (x right, y up); z is uniform in [-0.15 ink, +0.15 ink];
then Gaussian noise (std 0.01) on x, y and z. Seeded per sample: numpy default_rng([{seed}, index]).
Clouds are not normalised (centre and radius vary with the digit): normalise when loading.
Determinism: fixed seeds and no metadata, so rebuilds give identical files on one platform;
manifest.json records a sha256 over the files and "points_sha256" over the arrays. Another
numpy/Pillow build may differ in the last bits of some coordinates.
"""


_SHAPES_README = """\
omnimask embedded dataset, shapes part ({version})

Synthetic 3-D solids, {n_classes} classes: {classes} (label = position in this sorted list,
as in classes.txt and omnimask.data.folder_items).

Format: one .npy file per sample, float32 ({num_points}, 3) = x, y, z (no normals).
  train/<class>/<id>.npy   {n_train} clouds ({per_train} per class)
  val/<class>/<id>.npy     {n_val} clouds ({per_val} per class)
  classes.txt              the class names, one per line; label = line index
<id> is the zero-padded sample number: class position * {per_class} + k, k < {per_train} is train.

Generation (omnimask.data.embedded.shape_surface_points / shape_point_cloud): points uniform by
area on the SURFACE of the solid (no interior points):
  sphere   radius 1
  cube     box with half-sides each in U(0.8, 1.25); faces chosen by area
  cylinder radius 1, half-height in U(0.6, 1.6); side and caps by area
  cone     base radius 1, height in U(0.8, 2.0); lateral surface and base by area
  torus    major radius 1, tube radius in U(0.25, 0.5); tube angle rejection-sampled by area
then a random size (scale U(0.5, 1.0)), a uniform random rotation, a shift U(-0.1, 0.1) per
axis and Gaussian noise (std 0.005). Seeded per sample: numpy default_rng([{seed}, id]).
Determinism: fixed seeds and no metadata, so rebuilds give identical files on one platform;
manifest.json records a sha256 over the files and "points_sha256" over the arrays. Another
numpy build may differ in the last bits of some coordinates.
"""


def _save_npy(path: Path, arr: np.ndarray, digest: hashlib._Hash) -> None:
    digest.update(arr.tobytes())
    np.save(path, arr, allow_pickle=False)


@_part("points", version=1)
def _build_points(out: Path, progress: bool) -> dict:
    """Write the points part into ``out`` (an empty directory); return counts for the manifest."""
    points = hashlib.sha256()
    counts: dict[str, dict[str, int]] = {}
    for i, digit, split, c in _each_digit(out, progress, "point clouds", counts):
        _save_npy(out / split / c / f"{i:04d}.npy", digit_point_cloud(digit, i), points)
    (out / "classes.txt").write_text("".join(f"{c}\n" for c in range(10)), encoding="utf-8")
    return {
        **_finish_part(out, counts, _POINTS_README, num_points=_NUM_POINTS, seed=_POINTS_SEED),
        "num_points": _NUM_POINTS,
        "points_sha256": points.hexdigest(),
    }


@_part("shapes", version=1)
def _build_shapes(out: Path, progress: bool) -> dict:
    """Write the shapes part into ``out`` (an empty directory); return counts for the manifest."""
    per_class = _SHAPES_TRAIN + _SHAPES_VAL
    points = hashlib.sha256()
    counts: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    for split in counts:
        for name in SHAPE_CLASSES:
            (out / split / name).mkdir(parents=True)
    it = tqdm(range(len(SHAPE_CLASSES) * per_class), desc="omnimask: generating embedded shapes", disable=not progress)
    for i in it:
        name = SHAPE_CLASSES[i // per_class]
        split = "train" if i % per_class < _SHAPES_TRAIN else "val"
        _save_npy(out / split / name / f"{i:04d}.npy", shape_point_cloud(name, i), points)
        counts[split][name] = counts[split].get(name, 0) + 1
    (out / "classes.txt").write_text("".join(f"{c}\n" for c in SHAPE_CLASSES), encoding="utf-8")
    return {
        **_finish_part(
            out,
            counts,
            _SHAPES_README,
            n_classes=len(SHAPE_CLASSES),
            classes=", ".join(SHAPE_CLASSES),
            num_points=_NUM_POINTS,
            per_train=_SHAPES_TRAIN,
            per_val=_SHAPES_VAL,
            per_class=per_class,
            seed=_SHAPES_SEED,
        ),
        "classes": list(SHAPE_CLASSES),
        "num_points": _NUM_POINTS,
        "points_sha256": points.hexdigest(),
    }


def embedded_points_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/points`` (``train/``, ``val/`` trees of ``<digit>/<id>.npy`` clouds), generated if needed."""
    return embedded_part_root("points", root, progress)


def embedded_shapes_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/shapes`` (``train/``, ``val/`` trees of ``<shape>/<id>.npy`` clouds and ``classes.txt``),
    generated if needed."""
    return embedded_part_root("shapes", root, progress)
