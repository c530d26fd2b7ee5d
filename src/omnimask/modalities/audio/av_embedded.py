"""The ``av`` part of the embedded dataset: moving-digit clips that carry their digit's melody as a
sound track, written as real MP4 files with a video and an audio stream, so the audio-visual reader
(:mod:`.av`) decodes both (decord for the frames, PyAV for the sound) instead of being handed arrays.

Each clip is the video part's moving digit (:func:`~omnimask.modalities.video.embedded.render_moving_digit`,
16 frames of 32x32) played at 16 fps, so it lasts 1 s, exactly as long as the audio part's melody of
the same sample (:func:`~omnimask.modalities.audio.embedded.render_digit_audio`: 1 s at 16 kHz).

Codecs: MPEG-4 Part 2 video (as the video part) and **FLAC** audio in an MP4 container. FLAC is
lossless, so the decoded sound track is the rendered melody sample for sample (the fbank equals the
audio path's on the same samples exactly), it is read back by decord 0.6.0 (``VideoReader`` and
``AudioReader``) and by PyAV, and its encoder is deterministic. AAC, the usual codec of real MP4s,
was not used: it is lossy and pads the track to whole 1024-sample frames (16384 samples decoded for
16000 written); the reader handles it (its sound track is decoded the same way), the data just
would not equal the melody.
"""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ...data.embedded import (
    _IMAGE_SIZE,
    _finish_part,
    _part,
    embedded_part_root,
    load_digits_source,
    stratified_split,
)
from ..video.embedded import _VIDEO_FRAMES, _rgb_to_yuv420p, render_moving_digit
from .embedded import _AUDIO_RATE, render_digit_audio

__all__ = ["AV_EVERY", "AV_FPS", "embedded_av_root", "write_av_clip"]

#: Frames per second of the clips: 16 frames in 1 s, as long as the melody.
AV_FPS = 16
#: Every ``AV_EVERY``-th source digit becomes a clip (450 of 1797): small, and each class about 45.
AV_EVERY = 4
_FLAC_FRAME = 4096  # samples per audio frame handed to the encoder (FLAC's default block size)


_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def _encode_sound(out: Any, stream: Any, pcm: np.ndarray) -> None:
    """Encode ``pcm`` (N, C) int16 into the audio ``stream`` of the open container ``out``."""
    import av

    layout, sample_rate = _LAYOUTS[pcm.shape[1]], stream.codec_context.sample_rate
    step = stream.codec_context.frame_size or _FLAC_FRAME
    # int16 in, the codec's own sample format out (flac: s16, aac: fltp); a no-op when they agree.
    to_codec = av.AudioResampler(format=stream.codec_context.format, layout=layout, rate=sample_rate)
    for start in range(0, len(pcm), step):
        chunk = np.ascontiguousarray(pcm[start : start + step].reshape(1, -1))  # packed s16: (1, n * C)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
        for converted in to_codec.resample(frame):
            out.mux(stream.encode(converted))
    for converted in to_codec.resample(None):
        out.mux(stream.encode(converted))
    out.mux(stream.encode())


def write_av_clip(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    samples: np.ndarray | None,
    *,
    fps: int = AV_FPS,
    sample_rate: int = _AUDIO_RATE,
    audio_codec: str = "flac",
    container: str = "mp4",
) -> bytes:
    """Encode a clip with a sound track: MPEG-4 Part 2 video (near-lossless, fixed quantiser 2, as
    the video part) plus one audio stream, in one container file.

    Args:
        frames: (T, H, W, 3) uint8 RGB, H and W even.
        samples: (N,) or (N, C) int16 PCM at ``sample_rate`` (C channels: 1, 2 or 6); None writes a
            video without a sound track.
        audio_codec: a PyAV encoder (``flac``, ``pcm_s16le``, ``alac``, ``aac``, ...) that
            ``container`` (``mp4``, ``matroska``, ``mov``) accepts.
    Returns:
        The YUV planes given to the video encoder (the video part's encoder-independent fingerprint).
    """
    import av  # local import: only builders (and tests) write files

    yuv = [_rgb_to_yuv420p(f) for f in frames]
    pcm = None if samples is None else np.asarray(samples, dtype=np.int16)
    pcm = pcm[:, None] if pcm is not None and pcm.ndim == 1 else pcm
    with av.open(os.fspath(path), "w", format=container, container_options={"fflags": "+bitexact"}) as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        video.codec_context.thread_count = 1
        video.options = {"flags": "+qscale+bitexact", "global_quality": str(2 * 118)}  # 118 = FF_QP2LAMBDA
        if pcm is not None:  # every stream is added before the first packet is written
            sound = out.add_stream(audio_codec, rate=sample_rate, layout=_LAYOUTS[pcm.shape[1]])
            sound.codec_context.thread_count = 1
            sound.options = {"flags": "+bitexact"}  # no encoder version string in the file
        for t, plane in enumerate(yuv):
            frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
            frame.pts, frame.time_base = t, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if pcm is not None:
            _encode_sound(out, sound, pcm)
    return b"".join(p.tobytes() for p in yuv)


