"""Data: the embedded (offline) dataset, the ImageFolder reader, image transforms and the video path."""

from .embedded import (
    DATASET_VERSION,
    available_parts,
    embedded_image_root,
    embedded_part_root,
    embedded_video_root,
    ensure_embedded_dataset,
    verify_part,
)
from .errors import DataReadError
from .image_folder import IMAGE_EXTENSIONS, ImageFolderDataset, load_image
from .transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize, eval_transform, mae_pretrain_transform
from .video import (
    MultiScaleCrop,
    VideoDataset,
    VideoListError,
    VideoReadError,
    collate_repeated,
    dense_indices,
    normalize_video,
    read_video_list,
    resize_center_crop,
    segment_indices,
    video_eval_processor,
    video_eval_transform,
)

__all__ = [
    "DataReadError",
    "DATASET_VERSION",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "MultiScaleCrop",
    "VideoDataset",
    "VideoListError",
    "VideoReadError",
    "available_parts",
    "collate_repeated",
    "dense_indices",
    "denormalize",
    "embedded_image_root",
    "embedded_part_root",
    "embedded_video_root",
    "ensure_embedded_dataset",
    "eval_transform",
    "load_image",
    "mae_pretrain_transform",
    "normalize_video",
    "read_video_list",
    "resize_center_crop",
    "segment_indices",
    "verify_part",
    "video_eval_processor",
    "video_eval_transform",
]
