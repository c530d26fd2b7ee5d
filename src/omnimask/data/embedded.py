"""A small deterministic dataset generated locally, so examples and tests need no network.

Everything derives from scikit-learn's bundled UCI handwritten digits (1797 real 8x8 images,
grey levels 0..16, labels 0-9), except the ``shapes`` part (synthetic solids). Each *part* (one
modality or data set) lives in its own folder::

    <root>/v1/<part>/...            # written by the part's builder
    <root>/v1/<part>/manifest.json  # written last; its presence means "complete"

A part is built in a temporary sibling folder and moved into place with ``os.replace``, so an
interrupted run never leaves a folder that looks complete. Adding a part means writing one builder
function ``(out_dir, progress) -> counts`` and decorating it with ``@_part("name", version)``.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import json
import os
import shutil
import tempfile
import wave
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

__all__ = [
    "AUDIO_MELODIES", "DATASET_VERSION", "SHAPE_CLASSES", "available_parts", "digit_point_cloud",
    "embedded_audio_root", "embedded_captions_root", "embedded_image_root", "embedded_part_root",
    "embedded_points_root",
    "embedded_shapes_root", "embedded_video_root", "ensure_embedded_dataset", "load_digits_source",
    "render_digit", "render_digit_audio", "render_moving_digit", "shape_point_cloud", "shape_surface_points",
    "stratified_split", "verify_part",
]  # fmt: skip

DATASET_VERSION = "v1"
_ENV_VAR = "OMNIMASK_DATA_DIR"
_MANIFEST = "manifest.json"
# Fixed seeds: the split and the colours must be identical on every machine and every run.
_SPLIT_SEED = 20240601
_COLOUR_SEED = 7321
_VAL_FRACTION = 0.2
_IMAGE_SIZE = 32
_NOISE_STD = 3.0  # in 0..255 units
# Video part: a digit drawn at _DIGIT_SIZE px moves along a straight line across a 32x32 frame.
_MOTION_SEED = 5813
_VIDEO_FRAMES = 16
_VIDEO_FPS = 8
_DIGIT_SIZE = 16
_SPEED_RANGE = (0.5, 1.0)  # px per frame

Builder = Callable[[Path, bool], dict]
# name -> (builder, part version); bump the version when a builder's output changes.
_PARTS: dict[str, tuple[Builder, int]] = {}
# Parts whose files name files of other parts: ensure_embedded_dataset builds those first.
_REQUIRES: dict[str, tuple[str, ...]] = {"captions": ("image",)}


def _part(name: str, version: int) -> Callable[[Builder], Builder]:
    def register(fn: Builder) -> Builder:
        _PARTS[name] = (fn, version)
        return fn

    return register


def available_parts() -> tuple[str, ...]:
    """Names of the parts :func:`ensure_embedded_dataset` can generate."""
    return tuple(sorted(_PARTS))


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


def render_moving_digit(digit: np.ndarray, index: int) -> np.ndarray:
    """A 16-frame clip of one digit moving in a straight line across a 32x32 frame.

    The 8x8 digit is drawn at 16x16 (float bicubic, sub-pixel position, clipped to [0, 1]) and
    blended between the sample's background and ink colours (the same pair as the image part's
    :func:`render_digit`). Direction (uniform angle), speed (0.5..1 px/frame) and a start point that
    keeps the digit inside the frame come from a generator seeded by ``index``. No pixel noise.

    Args:
        digit: (8, 8) grey levels 0..16.
        index: sample index in the source; seeds the colours and the motion.
    Returns:
        (16, 32, 32, 3) uint8.
    """
    bg, fg = _colours(np.random.default_rng([_COLOUR_SEED, index]))  # drawn first, as in render_digit
    rng = np.random.default_rng([_MOTION_SEED, index])
    angle = rng.uniform(0.0, 2.0 * np.pi)
    travel = rng.uniform(*_SPEED_RANGE) * (_VIDEO_FRAMES - 1)
    dx, dy = travel * np.cos(angle), travel * np.sin(angle)
    room = _IMAGE_SIZE - _DIGIT_SIZE  # 16 px >= the longest travel (15 px): the path always fits
    x0 = rng.uniform(max(0.0, -dx), room - max(0.0, dx))
    y0 = rng.uniform(max(0.0, -dy), room - max(0.0, dy))
    grey = Image.fromarray(digit.astype(np.float32) / 16.0)  # mode "F": float, IEEE-deterministic
    scale = 8.0 / _DIGIT_SIZE  # output px -> source px
    frames = np.empty((_VIDEO_FRAMES, _IMAGE_SIZE, _IMAGE_SIZE, 3), dtype=np.uint8)
    for t in range(_VIDEO_FRAMES):
        x, y = x0 + dx * t / (_VIDEO_FRAMES - 1), y0 + dy * t / (_VIDEO_FRAMES - 1)
        # Affine maps output (u, v) to source (scale * u - scale * x, scale * v - scale * y).
        moved = grey.transform(
            (_IMAGE_SIZE, _IMAGE_SIZE), Image.Transform.AFFINE, (scale, 0.0, -scale * x, 0.0, scale, -scale * y),
            resample=Image.Resampling.BICUBIC, fillcolor=0.0,
        )  # fmt: skip
        alpha = np.clip(np.asarray(moved), 0.0, 1.0)[..., None]
        frames[t] = np.clip(np.rint(bg * (1.0 - alpha) + fg * alpha), 0, 255).astype(np.uint8)
    return frames


def _rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 of one (H, W, 3) uint8 frame (H, W even), as PyAV's
    ``yuv420p`` ndarray layout: (H * 3 // 2, W) uint8 = Y plane, then U and V planes.

    Done in numpy rather than by swscale, so the encoder's input does not depend on the CPU's
    SIMD paths; chroma is the mean over each 2x2 block.
    """
    h, w, _ = rgb.shape
    x = rgb.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    blocks = x.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    rb, gb, bb = blocks[..., 0], blocks[..., 1], blocks[..., 2]
    u = 128.0 + (-37.797 * rb - 74.203 * gb + 112.0 * bb) / 255.0
    v = 128.0 + (112.0 * rb - 93.786 * gb - 18.214 * bb) / 255.0
    planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, u, v)]
    return np.concatenate([p.ravel() for p in planes]).reshape(h * 3 // 2, w)


def _write_mp4(path: Path, frames: np.ndarray, fps: int = _VIDEO_FPS) -> bytes:
    """Encode (T, H, W, 3) uint8 frames as MPEG-4 Part 2 in an MP4 file; return the YUV fed to the encoder.

    Near-lossless (fixed quantiser 2, i.e. ffmpeg's ``-qscale:v 2``), one thread, and the
    ``bitexact`` flags so no library version strings or timestamps end up in the file.
    """
    import av  # local import: only the builder needs PyAV

    yuv = [_rgb_to_yuv420p(f) for f in frames]
    with av.open(str(path), "w", format="mp4", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"flags": "+qscale+bitexact", "global_quality": str(2 * 118)}  # 118 = FF_QP2LAMBDA
        for t, plane in enumerate(yuv):
            frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
            frame.pts, frame.time_base = t, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():  # flush
            container.mux(packet)
    return b"".join(p.tobytes() for p in yuv)


_VIDEO_README = """\
omnimask embedded dataset, video part ({version})

Source: the UCI ML hand-written digits data set (optical recognition of handwritten digits,
E. Alpaydin & C. Kaynak), as bundled with scikit-learn (sklearn.datasets.load_digits):
1797 real 8x8 images with 17 grey levels (0..16), labels 0-9.

Format: one MP4 file per sample, {frames} frames of 32x32 RGB at {fps} fps, MPEG-4 Part 2 video
(ffmpeg "mpeg4", yuv420p, fixed quantiser 2: near-lossless), readable with decord or PyAV.
  train/<digit>/<id>.mp4   {n_train} clips
  val/<digit>/<id>.mp4     {n_val} clips
  train.csv, val.csv       VideoMAE-style list files: "<path> <label>" per line, space-delimited,
                           paths relative to this folder (omnimask.data.read_video_list reads them)
<id> is the zero-padded sample index in load_digits(), so each file maps back to its source.

Split: the image part's split (stratified, round(20%) of each class to val, fixed-seed permutation).
Rendering: the 8x8 digit is drawn at 16x16 (bicubic, sub-pixel position, clipped to [0, 1]) as the
blend weight between the sample's background and ink colours (the image part's colours for the
same sample) and moves along a straight line: a uniform random direction, a speed of 0.5 to 1
px/frame and a start point that keeps it inside the frame, drawn from a generator seeded by the
sample index. No pixel noise. RGB is converted to BT.601 limited-range YUV 4:2:0 in numpy (2x2
chroma mean) before encoding.
Determinism: fixed seeds, one encoder thread and ffmpeg's bitexact flags (no version strings or
timestamps in the files), so two builds with the same PyAV/FFmpeg give byte-identical files and
the same manifest sha256. Another FFmpeg build may encode different bytes; "pixels_sha256" in
manifest.json fingerprints the YUV frames given to the encoder, which depend only on numpy and
Pillow. Decoded frames differ from the rendered RGB by a few grey levels (4:2:0 chroma and
compression); compare decoded pixels with a tolerance, not bytes, across machines.
"""


@_part("video", version=1)
def _build_video(out: Path, progress: bool) -> dict:
    """Write the video part into ``out`` (an empty directory); return counts for the manifest."""
    pixels = hashlib.sha256()  # encoder-independent fingerprint: the YUV frames, in file order
    counts: dict[str, dict[str, int]] = {}
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for i, digit, split, c in _each_digit(out, progress, "video data", counts):
        rel = f"{split}/{c}/{i:04d}.mp4"
        pixels.update(_write_mp4(out / rel, render_moving_digit(digit, i)))
        lines[split].append(f"{rel} {c}\n")
    for split, split_lines in lines.items():
        (out / f"{split}.csv").write_text("".join(split_lines), encoding="utf-8")
    return {
        **_finish_part(out, counts, _VIDEO_README, frames=_VIDEO_FRAMES, fps=_VIDEO_FPS),
        "frames": _VIDEO_FRAMES,
        "fps": _VIDEO_FPS,
        "frame_size": [_IMAGE_SIZE, _IMAGE_SIZE],
        "codec": "mpeg4",
        "pixels_sha256": pixels.hexdigest(),
    }


# ---------------------------------------------------------------- point-cloud parts

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


def _save_npy(path: Path, arr: np.ndarray, digest: "hashlib._Hash") -> None:
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
            out, counts, _SHAPES_README, n_classes=len(SHAPE_CLASSES), classes=", ".join(SHAPE_CLASSES),
            num_points=_NUM_POINTS, per_train=_SHAPES_TRAIN, per_val=_SHAPES_VAL, per_class=per_class, seed=_SHAPES_SEED,
        ),
        "classes": list(SHAPE_CLASSES),
        "num_points": _NUM_POINTS,
        "points_sha256": points.hexdigest(),
    }


