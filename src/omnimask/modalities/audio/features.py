"""Audio data path: decoding, resampling, Kaldi log-mel features, AudioMAE's augmentations, list
readers, balanced-sampling weights and a dataset. The list readers and the weights live in
:mod:`omnimask.data.audio_lists` and are re-exported here.

The front end follows AudioMAE (facebookresearch/AudioMAE, ``dataset.py``): remove the waveform's
mean, take a 128-bin Kaldi-compatible log-mel filterbank (25 ms windows every 10 ms), zero-pad at
the end or cut to ``target_length`` frames, then normalise with ``(x - mean) / (2 std)``. Where this
module departs from it, on purpose:

* every file is resampled to one ``sample_rate`` (AudioMAE hands each file's own rate to the
  filterbank, so a 44.1 kHz copy of a clip silently gets other features than the 16 kHz one);
* multi-channel audio is averaged to mono (AudioMAE's filterbank reads channel 0 only);
* bad files raise :class:`AudioReadError` naming the file and the problem, or are skipped with
  ``on_error="skip"``; NaN/inf samples are rejected instead of becoming NaN features, and a WAV
  cut short (its header promises more frames than the file holds) is rejected instead of being
  read as the frames present, as libsndfile does;
* :func:`roll_magnitude` really rolls the waveform: AudioMAE's ``_roll_mag_aug`` draws its shift
  with ``randint(len(waveform))`` on a ``(1, T)`` array, which is always 0, so it only scales.

Layouts: waveforms are float32 ``(C, T)`` tensors, full scale [-1, 1] (``C = 1`` after the
downmix); filterbanks are ``(frames, mel_bins)``, time first, the orientation AudioMAE feeds its
ViT as a ``(1, T, F)`` image (time is the height, frequency the width).

Decoding: files with an extension in :data:`SOUNDFILE_EXTENSIONS` go to soundfile (libsndfile:
8/16/24/32-bit integer and float PCM, any channel count); any other file is opened as a media
container with PyAV and its first audio stream is decoded (the sound track of an ``.mp4``, say).
``torchaudio.load`` is not used: it needs torchcodec and FFmpeg libraries.

Randomness: the augmentations take an explicit ``np.random.Generator`` or ``torch.Generator``.
:class:`AudioDataset` derives both from one draw of torch's global RNG per item, so under
:class:`omnimask.training.SeededDataset` an item depends only on ``(index, sample_seed)``.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...data.errors import DataReadError, check_readable_file

__all__ = [
    "AudioFeatureConfig",
    "AudioReadError",
    "MAX_TC_CHANNELS",
    "NORM_PRESETS",
    "SOUNDFILE_EXTENSIONS",
    "as_waveform",
    "downmix",
    "kaldi_fbank",
    "load_audio",
    "mixup_waveforms",
    "normalize_fbank",
    "pad_or_cut",
    "read_audio_file",
    "resample_waveform",
    "roll_magnitude",
    "spec_augment",
]

logger = logging.getLogger(__name__)

SOUNDFILE_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".mp3")

#: AudioMAE's normalisation constants ``(mean, std)`` of the 128-bin fbank, per dataset.
NORM_PRESETS: dict[str, tuple[float, float]] = {
    "audioset": (-4.2677393, 4.5689974),
    "esc50": (-6.6268077, 5.358466),
    "speechcommands": (-6.845978, 5.5654526),
}
#: AudioMAE's ``target_length`` (frames) for the same datasets.
PRESET_TARGET_LENGTHS: dict[str, int] = {"audioset": 1024, "esc50": 512, "speechcommands": 128}


class AudioReadError(DataReadError):
    """An audio file that cannot be used; the message names the file and the problem."""


# ---------------------------------------------------------------- decoding and resampling


def _why(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text[:300]}"


def _check_file(path: str) -> None:
    check_readable_file(path, AudioReadError, "audio")


def _wav_truncation(path: str) -> str | None:
    """``"truncated: header says N frames, file holds M"`` when a RIFF/RIFX WAVE file's ``data``
    chunk promises more bytes than the file holds, else None.

    libsndfile reads such a file (an interrupted download or copy) as the frames present, silently.
    A size of 0 or of at least ``0x7FFFF000`` is a placeholder that streaming writers (ffmpeg, sox
    writing to a pipe) leave when they cannot seek back, and is not checked; nor are files that are
    not RIFF WAVE (RF64 keeps the real size in its ``ds64`` chunk), or whose header itself is cut
    short: soundfile reports those.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        block_align, pos = 0, 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk, length = f.read(4), struct.unpack(endian + "I", f.read(4))[0]
            if chunk == b"fmt ":
                fmt = f.read(min(length, 16))
                block_align = struct.unpack(endian + "H", fmt[12:14])[0] if len(fmt) >= 14 else 0
            elif chunk == b"data":
                held = size - (pos + 8)
                if length == 0 or length >= 0x7FFFF000 or length <= held or block_align <= 0:
                    return None
                return f"truncated: header says {length // block_align} frames, file holds {held // block_align} frames"
            pos += 8 + length + (length & 1)  # chunks are padded to an even size
    return None


