"""The ``points`` modality: FPS + kNN point groups through a mini-PointNet (Point-MAE), point-file
readers and list formats (folders, ModelNet40, ShapeNet-55), pictures, and the embedded digit
clouds and shapes."""

from . import spec  # noqa: F401  (registers "points")
from .embedded import (
    SHAPE_CLASSES,
    digit_point_cloud,
    embedded_points_root,
    embedded_shapes_root,
    shape_point_cloud,
    shape_surface_points,
)
from .lists import folder_items, modelnet_items, shapenet_items
from .reader import (
    POINT_EXTENSIONS,
    PointCloudDataset,
    PointListError,
    PointReadError,
    load_points,
    normalize_unit_sphere,
    read_points_npy,
    read_points_txt,
    resample,
    scale_and_translate,
)
from .spec import PointsDataConfig, PointSource
from .tokenizer import PointGroupTokenizer

__all__ = [
    "POINT_EXTENSIONS",
    "PointCloudDataset",
    "PointGroupTokenizer",
    "PointListError",
    "PointReadError",
    "PointSource",
    "PointsDataConfig",
    "SHAPE_CLASSES",
    "digit_point_cloud",
    "embedded_points_root",
    "embedded_shapes_root",
    "folder_items",
    "load_points",
    "modelnet_items",
    "normalize_unit_sphere",
    "read_points_npy",
    "read_points_txt",
    "resample",
    "scale_and_translate",
    "shape_point_cloud",
    "shape_surface_points",
    "shapenet_items",
]
