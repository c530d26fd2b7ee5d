"""The ``video`` modality: space-time tubes (VideoMAE), the decord-backed reader of ``<path> <label>``
lists, clip transforms, reconstruction pictures and the embedded moving digits."""

from . import spec  # noqa: F401  (registers "video")
from .embedded import embedded_video_root, render_moving_digit
from .reader import (
    VideoDataset,
    VideoListError,
    VideoReadError,
    dense_indices,
    read_video_list,
    segment_indices,
    video_eval_processor,
)
from .spec import VideoDataConfig
from .tokenizer import VideoTubeTokenizer
from .transforms import MultiScaleCrop, normalize_video, resize_center_crop, video_eval_transform

__all__ = [
    "MultiScaleCrop",
    "VideoDataConfig",
    "VideoDataset",
    "VideoListError",
    "VideoReadError",
    "VideoTubeTokenizer",
    "dense_indices",
    "embedded_video_root",
    "normalize_video",
    "read_video_list",
    "render_moving_digit",
    "resize_center_crop",
    "segment_indices",
    "video_eval_processor",
    "video_eval_transform",
]