def _decode_soundfile(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf  # local import: keeps `import omnimask` light

    try:
        truncated = _wav_truncation(path)
    except OSError as e:
        raise AudioReadError(f"cannot read audio {path}: {_why(e)}") from e
    if truncated:
        raise AudioReadError(f"cannot read audio {path}: {truncated} (an interrupted download or copy?)")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)  # (T, C), integers scaled to [-1, 1)
    except Exception as e:  # noqa: BLE001 - LibsndfileError, RuntimeError, TypeError, ...
        raise AudioReadError(f"cannot read audio {path}: soundfile cannot decode it ({_why(e)})") from e
    return data.T, int(rate)


def _decode_container(path: str) -> tuple[np.ndarray, int]:
    """First audio stream of a media container, decoded with PyAV as planar float32 (C, T).

    decord's ``AudioReader`` is not used: in decord 0.6.0 its multi-channel output is corrupt
    (the second channel holds garbage and NaNs, dmlc/decord#242), its ``mono=True`` downmix is
    FFmpeg's ``(L + R) / sqrt(2)`` rather than an average, and it does not report the stream's
    native sample rate.
    """
    import av  # local import: only container files need PyAV

    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise AudioReadError(f"cannot read audio {path}: it has no audio stream")
            stream = container.streams.audio[0]
            rate, channels = int(stream.rate or 0), int(stream.channels or 0)
            if rate <= 0 or channels <= 0:
                why = f"its audio stream reports {rate} Hz and {channels} channels"
                raise AudioReadError(f"cannot read audio {path}: {why}")
            # Planar float whatever the codec's sample format; same layout and rate, so no remixing.
            to_fltp = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
            chunks = [f.to_ndarray() for frame in container.decode(stream) for f in to_fltp.resample(frame)]
            chunks += [f.to_ndarray() for f in to_fltp.resample(None)]
    except AudioReadError:
        raise
    except Exception as e:  # noqa: BLE001 - av.error.*, OSError, ...
        raise AudioReadError(f"cannot read audio {path}: PyAV cannot decode it ({_why(e)})") from e
    data = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    return data.astype(np.float32, copy=False), rate