# ---------------------------------------------------------------- audio part

# Audio part: one 1 s clip per digit (16 kHz, 16-bit mono PCM): a short melody whose shape is the class.
_AUDIO_SEED = 6271
_AUDIO_RATE = 16000
_AUDIO_SAMPLES = 16000  # 1 s, as speech-commands clips: 98 fbank frames at a 10 ms shift
_AUDIO_HARMONICS = 4
_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Semitones above the clip's base pitch, one number per note. Classes differ in note count and in
# contour (the intervals), never in absolute pitch alone, since every clip is transposed at random.
AUDIO_MELODIES: tuple[tuple[int, ...], ...] = (
    (0, 12),  # 0: octave up
    (12, 0),  # 1: octave down
    (0, 7, 0),  # 2: up a fifth and back
    (7, 0, 7),  # 3: down a fifth and back
    (0, 4, 7, 12),  # 4: rising arpeggio
    (12, 7, 4, 0),  # 5: falling arpeggio
    (0, 12, 0, 12),  # 6: octave zig-zag
    (0, 0, 0, 0, 0),  # 7: one note repeated
    (0, 5, 10, 5, 0),  # 8: arch
    (10, 5, 0, 5, 10),  # 9: valley
)


def render_digit_audio(label: int, index: int) -> np.ndarray:
    """The audio clip of sample ``index`` (class ``label``): the class's melody from
    :data:`AUDIO_MELODIES`, played with per-sample variations drawn from a generator seeded by
    ``index``: base pitch (log-uniform 220..440 Hz), tempo (one note every 0.13..0.18 s, sounding
    85 % of it), onset (0.01..0.05 s), timbre (harmonics 2..4 with random weights), note decay,
    peak level (0.3..0.7 of full scale) and white noise (std 0.002..0.02). The melody ends before
    0.95 s, so a 96-frame (or longer) window holds all of it.

    Returns:
        (16000,) int16: 1 s at 16 kHz.
    """
    rng = np.random.default_rng([_AUDIO_SEED, index])
    base = float(np.exp(rng.uniform(np.log(220.0), np.log(440.0))))
    step = rng.uniform(0.13, 0.18)  # seconds per note
    onset = rng.uniform(0.01, 0.05)
    decay = rng.uniform(2.0, 8.0)  # 1/s
    weights = np.concatenate([[1.0], rng.uniform(0.0, 0.6, _AUDIO_HARMONICS - 1) / np.arange(1, _AUDIO_HARMONICS)])
    peak, noise = rng.uniform(0.3, 0.7), rng.uniform(0.002, 0.02)
    sounding = int(round(0.85 * step * _AUDIO_RATE))
    t = np.arange(sounding) / _AUDIO_RATE
    # 10 ms attack, exponential decay, 5 ms release: no clicks at the note edges.
    envelope = np.minimum(t / 0.01, 1.0) * np.exp(-decay * t) * np.minimum((t[-1] - t) / 0.005, 1.0)
    harmonic = np.arange(1, _AUDIO_HARMONICS + 1)[:, None]
    x = np.zeros(_AUDIO_SAMPLES)
    for n, semitones in enumerate(AUDIO_MELODIES[label]):
        start = int(round((onset + n * step) * _AUDIO_RATE))
        freq = base * 2.0 ** (semitones / 12.0)
        x[start : start + sounding] += envelope * (weights @ np.sin(2.0 * np.pi * freq * harmonic * t))
    x *= peak / np.abs(x).max()
    x += rng.normal(0.0, noise, _AUDIO_SAMPLES)
    return np.clip(np.rint(x * 32767.0), -32768, 32767).astype(np.int16)


