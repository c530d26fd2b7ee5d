"""A small deterministic dataset generated locally, so examples and tests need no network.

Everything derives from scikit-learn's bundled UCI handwritten digits (1797 real 8x8 images,
grey levels 0..16, labels 0-9). Each *part* (one modality) lives in its own folder::

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
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

__all__ = [
    "DATASET_VERSION", "available_parts", "embedded_image_root", "embedded_part_root", "embedded_video_root",
    "ensure_embedded_dataset", "load_digits_source", "render_digit", "render_moving_digit", "stratified_split",
    "verify_part",
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


@_part("image", version=1)
def _build_image(out: Path, progress: bool) -> dict:
    """Write the image part into ``out`` (an empty directory); return counts for the manifest."""
    images, labels = load_digits_source()
    is_val = stratified_split(labels)
    pixels = hashlib.sha256()  # zlib-independent fingerprint of the content, in file order
    counts: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    for split in counts:
        for c in range(10):
            (out / split / str(c)).mkdir(parents=True)
    it = tqdm(range(len(images)), desc="omnimask: generating embedded image data", disable=not progress)
    for i in it:
        split, c = ("val" if is_val[i] else "train"), str(int(labels[i]))
        rgb = render_digit(images[i], i)
        pixels.update(rgb.tobytes())
        # No metadata chunks (no timestamps), so the bytes depend only on the pixels and zlib.
        Image.fromarray(rgb).save(out / split / c / f"{i:04d}.png", format="PNG")
        counts[split][c] = counts[split].get(c, 0) + 1
    n_train, n_val = sum(counts["train"].values()), sum(counts["val"].values())
    readme = _IMAGE_README.format(version=DATASET_VERSION, n_train=n_train, n_val=n_val)
    (out / "README.txt").write_text(readme, encoding="utf-8")
    return {
        "total": n_train + n_val,
        "train": n_train,
        "val": n_val,
        "per_class": counts,
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
    images, labels = load_digits_source()
    is_val = stratified_split(labels)
    pixels = hashlib.sha256()  # encoder-independent fingerprint: the YUV frames, in file order
    counts: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for split in counts:
        for c in range(10):
            (out / split / str(c)).mkdir(parents=True)
    it = tqdm(range(len(images)), desc="omnimask: generating embedded video data", disable=not progress)
    for i in it:
        split, c = ("val" if is_val[i] else "train"), str(int(labels[i]))
        rel = f"{split}/{c}/{i:04d}.mp4"
        pixels.update(_write_mp4(out / rel, render_moving_digit(images[i], i)))
        lines[split].append(f"{rel} {c}\n")
        counts[split][c] = counts[split].get(c, 0) + 1
    for split, split_lines in lines.items():
        (out / f"{split}.csv").write_text("".join(split_lines), encoding="utf-8")
    n_train, n_val = sum(counts["train"].values()), sum(counts["val"].values())
    readme = _VIDEO_README.format(
        version=DATASET_VERSION, n_train=n_train, n_val=n_val, frames=_VIDEO_FRAMES, fps=_VIDEO_FPS
    )
    (out / "README.txt").write_text(readme, encoding="utf-8")
    return {
        "total": n_train + n_val,
        "train": n_train,
        "val": n_val,
        "per_class": counts,
        "frames": _VIDEO_FRAMES,
        "fps": _VIDEO_FPS,
        "frame_size": [_IMAGE_SIZE, _IMAGE_SIZE],
        "codec": "mpeg4",
        "pixels_sha256": pixels.hexdigest(),
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
        parts: which parts to make sure exist (see :func:`available_parts`).
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
    for name in parts:
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
