"""Data: the embedded (offline) dataset, the ImageFolder reader and image transforms."""

from .embedded import (
    DATASET_VERSION,
    available_parts,
    embedded_image_root,
    embedded_part_root,
    ensure_embedded_dataset,
    verify_part,
)
from .image_folder import IMAGE_EXTENSIONS, ImageFolderDataset, load_image
from .transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize, eval_transform, mae_pretrain_transform

__all__ = [
    "DATASET_VERSION",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "available_parts",
    "denormalize",
    "embedded_image_root",
    "embedded_part_root",
    "ensure_embedded_dataset",
    "eval_transform",
    "load_image",
    "mae_pretrain_transform",
    "verify_part",
]
