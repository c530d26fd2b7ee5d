"""Checkpoint converters: other frameworks' checkpoints -> omnimask checkpoint directories.

A converter is a function ``(src_dir: Path, dst_dir: Path) -> Path`` registered in
:data:`CONVERTERS` under a format name (``"hf-vitmae"``, ...). It returns the directory it wrote,
which :meth:`omnimask.OmniMaskForPreTraining.from_pretrained` (or ``OmniMaskModel``) then loads.

Adding a format is one file: put a module in this package whose converter function is decorated
with ``@CONVERTERS.register("format-name")``. Every public module here is imported when the package
is, so the new format is found by :func:`convert` and ``omnimask convert --from`` without edits here.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path
from typing import Callable

from ..registry import Registry

__all__ = ["CONVERTERS", "Converter", "ConversionError", "convert", "available_formats"]

#: The signature every converter has: source directory, destination directory -> destination.
Converter = Callable[[Path, Path], Path]

CONVERTERS: Registry[Converter] = Registry("converter")


class ConversionError(ValueError):
    """A source checkpoint cannot be converted faithfully; the message names the file, key or field."""


def available_formats() -> list[str]:
    """Registered format names, sorted."""
    return CONVERTERS.names()


def convert(fmt: str, src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Convert the checkpoint directory ``src`` (in format ``fmt``) into an omnimask checkpoint at ``dst``.

    Raises:
        KeyError: ``fmt`` is not registered (the message lists the registered formats).
    """
    converter = CONVERTERS.get(fmt)  # KeyError naming the registered formats
    src_path, dst_path = Path(src), Path(dst)
    # Writing into the source would overwrite its config.json before anything is verified.
    if src_path.exists() and dst_path.exists() and src_path.resolve() == dst_path.resolve():
        raise ConversionError(f"destination {dst_path} is the source directory; choose another output directory")
    return converter(src_path, dst_path)


def _discover() -> None:
    """Import every converter module of this package so that their registrations run."""
    for info in pkgutil.iter_modules(__path__):
        # ``cli`` only wires argparse; private modules are helpers, not formats.
        if info.name == "cli" or info.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{info.name}")


_discover()
