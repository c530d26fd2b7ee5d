"""Audio-visual samples (``data.av`` in a recipe config): a video file's frames AND its sound track
as one sample with two modalities, or CAV-MAE's JSON of wavs with pre-extracted frames.

Each item is ``{<visual key>: x, <audio key>: a, "label": int, "index": int, "skipped": int}``:

* ``x``: an ``image`` modality gets one frame, float32 ``(3, H, W)``; a ``video`` modality a clip
  ``(3, T, H, W)`` of its tokenizer's ``num_frames`` frames (dense sampling, its processor's
  ``stride``). Frames are resized so they cover the tokenizer's ``image_size``, centre-cropped and
  normalised with the modality's processor ``mean``/``std``
  (:func:`~omnimask.modalities.video.transforms.resize_center_crop`).
* ``a``: the sound track as the audio modality's input, float32 ``(1, target_length, num_mel_bins)``:
  decoded with the audio path's :func:`~omnimask.modalities.audio.features.read_audio_file` (PyAV
  for a video's track, soundfile for a wav), one channel kept (``channels``), then exactly the audio
  path's :class:`~omnimask.modalities.audio.features.AudioFeatureConfig`: resampled to the audio
  processor's ``sample_rate``, mean removed, Kaldi fbank, zero-padded or cut to ``target_length``
  from the start of the track, normalised with the processor's ``mean``/``std``.

decord's ``AudioReader`` is not used for the sound (its multi-channel output is corrupt in 0.6.0,
dmlc/decord#242, see :func:`read_audio_file`); the frames are decoded with decord as the video
modality decodes them.

Bad input (every message names the file or folder):

* no sound track (a video without an audio stream; a CAV-MAE wav that does not exist):
  ``missing_audio`` ``raise`` (an unreadable sample: an error, or skipped under ``on_error: skip``),
  ``skip`` (skipped and counted even under ``on_error: raise``) or ``silence`` (a silent track as
  long as the video; the only case where the audio becomes silence);
* a sound track shorter than the video stream (by more than 0.1 s or one video frame):
  ``short_audio`` ``pad`` (the filterbank is zero-padded to ``target_length`` as every short clip is
  in the audio path; the first such file is logged) or ``raise``;
* another sample rate (8, 22.05, 44.1 kHz, ...): resampled; several channels: ``channels``
  ``mean`` (the audio path's downmix, default) or ``first`` (CAV-MAE's ``sox remix 1``);
* a missing frame folder or frame file (CAV-MAE format), a file decord or PyAV cannot read:
  :class:`AVReadError` (or a ``VideoReadError``/``AudioReadError``), or skipped with
  ``on_error: skip`` (counted in the item's ``skipped`` and :attr:`AVDataset.skipped`).
  Unlike CAV-MAE, a missing frame is never replaced by an earlier one.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ...data.errors import DataReadError, check_readable_file, read_with_policy
from ...data.sources import SourceSpec, register_source
from ...registry import ConfigError
from ..image.tokenizer import _pair
from ..video.reader import _read_frames, dense_indices, read_video_list, segment_indices
from ..video.transforms import resize_center_crop
from .av_embedded import embedded_av_root
from .features import AudioFeatureConfig, read_audio_file
from .lists import read_label_csv

__all__ = [
    "AVDataConfig", "AVDataset", "AVListError", "AVReadError", "AVSample", "AVVisual", "MissingSoundError",
    "build_av_dataset", "label_map", "model_inputs", "probe_video", "read_av_list",
]  # fmt: skip

logger = logging.getLogger(__name__)

_FORMATS = ("auto", "video", "cavmae")
_CHOICES = {
    "format": _FORMATS,
    "channels": ("mean", "first"),
    "missing_audio": ("raise", "skip", "silence"),
    "short_audio": ("pad", "raise"),
    "on_error": ("raise", "skip"),
}
_SPLITS = ("train", "train_eval", "val")
_SHORT_TOLERANCE_S = 0.1


class AVReadError(DataReadError):
    """An audio-visual sample that cannot be used; the message names the file or folder."""


class MissingSoundError(AVReadError):
    """A sample without a sound track (``missing_audio`` decides what happens)."""


class AVListError(ValueError):
    """A malformed audio-visual list; the message names the file and the entry."""


@dataclass
class AVDataConfig:
    """Where a recipe reads audio-visual samples and how (``data.av``).

    ``list_file``/``val_list_file``: a ``<path> <label>`` list of video files (the video modality's
    format), a JSON ``{"data": [{"video": path, "labels": ...}]}``, or CAV-MAE's JSON
    ``{"data": [{"wav": path, "labels": "mid1,mid2", "video_id": id, "video_path": dir}]}``
    (frames at ``<video_path>/frame_<k>/<video_id>.jpg``, ``k < frame_count``); ``null`` = the
    embedded ``av`` part. ``format``: ``auto`` (JSON with ``video_path`` = CAV-MAE, with ``video`` =
    video files; other files are ``<path> <label>`` lists), ``video`` or ``cavmae``. Relative paths
    resolve against ``root``, else the list's folder. JSON labels are mids (comma separated, the
    first one counts) mapped by ``label_csv`` (``index,mid,display_name``), else by their index in
    the sorted mids of both lists; an int label is used as it is.
    ``visual``/``audio``: the model keys the two inputs go to. The sample rate, fbank size and
    normalisation come from the audio modality's config, the frame size and normalisation from the
    visual one. Training split only: ``audio_noise`` (CAV-MAE: uniform noise ``U(0,1) * u / 10``,
    ``u ~ U(0,1)`` per clip, on the normalised fbank, then a circular time roll by
    ``-T .. T - 1`` frames) and ``random_frame`` (a random frame / clip position; held-out splits
    take the middle frame, CAV-MAE's frame 5 of 10, or ``eval_frame``). See the module notes for
    ``channels``, ``missing_audio``, ``short_audio`` and ``on_error``.
    """

    list_file: str | None = None
    val_list_file: str | None = None
    root: str | None = None
    format: str = "auto"
    label_csv: str | None = None
    visual: str = "image"
    audio: str = "audio"
    channels: str = "mean"
    missing_audio: str = "raise"
    short_audio: str = "pad"
    on_error: str = "raise"
    audio_noise: bool = True
    random_frame: bool = True
    frame_count: int = 10
    eval_frame: int | None = None
    num_threads: int = 1
    #: Decode every video file once when the dataset is built and keep its frames and (un-augmented)
    #: filterbank in memory; augmentation still runs per item. For small datasets (the embedded
    #: part: about 35 MB): decoding dominates a small model's step otherwise.
    preload: bool = False

    def __post_init__(self) -> None:
        for key, choices in _CHOICES.items():
            if getattr(self, key) not in choices:
                raise ConfigError(f"data.av.{key} must be one of {list(choices)}, got {getattr(self, key)!r}")
        if self.visual == self.audio:
            raise ConfigError(f"data.av.visual and data.av.audio must be different model keys, both are {self.audio!r}")
        if self.frame_count < 1:
            raise ConfigError(f"data.av.frame_count must be >= 1, got {self.frame_count}")
        if self.eval_frame is not None and not 0 <= self.eval_frame < self.frame_count:
            raise ConfigError(f"data.av.eval_frame must be in 0..{self.frame_count - 1}, got {self.eval_frame}")
        if self.num_threads < 0:
            raise ConfigError(f"data.av.num_threads must be >= 0, got {self.num_threads}")


@dataclass(frozen=True)
class AVSample:
    """One list entry: ``path`` is the video file, or for CAV-MAE the wav (the file messages name);
    ``frames`` is CAV-MAE's ``video_path`` folder and ``video_id`` its frames' file stem."""

    path: str
    label: int
    frames: str | None = None
    video_id: str | None = None


@dataclass(frozen=True)
class AVVisual:
    """The visual input the model expects: ``kind`` ``image`` (one frame) or ``video`` (``num_frames``
    frames ``stride`` apart), ``size`` (H, W), per-channel ``mean``/``std``."""

    kind: str
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_frames: int = 1
    stride: int = 4


# ---------------------------------------------------------------- lists


def _json_data(json_file: Path) -> list:
    try:
        doc = json.loads(json_file.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise AVListError(f"{json_file}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list) or not data or not all(isinstance(e, dict) for e in data):
        raise AVListError(f'{json_file}: expected a non-empty {{"data": [{{...}}, ...]}} list of objects')
    return data


def _mids(entry: dict, where: str) -> list[str] | int:
    raw = entry.get("labels")
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    names = [str(s).strip() for s in (raw if isinstance(raw, list) else str(raw or "").split(","))]
    names = [s for s in names if s]
    if not names:
        raise AVListError(f"{where}: no 'labels' (mids separated by commas, or a class index)")
    return names


def label_map(list_files: Sequence[str | os.PathLike[str]], label_csv: str | None = None) -> dict[str, int]:
    """``{mid: class}``: from ``label_csv`` (``index,mid,display_name``) if given, else each mid's
    index in the sorted mids of the JSON lists among ``list_files`` (the same for train and val)."""
    if label_csv is not None:
        return read_label_csv(label_csv)
    names: set[str] = set()
    for f in list_files:
        if Path(f).suffix.lower() == ".json":
            for k, entry in enumerate(_json_data(Path(f))):
                mids = _mids(entry, f"{f}: data[{k}]")
                names.update(mids if isinstance(mids, list) else ())
    return {mid: i for i, mid in enumerate(sorted(names))}


def _detect(fmt: str, list_file: Path, data: list | None) -> str:
    if data is None:
        if fmt == "cavmae":
            raise AVListError(f"{list_file}: data.av.format cavmae needs CAV-MAE's JSON list, not a text list")
        return "video"
    first = data[0]
    found = "cavmae" if "video_path" in first else "video" if "video" in first else None
    if found is None or (fmt != "auto" and fmt != found):
        want = {"cavmae": "'wav', 'video_id', 'video_path'", "video": "'video'"}
        need = want.get(fmt, "'video' (video files) or 'wav', 'video_id', 'video_path' (CAV-MAE)")
        raise AVListError(f"{list_file}: data[0] has keys {sorted(first)}; format {fmt!r} needs {need} and 'labels'")
    return found


def read_av_list(
    list_file: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    fmt: str = "auto",
    labels: dict[str, int] | None = None,
) -> list[AVSample]:
    """Read an audio-visual list (see :class:`AVDataConfig` for the formats).

    ``<path> <label>`` lists are read by the video modality's reader (files checked now); JSON
    entries are checked when read (a missing wav or frame is the reader's ``missing_audio`` /
    ``on_error`` business). ``labels``: mid -> class (default: :func:`label_map` of this list).

    Raises:
        FileNotFoundError: no list file. AVListError: ``<file>: data[<k>] ...`` for a bad entry.
    """
    list_file = Path(list_file).expanduser()
    if not list_file.is_file():
        raise FileNotFoundError(f"audio-visual list file does not exist: {list_file}")
    data = _json_data(list_file) if list_file.suffix.lower() == ".json" else None
    fmt = _detect(fmt, list_file, data)
    if data is None:
        return [AVSample(p, y) for p, y in read_video_list(list_file, root)]
    labels = label_map([list_file]) if labels is None else labels
    base = Path(os.path.abspath(Path(root).expanduser() if root is not None else list_file.parent))
    keys = ("wav", "video_id", "video_path") if fmt == "cavmae" else ("video",)
    out = []
    for k, entry in enumerate(data):
        where = f"{list_file}: data[{k}]"
        missing = [key for key in keys if not entry.get(key)]
        if missing:
            raise AVListError(f"{where} has no {missing} (it has {sorted(entry)})")
        mids = _mids(entry, where)
        if isinstance(mids, list) and mids[0] not in labels:
            raise AVListError(f"{where}: the label {mids[0]!r} is not in the label map ({len(labels)} mids)")
        label = mids if isinstance(mids, int) else labels[mids[0]]
        if fmt == "cavmae":
            out.append(
                AVSample(str(base / entry["wav"]), label, str(base / entry["video_path"]), str(entry["video_id"]))
            )
        else:
            out.append(AVSample(str(base / entry["video"]), label))
    return out


# ---------------------------------------------------------------- decoding


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"


def probe_video(path: str) -> tuple[bool, float | None, float | None]:
    """``(has an audio stream, the video stream's duration in s, its frame rate)`` from the container
    header (PyAV; nothing decoded). Durations it cannot tell are None.

    Raises:
        AVReadError: ``cannot read video <path>: ...`` (missing, empty, not a container, no video stream).
    """
    check_readable_file(path, AVReadError, "video")
    import av  # PyAV

    try:
        with av.open(path) as c:
            if not c.streams.video:
                raise AVReadError(f"cannot read video {path}: it has no video stream")
            v = c.streams.video[0]
            fps = float(v.average_rate) if v.average_rate else None
            if v.frames and fps:
                seconds: float | None = v.frames / fps
            elif v.duration and v.time_base:
                seconds = float(v.duration * v.time_base)
            else:  # e.g. Matroska: the container's duration (the longest stream)
                seconds = c.duration / av.time_base if c.duration else None
            return bool(c.streams.audio), seconds, fps
    except AVReadError:
        raise
    except Exception as e:  # noqa: BLE001 - av.error.*, OSError, ...
        raise AVReadError(f"cannot read video {path}: PyAV cannot open it ({_why(e)})") from e


def _read_still(folder: Path, k: int, video_id: str) -> np.ndarray:
    """CAV-MAE's frame ``<folder>/frame_<k>/<video_id>.jpg`` as uint8 (H, W, 3)."""
    sub = folder / f"frame_{k}"
    path = sub / f"{video_id}.jpg"
    for d in (folder, sub):
        if not d.is_dir():
            raise AVReadError(f"cannot read frame {path}: the frame folder {d} does not exist")
    check_readable_file(path, AVReadError, "frame")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - PIL raises many kinds
        raise AVReadError(f"cannot read frame {path}: PIL cannot decode it ({_why(e)})") from e


def _noise_and_roll(x: Tensor, rng: np.random.Generator) -> Tensor:
    """CAV-MAE's audio augmentation on a normalised ``(1, T, F)`` fbank: ``+ U(0,1) * u / 10``
    (``u ~ U(0,1)`` per clip), then a circular roll along time by ``-T .. T - 1`` frames."""
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    x = x + torch.rand(x.shape, generator=gen) * float(rng.random()) / 10.0
    return torch.roll(x, int(rng.integers(-x.shape[1], x.shape[1])), dims=1)


class AVDataset(Dataset):
    """Audio-visual samples as a pair of model inputs (see the module notes for the item, the
    decoding and the bad-input policies).

    ``train=True`` turns on ``audio_noise`` and ``random_frame`` where they are set. Randomness: one
    draw of torch's global RNG per item seeds a ``np.random.Generator``, so under
    :class:`omnimask.training.SeededDataset` an item depends only on ``(index, sample_seed)``.
    Decoders are opened inside ``__getitem__`` (DataLoader-worker safe); the dataset pickles.
    """

    def __init__(
        self, samples: Sequence[AVSample], visual: AVVisual, features: AudioFeatureConfig,
        config: AVDataConfig | None = None, *, train: bool = False, max_skips: int = 10,
    ) -> None:  # fmt: skip
        self.samples = list(samples)
        if not self.samples:
            raise ValueError("AVDataset needs at least one sample")
        if visual.kind not in ("image", "video"):
            raise ValueError(f"the visual input must be an image or a video modality, got {visual.kind!r}")
        self._items = [(s.path, s.label) for s in self.samples]  # what read_with_policy walks
        self._by_path: dict[str, AVSample] = {}
        for s in self.samples:
            if self._by_path.setdefault(s.path, s) != s:
                raise ValueError(
                    f"{s.path} is listed twice with different frames or labels: {self._by_path[s.path]}, {s}"
                )
        self.visual, self.features = visual, features
        self.config = config if config is not None else AVDataConfig()
        self.train, self.max_skips = bool(train), int(max_skips)
        self.skipped: list[tuple[str, str]] = []
        self.short_tracks: list[str] = []  # padded sound tracks shorter than their video (per process)
        self._cache: dict[str, tuple[np.ndarray, Tensor]] = {}
        if self.config.preload:
            self._preload()

    def _preload(self) -> None:
        """Decode every video file's frames and sound once (a file that fails is left to
        ``__getitem__``, whose policy then raises or skips it, naming it)."""
        for s in self.samples:
            if s.frames is not None:
                continue  # CAV-MAE's still frames are read per item
            try:
                self._read(s.path, None, keep=True)
            except DataReadError:
                continue

    @property
    def targets(self) -> list[int]:
        """Label of every sample, in order."""
        return [s.label for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    # -- sound
    def _no_sound(self, path: str, why: str, seconds: float | None) -> tuple[Tensor, int]:
        rate = self.features.sample_rate
        if self.config.missing_audio == "silence":
            seconds = seconds or self.features.target_length * self.features.frame_shift / 1000.0
            return torch.zeros(1, max(1, round(seconds * rate))), rate
        raise MissingSoundError(
            f"cannot read audio-visual sample {path}: {why}; data.av.missing_audio is "
            f"{self.config.missing_audio!r} (raise, skip or silence)"
        )

    def _check_short(self, path: str, audio_s: float, video_s: float | None, fps: float | None) -> None:
        if video_s is None or audio_s + max(_SHORT_TOLERANCE_S, 1.0 / fps if fps else 0.0) >= video_s:
            return
        what = f"its sound track lasts {audio_s:.3f} s, the video {video_s:.3f} s"
        if self.config.short_audio == "raise":
            raise AVReadError(f"cannot read audio-visual sample {path}: {what} (data.av.short_audio: raise)")
        if path not in self.short_tracks:
            if not self.short_tracks:
                logger.warning("%s: %s; its filterbank is zero-padded (data.av.short_audio: pad)", path, what)
            self.short_tracks.append(path)

    def _fbank(self, waveform: Tensor, rate: int) -> Tensor:
        """(C, T) at ``rate`` -> the audio modality's input (1, target_length, F)."""
        mono = waveform[0] if self.config.channels == "first" else waveform.mean(dim=0)
        return self.features(mono, sample_rate=rate)

    # -- frames
    def _frame_indices(self, n: int, rng: np.random.Generator | None) -> np.ndarray:
        if self.visual.kind == "video":
            return dense_indices(n, self.visual.num_frames, self.visual.stride, rng)
        return np.array([int(rng.integers(n)) if rng is not None else n // 2], dtype=np.int64)

    def _pixels(self, frames: np.ndarray) -> Tensor:
        x = resize_center_crop(frames, self.visual.size, self.visual.mean, self.visual.std)  # (3, T, H, W)
        return x[:, 0] if self.visual.kind == "image" else x

    def _stills(self, s: AVSample, rng: np.random.Generator | None) -> np.ndarray:
        count, folder = self.config.frame_count, Path(s.frames or "")
        if self.visual.kind == "video":
            ks = segment_indices(count, self.visual.num_frames, rng)
        else:
            middle = self.config.eval_frame if self.config.eval_frame is not None else count // 2
            ks = np.array([int(rng.integers(count)) if rng is not None else middle])
        read = {int(k): _read_still(folder, int(k), s.video_id or "") for k in dict.fromkeys(ks.tolist())}
        shapes = {f.shape for f in read.values()}
        if len(shapes) > 1:
            raise AVReadError(
                f"cannot read the frames of {folder} ({s.video_id}): they differ in size {sorted(shapes)}"
            )
        return np.stack([read[int(k)] for k in ks])

    # -- one sample
    def _read(self, path: str, rng: np.random.Generator | None, keep: bool = False) -> tuple[Tensor, Tensor]:
        s = self._by_path[path]
        if path in self._cache:  # preloaded: every frame and the filterbank
            frames, fbank = self._cache[path]
            return self._pixels(frames[self._frame_indices(len(frames), rng)]), fbank
        if s.frames is not None:  # CAV-MAE: a wav and still frames
            if os.path.exists(path):
                waveform, rate = read_audio_file(path)
            else:
                waveform, rate = self._no_sound(path, "the wav file does not exist", None)
            return self._pixels(self._stills(s, rng)), self._fbank(waveform, rate)
        has_sound, video_s, fps = probe_video(path)
        if has_sound:
            waveform, rate = read_audio_file(path)
            self._check_short(path, waveform.shape[-1] / rate, video_s, fps)
        else:
            waveform, rate = self._no_sound(path, "it has no sound track (no audio stream)", video_s)
        if keep:
            frames, _ = _read_frames(path, lambda n: np.arange(n), self.config.num_threads)
            self._cache[path] = (frames, self._fbank(waveform, rate))
            return self._read(path, rng)
        frames, _ = _read_frames(path, lambda n: self._frame_indices(n, rng), self.config.num_threads)
        return self._pixels(frames), self._fbank(waveform, rate)

    def _policy(self) -> tuple[str, type[DataReadError]]:
        if self.config.on_error == "skip":
            return "skip", DataReadError
        if self.config.missing_audio == "skip":
            return "skip", MissingSoundError  # only silent samples are skipped; other errors raise
        return "raise", DataReadError

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} audio-visual samples")
        cfg = self.config
        augment = self.train and (cfg.audio_noise or cfg.random_frame)
        rng = np.random.default_rng(int(torch.randint(2**62, ())) if augment else 0)
        frame_rng = rng if self.train and cfg.random_frame else None
        on_error, error = self._policy()
        j, label, (visual, audio), failures = read_with_policy(
            self._items, index % n, lambda path: self._read(path, frame_rng), on_error=on_error,
            max_skips=self.max_skips, skipped=self.skipped, error=error, what="audio-visual sample", logger=logger,
        )  # fmt: skip
        if self.train and cfg.audio_noise:
            audio = _noise_and_roll(audio, rng)
        return {cfg.visual: visual, cfg.audio: audio, "label": label, "index": j, "skipped": failures}

    def __repr__(self) -> str:
        c, f = self.config, self.features
        return (
            f"{type(self).__name__}(samples={len(self)}, visual={self.visual.kind} {self.visual.size}, "
            f"audio=({f.target_length}, {f.num_mel_bins}) at {f.sample_rate} Hz, train={self.train}, "
            f"channels={c.channels!r}, missing_audio={c.missing_audio!r}, short_audio={c.short_audio!r}, "
            f"on_error={c.on_error!r})"
        )


# ---------------------------------------------------------------- the data source


def _modality(modalities: dict, key: str, kinds: tuple[str, ...], what: str) -> dict:
    if key not in modalities:
        raise ValueError(f"data.av.{what}: the model has no modality {key!r} (it has {list(modalities)})")
    m = modalities[key]
    if m["type"] not in kinds:
        raise ValueError(f"data.av.{what}: the model's modality {key!r} is a {m['type']!r}, not {' or '.join(kinds)}")
    return m


def model_inputs(cfg: AVDataConfig, modalities: dict) -> tuple[AVVisual, AudioFeatureConfig]:
    """What the model's modalities config (``{key: {"type", "tokenizer", "processor", ...}}``) asks
    of the two inputs: the visual geometry and the audio features."""
    v = _modality(modalities, cfg.visual, ("image", "video"), "visual")
    a = _modality(modalities, cfg.audio, ("audio",), "audio")
    tok, proc = v["tokenizer"], v["processor"]
    if tok.get("in_chans", 3) != 3:
        raise ValueError(f"data.av.visual: frames are RGB, the modality {cfg.visual!r} has in_chans={tok['in_chans']}")
    video = v["type"] == "video"
    visual = AVVisual(v["type"], _pair(tok["image_size"], "image_size"), tuple(proc["mean"]), tuple(proc["std"]),
                      num_frames=int(tok["num_frames"]) if video else 1, stride=int(proc.get("stride", 4)))  # fmt: skip
    (mean,), (std,) = a["processor"]["mean"], a["processor"]["std"]
    features = AudioFeatureConfig(
        sample_rate=int(a["processor"]["sample_rate"]),
        num_mel_bins=int(a["tokenizer"]["num_mel_bins"]),
        target_length=int(a["tokenizer"]["target_length"]),
        mean=float(mean),
        std=float(std) / 2.0,  # the processor stores 2 * AudioMAE's std (see norm_preset): the audio path's reading
    )
    return visual, features


def build_av_dataset(cfg: AVDataConfig, modalities: dict, split: str) -> AVDataset:
    """The audio-visual dataset for ``split``: ``train`` (augmented), ``train_eval`` (the training
    list, not augmented) or ``val`` (``val_list_file``, or the embedded part's held-out clips)."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    visual, features = model_inputs(cfg, modalities)
    held_out = split == "val"
    list_file = cfg.val_list_file if held_out else cfg.list_file
    root = cfg.root
    if list_file is None:
        if cfg.list_file is not None:
            raise ValueError("data.av.val_list_file is required for evaluation when data.av.list_file is your own data")
        list_file, root = str(embedded_av_root() / ("val.csv" if held_out else "train.csv")), None
    labels = label_map([f for f in (cfg.list_file, cfg.val_list_file) if f], cfg.label_csv)
    samples = read_av_list(list_file, root, cfg.format, labels)
    return AVDataset(samples, visual, features, cfg, train=split == "train")


register_source(
    SourceSpec(
        name="av",
        config=AVDataConfig,
        build=build_av_dataset,
        keys=lambda cfg: (cfg.visual, cfg.audio),
        description="audio-visual clips: a video's frames + its sound track, or CAV-MAE's wavs + frames (CAV-MAE)",
    )
)