def read_audio_file(path: str | os.PathLike[str]) -> tuple[Tensor, int]:
    """Decode a whole file at its own sample rate.

    Returns:
        ``(waveform, sample_rate)``: float32 ``(C, T)`` with ``T >= 1``, full scale [-1, 1].
    Raises:
        AudioReadError: ``cannot read audio <path>: <problem>`` for a missing or empty file, an
            undecodable one (a truncated FLAC/OGG), a WAV whose header promises more frames than
            the file holds (``truncated: header says N frames, file holds M frames``), a container
            without an audio stream, zero samples, or NaN/inf samples.
    """
    path = os.fspath(path)
    _check_file(path)
    if Path(path).suffix.lower() in SOUNDFILE_EXTENSIONS:
        data, rate = _decode_soundfile(path)
    else:
        data, rate = _decode_container(path)
    if data.shape[1] == 0:
        raise AudioReadError(f"cannot read audio {path}: it has no audio samples (zero length)")
    bad = ~np.isfinite(data)
    if bad.any():
        ch, t = np.argwhere(bad)[0]
        raise AudioReadError(
            f"cannot read audio {path}: {int(bad.sum())} NaN/inf samples (first at sample {t} of channel {ch})"
        )
    return torch.from_numpy(np.ascontiguousarray(data)), rate


def downmix(waveform: Tensor) -> Tensor:
    """Average the channels of a ``(C, T)`` waveform: ``(1, T)`` (unchanged if already mono)."""
    return waveform if waveform.shape[0] == 1 else waveform.mean(dim=0, keepdim=True)


def _rate(value: float, name: str) -> int:
    if value != int(value) or int(value) <= 0:
        raise ValueError(f"{name} must be a positive whole number of Hz, got {value!r}")
    return int(value)


def resample_waveform(waveform: Tensor, orig_rate: int, target_rate: int) -> Tensor:
    """``torchaudio.functional.resample`` (windowed sinc, its defaults) from ``orig_rate`` to
    ``target_rate``; returns the input itself when the rates are equal.

    Args:
        waveform: ``(..., T)`` float.
    Returns:
        ``(..., ceil(T * target_rate / orig_rate))``.
    """
    import torchaudio.functional as AF

    orig_rate, target_rate = _rate(orig_rate, "orig_rate"), _rate(target_rate, "target_rate")
    if orig_rate == target_rate:
        return waveform
    return AF.resample(waveform, orig_rate, target_rate)


def load_audio(path: str | os.PathLike[str], target_rate: int, *, mono: bool = True) -> Tensor:
    """Decode ``path`` (wav/flac/... or the sound track of a video), average the channels to mono
    (unless ``mono=False``) and resample to ``target_rate``.

    Returns:
        float32 ``(1, T)`` (``(C, T)`` with ``mono=False``) at ``target_rate``.
    Raises:
        AudioReadError: see :func:`read_audio_file`.
    """
    waveform, rate = read_audio_file(path)
    if mono:
        waveform = downmix(waveform)
    return resample_waveform(waveform, rate, target_rate)


# ---------------------------------------------------------------- features


def _mono_2d(waveform: Tensor | np.ndarray, what: str = "waveform") -> Tensor:
    x = torch.as_tensor(waveform)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2 or x.shape[0] != 1:
        raise ValueError(f"{what}: expected a mono (T,) or (1, T) waveform, got shape {tuple(x.shape)}; downmix first")
    if x.shape[1] == 0:
        raise ValueError(f"{what}: the waveform is empty (0 samples)")
    return x if x.dtype == torch.float32 else x.float()


