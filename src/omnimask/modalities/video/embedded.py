"""The ``video`` part of the embedded dataset: each source digit moving across a 32x32 frame, as a
16-frame MP4 clip (:func:`render_moving_digit` draws one), with VideoMAE-style list files."""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from ...data.embedded import _COLOUR_SEED, _IMAGE_SIZE, _colours, _each_digit, _finish_part, _part, embedded_part_root

__all__ = ["render_moving_digit"]

# Video part: a digit drawn at _DIGIT_SIZE px moves along a straight line across a 32x32 frame.
_MOTION_SEED = 5813
_VIDEO_FRAMES = 16
_VIDEO_FPS = 8
_DIGIT_SIZE = 16
_SPEED_RANGE = (0.5, 1.0)  # px per frame


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


def embedded_video_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/video`` (``train/``, ``val/`` MP4 trees and ``train.csv``/``val.csv`` lists), generated if needed."""
    return embedded_part_root("video", root, progress)
