"""Normalisation statistics of a data set's filterbanks (``omnimask audio-stats``): the constants
:class:`~omnimask.data.AudioFeatureConfig` normalises with, computed the way training reads clips."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import Tensor
from tqdm.auto import tqdm

from .features import SOUNDFILE_EXTENSIONS, AudioReadError, kaldi_fbank, load_audio, pad_or_cut
from .lists import _json_entries, read_audio_list

__all__ = ["AudioStatsError", "compute_audio_stats", "fbank_stats"]

logger = logging.getLogger(__name__)


class AudioStatsError(ValueError):
    """Statistics that cannot be computed or could not normalise (silent clips, no readable clip);
    the message says why and names a clip. A ValueError, so ``omnimask`` prints it on one line."""


def fbank_stats(fbanks: Iterable[Tensor]) -> dict[str, float]:
    """Mean and standard deviation over every value of a stream of filterbanks (one pass, float64,
    merged per clip with Chan's formula, so nothing is kept in memory).

    Returns:
        ``{"mean", "std", "mean_clip_std", "clips", "values"}``: ``std`` is the pooled (population)
        std of all values; ``mean_clip_std`` the average of per-clip stds, which is what AST's
        ``get_norm_stats`` reports (smaller: it ignores the spread between clips).
    Raises:
        ValueError: the stream holds no values.
    """
    n, mean, m2, clip_stds = 0, 0.0, 0.0, []
    for fb in fbanks:
        x = fb.detach().double().reshape(-1)
        k = x.numel()
        if k == 0:
            continue
        mu = x.mean().item()
        clip_m2 = ((x - mu) ** 2).sum().item()
        delta, total = mu - mean, n + k
        mean += delta * k / total
        m2 += clip_m2 + delta * delta * n * k / total
        n = total
        clip_stds.append(math.sqrt(clip_m2 / k))
    if n == 0:
        raise ValueError("no filterbank values to compute statistics over")
    return {"mean": mean, "std": math.sqrt(m2 / n), "mean_clip_std": float(np.mean(clip_stds)),
            "clips": len(clip_stds), "values": n}  # fmt: skip


def _source_paths(source: Any, root: str | os.PathLike[str] | None) -> list[str]:
    """File paths from a JSON list, a ``<path> <label>`` list, a folder, or a sequence of paths/items."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source).expanduser()
        if p.is_dir():
            return sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in SOUNDFILE_EXTENSIONS and f.is_file())
        if p.suffix.lower() == ".json":
            return [path for _, path, _ in _json_entries(p, root)]
        return [path for path, _ in read_audio_list(p, root)]
    return [os.fspath(s[0] if isinstance(s, (tuple, list)) else s) for s in source]


def compute_audio_stats(
    source: str | os.PathLike[str] | Sequence[Any],
    *,
    sample_rate: int = 16000,
    num_mel_bins: int = 128,
    target_length: int | None = None,
    root: str | os.PathLike[str] | None = None,
    max_clips: int | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    progress: bool = True,
) -> dict[str, Any]:
    """Normalisation statistics of a data set's filterbanks, for ``AudioFeatureConfig(mean=, std=)``.

    Each clip goes through :func:`load_audio` (mono, resampled to ``sample_rate``) and
    :func:`kaldi_fbank`; the values are pooled with :func:`fbank_stats`.

    Args:
        source: an AudioMAE JSON file (``.json``), a ``<path> <label>`` list file, a folder (every
            file with a :data:`SOUNDFILE_EXTENSIONS` extension below it), or a sequence of paths or
            ``(path, label)`` items.
        target_length: None (default) counts only the clips' real frames; an int pads/cuts every
            clip first, as training sees it (AudioMAE's constants include its zero padding).
        root: resolves relative paths of a list/JSON (default: the list file's folder).
        max_clips: use at most this many clips, evenly spaced over the list (a list sorted by class
            still gives a mixed sample).
        on_error: ``"skip"`` leaves unreadable clips out and reports them; ``"raise"`` stops.
    Returns:
        A JSON-serialisable dict: ``mean``, ``std``, ``mean_clip_std``, ``clips``, ``values``,
        ``sample_rate``, ``num_mel_bins``, ``target_length``, ``skipped`` (a list of
        ``{"path", "error"}``) and ``silent_clips`` (how many clips were digital silence; a few are
        logged as a warning).
    Raises:
        AudioReadError: an unreadable clip with ``on_error="raise"`` (naming the file).
        AudioStatsError: every clip is silent (std 0 cannot normalise), or none could be read.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    paths = _source_paths(source, root)
    if max_clips is not None and len(paths) > max_clips:
        paths = [paths[i] for i in np.unique(np.linspace(0, len(paths) - 1, max_clips).round().astype(int))]
    skipped: list[dict[str, str]] = []

    def fbanks() -> Iterable[Tensor]:
        for path in tqdm(paths, desc="omnimask: audio statistics", unit="clip", disable=not progress):
            try:
                waveform = load_audio(path, sample_rate)
            except AudioReadError as e:
                if on_error == "raise":
                    raise
                logger.warning("skipping audio %s: %s", path, e)
                skipped.append({"path": path, "error": str(e)})
                continue
            fb = kaldi_fbank(waveform, sample_rate, num_mel_bins)
            if fb.numel() and bool(fb.max() == fb.min()):  # digital silence (or a constant): no spread at all
                silent.append(path)
            yield fb if target_length is None else pad_or_cut(fb, target_length)

    silent: list[str] = []
    try:
        stats = fbank_stats(fbanks())
    except ValueError:
        if not skipped:
            raise
        raise AudioStatsError(
            f"none of the {len(skipped)} clips could be read (first: {skipped[0]['path']}: {skipped[0]['error']})"
        ) from None
    _check_silence(stats, silent)
    return {**stats, "sample_rate": sample_rate, "num_mel_bins": num_mel_bins, "target_length": target_length,
            "skipped": skipped, "silent_clips": len(silent)}  # fmt: skip


def _check_silence(stats: dict[str, Any], silent: list[str]) -> None:
    """Raise :class:`AudioStatsError` when every clip is silent (or the pooled std is 0); warn when
    some are. Silent clips give one constant filterbank value (Kaldi's energy floor, -15.94), so
    their std is 0 (or, with ``target_length`` padding, only the spread between that floor and the
    zero padding): dividing by it cannot normalise anything."""
    if (silent and len(silent) == stats["clips"]) or not stats["std"] > 1e-6:
        what = f"the {stats['clips']} clip(s) are silent" + (f" (e.g. {silent[0]})" if silent else "")
        raise AudioStatsError(
            f"{what}: every filterbank value is the same (Kaldi's energy floor -15.94 for silence), so their std "
            "is 0 (any spread left comes from target_length's zero padding) and a std of 0 cannot normalise; "
            "compute the statistics over clips with sound, or keep a preset (audioset, esc50, speechcommands)"
        )
    if silent:
        logger.warning("%d of %d clips are silent (e.g. %s); they pull the mean toward -15.94 and shrink the std",
                       len(silent), stats["clips"], silent[0])  # fmt: skip