def kaldi_fbank(
    waveform: Tensor | np.ndarray,
    sample_rate: int,
    num_mel_bins: int = 128,
    frame_shift: float = 10.0,
    frame_length: float = 25.0,
) -> Tensor:
    """AudioMAE's log-mel filterbank: ``torchaudio.compliance.kaldi.fbank`` of the mean-removed
    waveform with ``htk_compat=True, use_energy=False, window_type='hanning', dither=0``
    (Kaldi's other defaults: pre-emphasis 0.97, per-frame DC removal, power spectrum, mel bins
    from 20 Hz to Nyquist, ``snip_edges``: ``1 + (T - window) // shift`` frames).

    A clip shorter than one window (25 ms) is zero-padded to one window, giving one frame.
    Silence is valid: every bin is then ``log(FLT_EPSILON) = -15.942385`` (Kaldi's energy floor),
    never NaN or -inf.

    Args:
        waveform: mono ``(T,)`` or ``(1, T)`` at ``sample_rate``.
        frame_shift, frame_length: in milliseconds.
    Returns:
        float32 ``(frames, num_mel_bins)``.
    """
    import torchaudio.compliance.kaldi as kaldi

    x = _mono_2d(waveform)
    x = x - x.mean()
    window = int(sample_rate * frame_length * 0.001)  # Kaldi's (and torchaudio's) window size in samples
    if x.shape[1] < window:
        x = F.pad(x, (0, window - x.shape[1]))
    return kaldi.fbank(
        x, htk_compat=True, sample_frequency=float(sample_rate), use_energy=False, window_type="hanning",
        num_mel_bins=num_mel_bins, dither=0.0, frame_shift=frame_shift, frame_length=frame_length,
    )  # fmt: skip


def pad_or_cut(fbank: Tensor, target_length: int) -> Tensor:
    """Zero-pad ``(frames, F)`` at the end, or keep its first ``target_length`` frames (as AudioMAE).

    The padding is 0 in the log-mel domain, i.e. before normalisation, as AudioMAE does.
    """
    if target_length < 1:
        raise ValueError(f"target_length must be >= 1, got {target_length}")
    n = fbank.shape[0]
    if n < target_length:
        return F.pad(fbank, (0, 0, 0, target_length - n))
    return fbank[:target_length]


def normalize_fbank(fbank: Tensor, mean: float, std: float) -> Tensor:
    """AudioMAE's normalisation ``(fbank - mean) / (2 * std)`` (see :data:`NORM_PRESETS`)."""
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    return (fbank - mean) / (2.0 * std)


