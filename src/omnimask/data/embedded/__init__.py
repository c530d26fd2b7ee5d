"""A small deterministic dataset generated locally, so examples and tests need no network.

Everything derives from scikit-learn's bundled UCI handwritten digits (1797 real 8x8 images,
grey levels 0..16, labels 0-9), except the ``shapes`` part (synthetic solids). Each *part* (one
modality or data set) lives in its own folder::

    <root>/v1/<part>/...            # written by the part's builder
    <root>/v1/<part>/manifest.json  # written last; its presence means "complete"

A part is built in a temporary sibling folder and moved into place with ``os.replace``, so an
interrupted run never leaves a folder that looks complete. Adding a part means writing one builder
function ``(out_dir, progress) -> counts`` and decorating it with ``@_part("name", version)``.

Layout of this package: :mod:`.core` holds the shared machinery (part registry, roots, the source
digits and their split, colours, manifests, :func:`ensure_embedded_dataset` and the
``embedded_*_root`` helpers); one module per part holds its builder and renderer: :mod:`.image`,
:mod:`.video`, :mod:`.points` (``points`` and ``shapes``), :mod:`.audio` and :mod:`.captions`.
Importing this package imports them all, which registers every part.
"""

from __future__ import annotations

from .core import (
    DATASET_VERSION,
    available_parts,
    embedded_audio_root,
    embedded_captions_root,
    embedded_image_root,
    embedded_part_root,
    embedded_points_root,
    embedded_shapes_root,
    embedded_video_root,
    ensure_embedded_dataset,
    load_digits_source,
    stratified_split,
    verify_part,
)
from .core import Builder  # noqa: F401  (public name of the former single module, not in __all__)
from .core import _COLOUR_SEED, _colours  # noqa: F401  (imported by omnimask.data.text)

# The part modules: importing them runs their @_part registrations (in the former module's order).
from .image import render_digit  # registers "image"
from .video import render_moving_digit  # registers "video"
from .points import SHAPE_CLASSES, digit_point_cloud, shape_point_cloud, shape_surface_points  # "points", "shapes"
from .audio import AUDIO_MELODIES, render_digit_audio  # registers "audio"
from . import captions  # noqa: F401  (registers "captions")

__all__ = [
    "AUDIO_MELODIES", "DATASET_VERSION", "SHAPE_CLASSES", "available_parts", "digit_point_cloud",
    "embedded_audio_root", "embedded_captions_root", "embedded_image_root", "embedded_part_root",
    "embedded_points_root",
    "embedded_shapes_root", "embedded_video_root", "ensure_embedded_dataset", "load_digits_source",
    "render_digit", "render_digit_audio", "render_moving_digit", "shape_point_cloud", "shape_surface_points",
    "stratified_split", "verify_part",
]  # fmt: skip