_AV_README = """\
omnimask embedded dataset, audio-visual part ({version})

Every {every}th sample of the UCI ML hand-written digits data set (as bundled with scikit-learn,
sklearn.datasets.load_digits; 1797 samples, labels 0-9) as one video file WITH a sound track: the
video part's moving digit and the audio part's melody of the same sample.

Format: one MP4 file per sample, 1 s long:
  video stream  {frames} frames of 32x32 RGB at {fps} fps, MPEG-4 Part 2 (ffmpeg "mpeg4", yuv420p,
                fixed quantiser 2: near-lossless)
  audio stream  FLAC (lossless), {rate} Hz, mono, 16-bit, {rate} samples: the class melody
  train/<digit>/<id>.mp4   {n_train} clips
  val/<digit>/<id>.mp4     {n_val} clips
  train.csv, val.csv       "<path> <label>" lists (paths relative to this folder), the video part's format
<id> is the zero-padded sample index in load_digits(), so each file maps back to its source and to
the same sample in the image, video and audio parts.

Split: the image part's split (stratified, round(20%) of each class to val, fixed-seed permutation),
restricted to the samples whose index is a multiple of {every}.
Decoding: decord 0.6.0 reads the frames (VideoReader) and the sound track (AudioReader); omnimask
decodes the sound with PyAV (omnimask.modalities.audio.read_audio_file), which gives back the
rendered melody sample for sample (FLAC is lossless).
Determinism: fixed seeds, one encoder thread per stream and ffmpeg's bitexact flags (no version
strings or timestamps), so two builds with the same PyAV/FFmpeg give byte-identical files and the
same manifest sha256. Another FFmpeg build may encode different bytes; "pixels_sha256" (the YUV
frames given to the video encoder) and "samples_sha256" (the PCM given to the audio encoder) in
manifest.json fingerprint the content independently of the encoders.
"""


@_part("av", version=1)
def _build_av(out: Path, progress: bool) -> dict:
    """Write the audio-visual part into ``out`` (an empty directory); return counts for the manifest."""
    images, labels = load_digits_source()
    is_val = stratified_split(labels)
    pixels, sound = hashlib.sha256(), hashlib.sha256()  # encoder-independent fingerprints, in file order
    counts: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for split in lines:
        for c in range(10):
            (out / split / str(c)).mkdir(parents=True)
    indices = range(0, len(images), AV_EVERY)
    for i in tqdm(indices, desc="omnimask: generating embedded audio-visual data", disable=not progress):
        split, c = ("val" if is_val[i] else "train"), int(labels[i])
        rel = f"{split}/{c}/{i:04d}.mp4"
        melody = render_digit_audio(c, i)
        pixels.update(write_av_clip(out / rel, render_moving_digit(images[i], i), melody))
        sound.update(melody.astype("<i2").tobytes())
        lines[split].append(f"{rel} {c}\n")
        counts[split][str(c)] = counts[split].get(str(c), 0) + 1
    for split, split_lines in lines.items():
        (out / f"{split}.csv").write_text("".join(split_lines), encoding="utf-8")
    fields = dict(every=AV_EVERY, frames=_VIDEO_FRAMES, fps=AV_FPS, rate=_AUDIO_RATE)
    return {
        **_finish_part(out, counts, _AV_README, **fields),
        "frames": _VIDEO_FRAMES,
        "fps": AV_FPS,
        "frame_size": [_IMAGE_SIZE, _IMAGE_SIZE],
        "sample_rate": _AUDIO_RATE,
        "every": AV_EVERY,
        "codecs": {"container": "mp4", "video": "mpeg4", "audio": "flac"},
        "pixels_sha256": pixels.hexdigest(),
        "samples_sha256": sound.hexdigest(),
    }


def embedded_av_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/av`` (``train/``, ``val/`` trees of ``<digit>/<id>.mp4`` clips with a sound track,
    and the ``train.csv``/``val.csv`` lists), generated if needed."""
    return embedded_part_root("av", root, progress)