@dataclass(frozen=True)
class AudioFeatureConfig:
    """Everything that turns a waveform into a model input, AudioMAE's AudioSet settings by default.

    Calling the config is the evaluation processor: a file path (decoded with :func:`load_audio`) or
    a waveform array with its ``sample_rate`` -> normalised float32 ``(1, target_length, num_mel_bins)``.

    Attributes:
        sample_rate: every clip is resampled to this rate before the filterbank.
        num_mel_bins: mel bins (AudioMAE: always 128).
        target_length: frames after padding/cutting (10 s at 10 ms shift is 998 frames -> 1024).
        mean, std: normalisation constants (:data:`NORM_PRESETS`, or :func:`compute_audio_stats`).
        frame_shift, frame_length: milliseconds.
    """

    sample_rate: int = 16000
    num_mel_bins: int = 128
    target_length: int = 1024
    mean: float = NORM_PRESETS["audioset"][0]
    std: float = NORM_PRESETS["audioset"][1]
    frame_shift: float = 10.0
    frame_length: float = 25.0

    def __post_init__(self) -> None:
        _rate(self.sample_rate, "sample_rate")
        for name in ("num_mel_bins", "target_length"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not self.std > 0 or not self.frame_shift > 0 or not self.frame_length > 0:
            raise ValueError(f"std, frame_shift and frame_length must be > 0: {self}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> AudioFeatureConfig:
        """AudioMAE's mean/std and target_length for ``name`` (``audioset``, ``esc50``,
        ``speechcommands``), with ``overrides`` on top."""
        if name not in NORM_PRESETS:
            raise ValueError(f"unknown audio preset {name!r}; presets: {sorted(NORM_PRESETS)}")
        mean, std = NORM_PRESETS[name]
        return replace(cls(mean=mean, std=std, target_length=PRESET_TARGET_LENGTHS[name]), **overrides)

    def fbank(self, waveform: Tensor | np.ndarray) -> Tensor:
        """:func:`kaldi_fbank` of a mono waveform at :attr:`sample_rate`: ``(frames, F)``, not padded."""
        return kaldi_fbank(waveform, self.sample_rate, self.num_mel_bins, self.frame_shift, self.frame_length)

    def finish(self, fbank: Tensor) -> Tensor:
        """Pad/cut to :attr:`target_length`, normalise, add the channel axis: ``(1, T, F)``."""
        return normalize_fbank(pad_or_cut(fbank, self.target_length), self.mean, self.std).unsqueeze(0)

    def __call__(self, audio: str | os.PathLike[str] | Tensor | np.ndarray, sample_rate: int | None = None) -> Tensor:
        """One clip -> float32 ``(1, target_length, num_mel_bins)``, normalised.

        Args:
            audio: a file path, or a waveform array in any layout and sample type that
                :func:`as_waveform` accepts (``(T,)``, ``(C, T)`` or ``(T, C)``; float in [-1, 1]
                or integer PCM), averaged to mono.
            sample_rate: the waveform's rate (required with a waveform; resampled to :attr:`sample_rate`).
        """
        if isinstance(audio, (str, os.PathLike)):
            waveform = load_audio(audio, self.sample_rate)
        else:
            if sample_rate is None:
                raise ValueError("audio processor: pass sample_rate= with a waveform array")
            waveform = resample_waveform(downmix(as_waveform(audio)), sample_rate, self.sample_rate)
        return self.finish(self.fbank(waveform))


#: A 2-D waveform whose second axis has at most this many entries, and is shorter than the first,
#: is read as ``(T, C)`` (soundfile's layout); any other 2-D waveform as ``(C, T)``.
MAX_TC_CHANNELS = 16


def _int_scale(dtype: np.dtype) -> tuple[float, float]:
    """``(offset, scale)`` mapping integer PCM of ``dtype`` to [-1, 1): ``(x - offset) / scale``."""
    half = float(2 ** (8 * dtype.itemsize - 1))
    return (half if dtype.kind == "u" else 0.0), half


def _float32(audio: Tensor | np.ndarray, what: str) -> Tensor:
    """Any real array as a float32 tensor, integer PCM scaled (see :func:`as_waveform`)."""
    if isinstance(audio, Tensor):
        t = audio.detach().cpu()
        if t.is_floating_point():
            return t.float()
        audio = t if t.is_complex() or t.dtype == torch.bool else t.numpy()
    a = np.asarray(audio)
    if a.dtype.kind == "f":
        return torch.from_numpy(a.astype(np.float32))
    if a.dtype.kind not in "iu":
        dtype = str(a.dtype) if not isinstance(audio, Tensor) else str(audio.dtype).removeprefix("torch.")
        raise ValueError(
            f"{what}: a waveform must hold real numbers (float in [-1, 1], or integer PCM), got dtype {dtype}"
        )
    offset, scale = _int_scale(a.dtype)
    return torch.from_numpy(((a.astype(np.float64) - offset) / scale).astype(np.float32))


def as_waveform(audio: Tensor | np.ndarray, what: str = "audio processor") -> Tensor:
    """A waveform array as float32 ``(C, T)`` in full scale [-1, 1].

    Layouts: ``(T,)`` (mono), ``(C, T)``, or ``(T, C)`` (soundfile's default), which is recognised
    when the second axis has at most :data:`MAX_TC_CHANNELS` (16) entries and the first is longer;
    so ``(16000, 2)`` is 2 channels of 16000 samples and ``(2, 16000)`` is too.

    Sample types: floating point (float16/32/64, bfloat16) is taken as full scale and converted to
    float32; integers are PCM, divided by their type's full range (int8 / 128, int16 / 32768,
    int32 / 2**31, int64 / 2**63), unsigned ones centred first (uint8: ``(x - 128) / 128``).

    Raises:
        ValueError: ``<what>: ...`` naming the shape or dtype: 0-D or more than 2-D arrays, bool,
            complex or non-numeric dtypes, no samples, NaN/inf samples.
    """
    x = _float32(audio, what)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    elif x.dim() == 2 and x.shape[1] <= MAX_TC_CHANNELS and x.shape[0] > x.shape[1]:
        x = x.T  # (T, C)
    elif x.dim() != 2:
        raise ValueError(
            f"{what}: expected a waveform of shape (T,), (C, T) or (T, C), got a {x.dim()}-D array of shape "
            f"{tuple(x.shape)}"
        )
    if x.shape[1] == 0:
        raise ValueError(f"{what}: the waveform has no samples (shape {tuple(x.shape)})")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what}: the waveform has {int((~torch.isfinite(x)).sum())} NaN/inf samples")
    return x.contiguous()


# ---------------------------------------------------------------- augmentation


def _mask_band(size: int, mask_param: int, generator: torch.Generator | None) -> tuple[int, int]:
    """torchaudio's ``mask_along_axis`` draw: width ``floor(u1 * mask_param)`` (0 .. mask_param - 1),
    start ``floor(u2 * (size - u1 * mask_param))``; the same two ``torch.rand`` calls in the same order."""
    value = torch.rand(1, generator=generator) * mask_param
    start = (torch.rand(1, generator=generator) * (size - value)).long()
    end = start + value.long()
    return max(int(start), 0), min(int(end), size)


def spec_augment(
    fbank: Tensor, freqm: int, timem: int, *, generator: torch.Generator | None = None, mask_value: float = 0.0
) -> Tensor:
    """SpecAugment as AudioMAE applies it: one frequency band, then one time band, set to ``mask_value``.

    The same draws as ``torchaudio.transforms.FrequencyMasking(freqm)`` followed by
    ``TimeMasking(timem)`` on the ``(1, F, T)`` transpose (with ``generator=None`` they use torch's
    global RNG and give torchaudio's masks exactly). A band is up to ``param - 1`` wide; a param
    below 1 masks nothing and draws nothing. AudioMAE masks before normalising, with value 0.

    Args:
        fbank: ``(T, F)``, time first.
    Returns:
        A masked copy, ``(T, F)``.
    """
    out = fbank.clone()
    if freqm >= 1:
        lo, hi = _mask_band(out.shape[1], freqm, generator)
        out[:, lo:hi] = mask_value
    if timem >= 1:
        lo, hi = _mask_band(out.shape[0], timem, generator)
        out[lo:hi, :] = mask_value
    return out


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng(int(torch.randint(2**62, ())))


def roll_magnitude(waveform: Tensor, rng: np.random.Generator | None = None) -> Tensor:
    """AudioMAE's roll-magnitude augmentation: a circular shift by a uniform ``0 .. T - 1`` samples
    along time, times a gain ``Beta(10, 10) + 0.5`` (in 0.5 .. 1.5). ``rng=None`` draws from torch's
    global RNG. (AudioMAE's own shift is always 0, see the module notes.)

    Args:
        waveform: ``(C, T)``.
    """
    rng = _rng(rng)
    shift = int(rng.integers(waveform.shape[-1]))
    gain = float(rng.beta(10.0, 10.0)) + 0.5
    return torch.roll(waveform, shift, dims=-1) * gain


def mixup_waveforms(first: Tensor, second: Tensor, lam: float) -> Tensor:
    """AudioMAE's waveform mixup: both means removed, ``second`` zero-padded at the end or cut to
    ``first``'s length, ``lam * first + (1 - lam) * second``, mean removed again. Mix the labels
    with the same ``lam``.

    Args:
        first, second: ``(1, T1)`` and ``(1, T2)``.
    Returns:
        ``(1, T1)``.
    """
    t = first.shape[-1]
    first, second = first - first.mean(), second - second.mean()
    second = F.pad(second, (0, t - second.shape[-1])) if second.shape[-1] < t else second[..., :t]
    mixed = lam * first + (1.0 - lam) * second
    return mixed - mixed.mean()
