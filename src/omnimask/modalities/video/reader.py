"""Video data path: list files, frame sampling and a decord-backed dataset (clip transforms are in
:mod:`.transforms`).

The layout follows VideoMAE (MCG-NJU/VideoMAE, ``DATASET.md``): a *list file* names one video per
line as ``<path> <label>``; each item is one decode of ``num_frames`` frames chosen by dense (I3D)
or segment (TSN) sampling, then a spatial transform.

Layouts used throughout:

* decoded frames: ``uint8`` numpy array or tensor ``(T, H, W, C)`` (what decord returns);
* transformed clips: ``float32`` tensor ``(C, T, H, W)`` (what a video patch embedding expects).

Randomness: the samplers and :class:`MultiScaleCrop` take an explicit ``np.random.Generator``.
:class:`VideoDataset` builds that generator from one draw of torch's global RNG in
``__getitem__``, so wrapping it in :class:`omnimask.training.SeededDataset` makes every item a
function of ``(index, sample_seed)`` only, whatever the number of DataLoader workers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ...data.errors import DataReadError, check_item_labels, check_readable_file, read_with_policy, split_list_line
from ..image.transforms import IMAGENET_MEAN, IMAGENET_STD, _mean_std, _size
from .transforms import (
    VIDEOMAE_SCALES,
    MultiScaleCrop,
    video_eval_transform,
)

__all__ = [
    "VideoDataset",
    "VideoListError",
    "VideoReadError",
    "video_eval_processor",
    "dense_indices",
    "read_video_list",
    "segment_indices",
]

logger = logging.getLogger(__name__)


class VideoListError(ValueError):
    """A malformed or unusable video list file; the message starts with ``<list_file>:<line>``."""


class VideoReadError(DataReadError):
    """A video that cannot be read; the message names the file and the problem."""


# ---------------------------------------------------------------- list files


def read_video_list(
    list_file: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> list[tuple[str, int]]:
    """Read a VideoMAE-style list file: one ``<path> <label>`` per line, space-delimited.

    Each line is split on its **last** run of spaces or tabs, so paths may contain spaces (the
    label must follow them); labels are class indices, integers >= 0. Blank lines
    and lines whose first non-blank character is ``#`` are skipped. Relative paths are resolved
    against ``root`` if given, else against the folder holding the list file.

    Returns:
        ``[(path, label), ...]`` in file order; paths are absolute strings.
    Raises:
        FileNotFoundError: the list file does not exist.
        VideoListError: ``<list_file>:<line>: <problem>`` for a line without a label (a path with
            spaces and no label says so), a label that is not an integer or is negative, or a video
            file that does not exist; or an empty list.
    """
    list_file = Path(list_file).expanduser()
    if not list_file.is_file():
        what = "is not a file" if list_file.exists() else "does not exist"
        raise FileNotFoundError(f"video list file {what}: {list_file}")
    base = Path(os.path.abspath(Path(root).expanduser() if root is not None else list_file.parent))
    items: list[tuple[str, int]] = []
    with open(list_file, encoding="utf-8-sig") as f:  # -sig: tolerate a BOM from spreadsheet tools
        for line_no, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{list_file}:{line_no}"
            path_str, label = split_list_line(line, where, VideoListError)
            path = Path(path_str).expanduser()
            if not path.is_absolute():
                path = base / path
            if not path.exists():
                raise VideoListError(f"{where}: video file does not exist: {path}")
            items.append((str(path), label))
    if not items:
        raise VideoListError(f"{list_file}: the list names no videos (only blank or '#' lines)")
    return items


# ---------------------------------------------------------------- frame sampling


def _check_sampling_args(num_video_frames: int, clip_len: int, stride: int = 1) -> None:
    if clip_len < 1:
        raise ValueError(f"clip_len must be >= 1, got {clip_len}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if num_video_frames <= 0:
        raise VideoReadError(f"cannot sample frames from a video with {num_video_frames} frames")


def dense_indices(num_video_frames: int, clip_len: int, stride: int, rng: np.random.Generator | None) -> np.ndarray:
    """I3D-style dense sampling (VideoMAE's fine-tuning loader): ``clip_len`` frames, ``stride`` apart.

    With ``span = clip_len * stride``:

    * ``num_video_frames >= span``: choose ``end`` in ``[span, num_video_frames]`` (uniformly with
      ``rng``; with ``rng=None`` the centred window ``end = (num_video_frames - span) // 2 + span``)
      and return ``end - span + k * stride`` for ``k = 0 .. clip_len - 1``. Unlike VideoMAE's
      ``linspace(end - span, end, clip_len)``, the step is exactly ``stride``.
    * shorter videos: every ``stride``-th frame from 0 (``0, stride, 2*stride, ...`` while it
      exists), then the last of those repeated up to ``clip_len`` frames. No randomness.

    Returns:
        (clip_len,) int64 frame indices, non-decreasing, all in ``[0, num_video_frames)``.
    Raises:
        VideoReadError: ``num_video_frames <= 0``.
    """
    _check_sampling_args(num_video_frames, clip_len, stride)
    span = clip_len * stride
    if num_video_frames >= span:
        if rng is None:
            start = (num_video_frames - span) // 2
        else:
            start = int(rng.integers(span, num_video_frames + 1)) - span
        return start + np.arange(clip_len, dtype=np.int64) * stride
    idx = np.arange(0, num_video_frames, stride, dtype=np.int64)[:clip_len]
    return np.concatenate([idx, np.full(clip_len - len(idx), idx[-1], dtype=np.int64)])


def segment_indices(num_video_frames: int, clip_len: int, rng: np.random.Generator | None) -> np.ndarray:
    """TSN segment sampling (VideoMAE's SSv2 loader): one frame from each of ``clip_len`` segments.

    * ``num_video_frames >= clip_len``: segment ``k`` is the frames ``[b_k, b_{k+1})`` with
      ``b_k = k * num_video_frames // clip_len`` (disjoint, each at least one frame); pick one
      uniformly with ``rng``, or its middle frame ``b_k + (b_{k+1} - b_k) // 2`` with ``rng=None``.
    * shorter videos: ``k * num_video_frames // clip_len``, i.e. every frame in order, each repeated
      about ``clip_len / num_video_frames`` times (the last frame included). No randomness.

    Returns:
        (clip_len,) int64 frame indices, non-decreasing, all in ``[0, num_video_frames)``.
    Raises:
        VideoReadError: ``num_video_frames <= 0``.
    """
    _check_sampling_args(num_video_frames, clip_len)
    bounds = np.arange(clip_len + 1, dtype=np.int64) * num_video_frames // clip_len
    lo, hi = bounds[:-1], bounds[1:]
    if num_video_frames < clip_len:
        return lo
    if rng is None:
        return lo + (hi - lo) // 2
    return rng.integers(lo, hi).astype(np.int64)


# ---------------------------------------------------------------- clip transforms


def _decord_message(err: BaseException) -> str:
    # decord's messages carry a C++ "Stack trace:" block and its own source paths; keep the gist.
    text = str(err).split("Stack trace")[0].strip() or type(err).__name__
    return f"{type(err).__name__}: {' '.join(text.split())[:300]}"


def _probe(path: str) -> str | None:
    """Ask PyAV why a file is unreadable (decord only logs the reason to stderr); None if it can't tell."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(path) as container:
            if not container.streams.video:
                return "it has no video stream"
            for _ in container.decode(video=0):
                return None  # PyAV decodes it: nothing to add to decord's message
            return "its video stream has no decodable frames"
    except Exception as e:  # noqa: BLE001 - any PyAV failure is a diagnosis
        return f"{type(e).__name__}: {e}"


def _read_frames(path: str, sampler: Any, num_threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode the frames ``sampler(len(video))`` selects with ONE decord ``get_batch`` call.

    Returns:
        (frames uint8 (T, H, W, C), indices (T,)).
    Raises:
        VideoReadError: ``cannot read video <path>: <problem>``, with decord's exception chained.
    """
    # Never hand an empty file to decord: tiny files can hang some decord builds.
    check_readable_file(path, VideoReadError, "video")
    import decord  # local import: decord is optional on platforms without wheels

    try:
        vr = decord.VideoReader(path, num_threads=num_threads, ctx=decord.cpu(0))
    except Exception as e:  # noqa: BLE001 - decord raises RuntimeError, DECORDError, ...
        why = _probe(path)
        raise VideoReadError(
            f"cannot read video {path}: decord cannot open it ({_decord_message(e)})"
            + (f"; PyAV says: {why}" if why else "")
        ) from e
    try:
        n = len(vr)
        if n <= 0:
            raise VideoReadError(f"cannot read video {path}: it has no video frames")
        indices = sampler(n)
        try:
            frames = vr.get_batch(indices.tolist()).asnumpy()
        except Exception as e:  # noqa: BLE001
            raise VideoReadError(
                f"cannot read video {path}: decoding frames {indices.tolist()} of {n} failed ({_decord_message(e)})"
            ) from e
    finally:
        del vr
    if frames.ndim != 4 or frames.shape[0] != len(indices):
        raise VideoReadError(
            f"cannot read video {path}: decord returned shape {frames.shape} for {len(indices)} requested frames"
        )
    return frames, indices


class VideoDataset(Dataset):
    """Video clips from ``(path, label)`` items, decoded with decord (one ``get_batch`` per item).

    Each item is ``{"video": x, "label": int, "index": int, "skipped": int}`` where ``x`` is float32
    ``(C, T, H, W)`` with ``T = num_frames`` and ``(H, W) = size``, normalised with ``mean``/``std``
    on [0, 1] pixels.

    * ``train=True``: frames by ``sampling`` with a random position, then :class:`MultiScaleCrop`.
    * ``train=False``: the deterministic (centred) frame choice, then :func:`video_eval_transform`.
    * ``repeats=R > 1`` (VideoMAE's ``--num_sample``, repeated augmentation): the clip is decoded
      once and the crop drawn ``R`` times (same frames, different crops); the item is a list of ``R``
      dicts. Use :func:`omnimask.data.collate_repeated` to flatten them into a batch of ``batch_size * R``. With
      ``train=False`` the ``R`` copies are identical.

    Bad files (missing, empty, not a video, undecodable): with ``on_error="raise"``,
    :class:`VideoReadError` naming the file. With ``"skip"``, a warning is logged, the failure is
    recorded in :attr:`skipped` (per process), and indices ``i+1, i+2, ...`` (wrapping) are tried
    in turn; the item's ``"index"`` is the one actually returned and ``"skipped"`` counts the failed
    reads before it (only on the first of ``R`` repeats, so summing a batch counts each failure once;
    unlike :attr:`skipped`, which lists each bad file once, it counts every failed read).
    After ``max_skips`` consecutive failed reads (or when every video failed) VideoReadError is raised.

    Randomness comes from one draw of torch's global RNG per ``__getitem__`` (turned into a
    ``np.random.Generator``), so under :class:`omnimask.training.SeededDataset` items depend only on
    ``(index, sample_seed)``. The VideoReader is opened inside ``__getitem__`` (DataLoader-worker safe).

    Args:
        items: ``[(path, label), ...]``, e.g. from :func:`read_video_list`.
        num_frames: frames per clip.
        stride: frame step for ``sampling="dense"`` (ignored by ``"segment"``).
        sampling: ``"dense"`` (:func:`dense_indices`) or ``"segment"`` (:func:`segment_indices`).
        size: output ``(H, W)`` or an int for square.
        scales: :class:`MultiScaleCrop` scales (training only).
        mean, std: per-channel normalisation.
        num_threads: decord decoding threads per reader (VideoMAE uses 1; 0 = decord's auto).
        max_skips: with ``on_error="skip"``, give up after this many consecutive failed reads.
    """

    def __init__(
        self,
        items: Sequence[tuple[str | os.PathLike[str], int]],
        num_frames: int = 16,
        stride: int = 4,
        sampling: Literal["dense", "segment"] = "dense",
        size: int | tuple[int, int] = (224, 224),
        train: bool = True,
        scales: Sequence[float] = VIDEOMAE_SCALES,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        repeats: int = 1,
        on_error: Literal["raise", "skip"] = "raise",
        num_threads: int = 1,
        max_skips: int = 10,
    ) -> None:
        if sampling not in ("dense", "segment"):
            raise ValueError(f"sampling must be 'dense' or 'segment', got {sampling!r}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        for name, value, low in (("num_frames", num_frames, 1), ("stride", stride, 1), ("repeats", repeats, 1),
                                 ("num_threads", num_threads, 0), ("max_skips", max_skips, 1)):  # fmt: skip
            if int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.items = [(os.fspath(p), int(label)) for p, label in items]
        check_item_labels(self.items, "video")
        if not self.items:
            raise ValueError("VideoDataset needs at least one (path, label) item")
        self.num_frames, self.stride, self.sampling = int(num_frames), int(stride), sampling
        self.size = _size(size)
        self.train = bool(train)
        self.mean, self.std = _mean_std(mean, std)
        self.crop = MultiScaleCrop(self.size, scales)
        self.repeats = int(repeats)
        self.on_error = on_error
        self.num_threads = int(num_threads)
        self.max_skips = int(max_skips)
        self.skipped: list[tuple[str, str]] = []

    @classmethod
    def from_list(
        cls, list_file: str | os.PathLike[str], root: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> VideoDataset:
        """``VideoDataset(read_video_list(list_file, root), **kwargs)``."""
        return cls(read_video_list(list_file, root), **kwargs)

    @property
    def targets(self) -> list[int]:
        """Label of every item, in item order."""
        return [label for _, label in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def frame_indices(self, num_video_frames: int, rng: np.random.Generator | None) -> np.ndarray:
        """The frames this dataset decodes from a video of ``num_video_frames`` (rng None: eval choice)."""
        if self.sampling == "dense":
            return dense_indices(num_video_frames, self.num_frames, self.stride, rng)
        return segment_indices(num_video_frames, self.num_frames, rng)

    def _views(self, frames: np.ndarray, rng: np.random.Generator | None) -> list[Tensor]:
        if frames.shape[-1] != len(self.mean) and len(self.mean) != 1:
            raise ValueError(f"{len(self.mean)} mean/std values for frames with {frames.shape[-1]} channels")
        x = torch.from_numpy(frames)
        if not self.train:
            view = video_eval_transform(x, self.size, self.mean, self.std)
            return [view] + [view.clone() for _ in range(self.repeats - 1)]
        height, width = x.shape[1:3]
        return [
            self.crop.apply(x, self.crop.sample(height, width, rng), self.mean, self.std) for _ in range(self.repeats)
        ]

    def __getitem__(self, index: int) -> dict[str, Any] | list[dict[str, Any]]:
        n = len(self.items)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for dataset of {n} videos")
        index %= n
        rng = np.random.default_rng(int(torch.randint(2**62, ()))) if self.train else None
        j, label, (frames, _), failures = read_with_policy(
            self.items, index, lambda path: _read_frames(path, lambda length: self.frame_indices(length, rng), self.num_threads),
            on_error=self.on_error, max_skips=self.max_skips, skipped=self.skipped, error=VideoReadError,
            what="video", logger=logger,
        )  # fmt: skip
        views = self._views(frames, rng)
        out = [{"video": v, "label": label, "index": j, "skipped": failures if r == 0 else 0}
               for r, v in enumerate(views)]  # fmt: skip
        return out[0] if self.repeats == 1 else out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(videos={len(self)}, num_frames={self.num_frames}, stride={self.stride}, "
            f"sampling={self.sampling!r}, size={self.size}, train={self.train}, repeats={self.repeats}, "
            f"on_error={self.on_error!r})"
        )


def video_eval_processor(
    num_frames: int,
    size: int | tuple[int, int],
    stride: int = 4,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Any:
    """The preprocessing a video checkpoint carries (``OmniMaskProcessor``): one raw video -> one clip.

    The returned callable takes a video file path, or uint8 frames ``(T, H, W, C)`` (numpy or
    torch), picks ``num_frames`` frames ``stride`` apart from the middle of the video (the
    evaluation's centred dense sampling; short videos repeat their last frame), resizes the short
    side to ``size``, centre-crops and normalises. Returns float32 ``(C, num_frames, H, W)``.
    """

    def sampler(n: int) -> np.ndarray:
        return dense_indices(n, num_frames, stride, None)

    def process(video: Any) -> Tensor:
        if isinstance(video, (str, os.PathLike)):
            frames, _ = _read_frames(str(video), sampler, 1)
        else:
            frames = video.numpy() if isinstance(video, Tensor) else np.asarray(video)
            if frames.ndim != 4 or frames.dtype != np.uint8:
                raise ValueError(
                    f"video processor: expected a file path or uint8 frames (T, H, W, C), got {frames.dtype} {frames.shape}"
                )
            if len(frames) == 0:
                raise ValueError("video processor: the video has no frames")
            frames = frames[sampler(len(frames))]
        return video_eval_transform(frames, size, mean, std)

    return process
