"""The ``image`` modality: non-overlapping patches with MAE's 2-D sin-cos table, the ImageFolder
reader, MAE's transforms, reconstruction pictures and the embedded digit images."""

from . import spec  # noqa: F401  (registers "image")
from .embedded import embedded_image_root, render_digit
from .folder import IMAGE_EXTENSIONS, ImageFolderDataset, ImageReadError, load_image
from .spec import ImageDataConfig
from .tokenizer import IMAGENET_MEAN, IMAGENET_STD, ImagePatchTokenizer
from .transforms import denormalize, eval_transform, mae_pretrain_transform

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "ImageDataConfig",
    "ImageFolderDataset",
    "ImagePatchTokenizer",
    "ImageReadError",
    "denormalize",
    "embedded_image_root",
    "eval_transform",
    "load_image",
    "mae_pretrain_transform",
    "render_digit",
]
