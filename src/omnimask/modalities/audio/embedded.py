"""The ``audio`` part of the embedded dataset: one synthetic 1 s, 16 kHz clip per source digit, a short
melody whose shape is the class (:data:`AUDIO_MELODIES`, :func:`render_digit_audio`), with
AudioMAE-style JSON lists and a label CSV."""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import numpy as np

from ...data.embedded import _each_digit, _finish_part, _part, embedded_part_root

__all__ = ["AUDIO_MELODIES", "render_digit_audio"]

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
        **_finish_part(
            out,
            counts,
            _AUDIO_README,
            seconds=_AUDIO_SAMPLES / _AUDIO_RATE,
            samples=_AUDIO_SAMPLES,
            melodies=melodies,
            seed=_AUDIO_SEED,
        ),  # fmt: skip
        "sample_rate": _AUDIO_RATE,
        "clip_samples": _AUDIO_SAMPLES,
        "melodies": [list(m) for m in AUDIO_MELODIES],
    }


def embedded_audio_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/audio`` (``train/``, ``val/`` trees of 16 kHz ``<digit>/<id>.wav`` clips, the AudioMAE
    lists ``train.json``/``val.json`` and ``labels.csv``), generated if needed."""
    return embedded_part_root("audio", root, progress)