def _write_wav(path: Path, samples: np.ndarray, rate: int = _AUDIO_RATE) -> None:
    """16-bit mono PCM WAV with the stdlib writer: a fixed 44-byte header, no metadata chunks."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


_AUDIO_README = """\
omnimask embedded dataset, audio part ({version})

One synthetic clip per sample of the UCI ML hand-written digits data set (as bundled with
scikit-learn, sklearn.datasets.load_digits; 1797 samples, labels 0-9): the clip of sample <id>
has that sample's label and split. The sound itself is synthesised from the label only.

Format: 16 kHz, 16-bit signed PCM, mono WAV, {seconds:g} s ({samples} samples) per clip.
  train/<digit>/<id>.wav   {n_train} clips
  val/<digit>/<id>.wav     {n_val} clips
  train.json, val.json     AudioMAE/AST lists: {{"data": [{{"wav": "train/3/0003.wav",
                           "labels": "/digit/3"}}, ...]}}, paths relative to this folder
  labels.csv               index,mid,display_name (mids /digit/0 .. /digit/9)
<id> is the zero-padded sample index in load_digits(), so each file maps back to its source.
omnimask.data.read_audio_json("train.json", "labels.csv") or AudioDataset.from_json read them;
AudioFeatureConfig(target_length=128) fits the 98 frames of a clip (AudioMAE's speech-commands setting).

Split: the image part's split (stratified, round(20%) of each class to val, fixed-seed permutation).
Classes: a melody per digit (semitones above the clip's base pitch):
{melodies}
Variation per clip, from numpy default_rng([{seed}, index]): base pitch log-uniform 220..440 Hz,
one note every 0.13..0.18 s sounding 85 % of it, onset 0.01..0.05 s, harmonics 2..4 with random
weights, exponential decay 2..8 /s, peak 0.3..0.7 of full scale, white noise std 0.002..0.02.
Each melody ends before 0.95 s.
Determinism: fixed seeds and the stdlib wave writer (no metadata), so rebuilds give identical
files on one platform; manifest.json records a sha256 over the files. Another numpy/libm build may
differ in the last bit of a few samples.
"""


@_part("audio", version=1)
def _build_audio(out: Path, progress: bool) -> dict:
    """Write the audio part into ``out`` (an empty directory); return counts for the manifest."""
    counts: dict[str, dict[str, int]] = {}
    entries: dict[str, list[dict[str, str]]] = {"train": [], "val": []}
    for i, _, split, c in _each_digit(out, progress, "audio data", counts):
        rel = f"{split}/{c}/{i:04d}.wav"
        _write_wav(out / rel, render_digit_audio(int(c), i))
        entries[split].append({"wav": rel, "labels": f"/digit/{c}"})
    for split, data in entries.items():
        (out / f"{split}.json").write_text(json.dumps({"data": data}, indent=1) + "\n", encoding="utf-8")
    rows = "".join(f"{c},/digit/{c},{name}\n" for c, name in enumerate(_DIGIT_NAMES))
    (out / "labels.csv").write_text("index,mid,display_name\n" + rows, encoding="utf-8")
    melodies = "\n".join(f"  {c} {name:6s} {list(m)}" for c, (name, m) in enumerate(zip(_DIGIT_NAMES, AUDIO_MELODIES)))
    return {
        **_finish_part(out, counts, _AUDIO_README, seconds=_AUDIO_SAMPLES / _AUDIO_RATE, samples=_AUDIO_SAMPLES,
                       melodies=melodies, seed=_AUDIO_SEED),  # fmt: skip
        "sample_rate": _AUDIO_RATE,
        "clip_samples": _AUDIO_SAMPLES,
        "melodies": [list(m) for m in AUDIO_MELODIES],
    }


# ---------------------------------------------------------------- captions part

_CAPTIONS_README = """\
omnimask embedded dataset, captions part ({version})

Captions of the image part's digit images (generated English text, 3 to 5 per image), one JSONL
line per image, in the image part's split:
  train.jsonl   {n_train} images, {train_captions} captions
  val.jsonl     {n_val} images, {val_captions} captions
  corpus.txt    every train caption, one per line ({train_captions} lines): the corpus the
                project's sentencepiece model (tokenizers/omnimask_captions.model) is trained on
A line: {{"image": "../image/train/3/0003.png", "captions": ["...", ...], "label": 3}}.
"image" is relative to this folder: it points into the sibling image part (<root>/{version}/image),
which is built with this one (ensure_embedded_dataset(parts=["captions"]) builds both).
omnimask.data.read_caption_jsonl reads the files; ImageCaptionDataset pairs images and captions.

Text: omnimask.data.text.digit_captions fills distinct templates from a fixed list of {templates}
(phrases and sentences, some of several sentences) with facts about the sample: its digit, the
image part's ink and background colours (named by colour_name), which one is lighter, stroke
weight (total ink of the 8x8 source), width (inked columns) and where the ink's centre of mass
sits; templates and synonyms are drawn from numpy default_rng([{seed}, index]). ASCII only.
Determinism: fixed seeds and plain text, so rebuilds give byte-identical files on one platform;
manifest.json records a sha256 over the files. The colour names come from thresholds on
floating-point colours, so another numpy build could name a borderline colour differently.
"""


@_part("captions", version=1)
def _build_captions(out: Path, progress: bool) -> dict:
    """Write the captions part into ``out`` (an empty directory); return counts for the manifest."""
    from .text import _CAPTION_SEED, _TEMPLATES, digit_captions  # local import: text imports this module

    counts: dict[str, dict[str, int]] = {}
    lines: dict[str, list[str]] = {"train": [], "val": []}
    corpus: list[str] = []
    n_captions = {"train": 0, "val": 0}
    for i, digit, split, c in _each_digit(out, progress, "captions", counts, folders=False):
        captions = digit_captions(digit, int(c), i)
        entry = {"image": f"../image/{split}/{c}/{i:04d}.png", "captions": captions, "label": int(c)}
        lines[split].append(json.dumps(entry, ensure_ascii=True) + "\n")
        n_captions[split] += len(captions)
        if split == "train":
            corpus += [t + "\n" for t in captions]
    for split, split_lines in lines.items():
        (out / f"{split}.jsonl").write_text("".join(split_lines), encoding="utf-8")
    (out / "corpus.txt").write_text("".join(corpus), encoding="utf-8")
    return {
        **_finish_part(out, counts, _CAPTIONS_README, train_captions=n_captions["train"],
                       val_captions=n_captions["val"], templates=len(_TEMPLATES), seed=_CAPTION_SEED),  # fmt: skip
        "captions": n_captions,
        "image_part": "../image",
    }


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
    builder, version = _PARTS[name]
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
    for name in dict.fromkeys(dep for p in parts for dep in (*_REQUIRES.get(p, ()), p)):  # ordered, no repeats
        if not _is_complete(base / name, _PARTS[name][1]):
            if progress:
                print(f"omnimask: building embedded '{name}' data in {base / name}", flush=True)
            _build_part(name, base, progress)
    return base.parent


def embedded_part_root(part: str, root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/<part>``, generated first if needed."""
    return ensure_embedded_dataset(root, parts=(part,), progress=progress) / DATASET_VERSION / part


def embedded_image_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/image`` (holding ``train/`` and ``val/`` ImageFolder trees), generated if needed."""
    return embedded_part_root("image", root, progress)


def embedded_video_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/video`` (``train/``, ``val/`` MP4 trees and ``train.csv``/``val.csv`` lists), generated if needed."""
    return embedded_part_root("video", root, progress)


def embedded_points_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/points`` (``train/``, ``val/`` trees of ``<digit>/<id>.npy`` clouds), generated if needed."""
    return embedded_part_root("points", root, progress)


def embedded_shapes_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/shapes`` (``train/``, ``val/`` trees of ``<shape>/<id>.npy`` clouds and ``classes.txt``),
    generated if needed."""
    return embedded_part_root("shapes", root, progress)


def embedded_audio_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/audio`` (``train/``, ``val/`` trees of 16 kHz ``<digit>/<id>.wav`` clips, the AudioMAE
    lists ``train.json``/``val.json`` and ``labels.csv``), generated if needed."""
    return embedded_part_root("audio", root, progress)


def embedded_captions_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/captions`` (``train.jsonl``/``val.jsonl`` captions of the image part's digits and the
    tokenizer corpus ``corpus.txt``), generated if needed, with the image part the captions point into."""
    return embedded_part_root("captions", root, progress)
