"""Checkpoint converters: other frameworks' checkpoints -> omnimask checkpoint directories.

A converter is a function ``(src: Path, dst_dir: Path, **options) -> Path`` registered in
:data:`CONVERTERS` under a format name (``"hf-vitmae"``, ``"hf-videomae"``, ``"videomae"``, ...). It
returns the directory it wrote, which :meth:`omnimask.OmniMaskForPreTraining.from_pretrained` (or
``OmniMaskModel``) then loads. ``src`` is usually a checkpoint directory; formats whose checkpoints
are single files (``videomae``) also accept the file.

A converter whose first parameter is named ``src_dir`` reads directories only (transformers'
``save_pretrained`` folders); :func:`convert` refuses a file for it, saying so.

Options are keyword arguments a converter declares in its signature (e.g. ``num_frames`` for
``videomae``, whose files hold no config); :func:`convert` rejects an option the format does not
declare before anything is read, naming it and the accepted ones.

Adding a format is one file: put a module in this package whose converter function is decorated
with ``@CONVERTERS.register("format-name")``. The registry imports every public module here on its
first lookup, so the new format is found by :func:`convert` and ``omnimask convert --from`` without
edits here; a third-party package adds one through the ``omnimask.converters`` entry point group.
"""

from __future__ import annotations

import difflib
import inspect
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from ..registry import Registry, discoverer

__all__ = [
    "CONVERTERS",
    "Converter",
    "ConversionError",
    "SourceReadError",
    "convert",
    "available_formats",
    "format_options",
]

#: The signature every converter has: source, destination directory (+ its options) -> destination.
Converter = Callable[..., Path]

#: Filled on first lookup: every public module of this package (``cli`` only wires argparse) and
#: every installed entry point of the group ``omnimask.converters``.
CONVERTERS: Registry[Converter] = Registry(
    "converter", discover=discoverer("omnimask.convert", "omnimask.converters", skip=("cli",))
)


class ConversionError(ValueError):
    """A source checkpoint cannot be converted faithfully; the message names the file, key or field."""


class SourceReadError(ConversionError):
    """A source file cannot be read at all (empty, truncated, not a checkpoint, or holding objects a
    weights-only load refuses); the message names the file. ``omnimask convert`` exits 3 on it."""


def available_formats() -> list[str]:
    """Registered format names, sorted."""
    return CONVERTERS.names()


def format_options(fmt: str) -> dict[str, Any]:
    """The options format ``fmt`` accepts, with their defaults (``inspect.Parameter.empty`` if required)."""
    params = list(inspect.signature(CONVERTERS.get(fmt)).parameters.values())[2:]  # after src, dst
    return {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _check_options(fmt: str, options: dict[str, Any]) -> None:
    params = inspect.signature(CONVERTERS.get(fmt)).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return  # the converter validates its own options
    accepted = format_options(fmt)
    bad = [k for k in options if k not in accepted]
    if bad:
        hints = "".join(
            f" Did you mean {close[0]!r} for {k!r}?"
            for k in bad
            if (close := difflib.get_close_matches(k, list(accepted), n=1))
        )
        takes = f"it accepts {sorted(accepted)}" if accepted else "it accepts no options"
        raise ConversionError(f"format {fmt!r} does not accept option(s) {bad}; {takes}.{hints}")


def convert(fmt: str, src: str | os.PathLike, dst: str | os.PathLike, **options: Any) -> Path:
    """Convert the checkpoint ``src`` (in format ``fmt``) into an omnimask checkpoint directory ``dst``.

    ``options`` are passed to the format's converter (see :func:`format_options`).

    Raises:
        KeyError: ``fmt`` is not registered (the message lists the registered formats).
        ConversionError: an option the format does not accept (named), a file given to a format
            that converts directories, or a source that cannot be converted faithfully.
        SourceReadError: a source file is empty, truncated or not a checkpoint (named).
    """
    converter = CONVERTERS.get(fmt)  # KeyError naming the registered formats
    _check_options(fmt, options)
    src_path, dst_path = Path(src), Path(dst)
    # Writing into the source would overwrite its config.json before anything is verified.
    if src_path.exists() and dst_path.exists() and src_path.resolve() == dst_path.resolve():
        raise ConversionError(f"destination {dst_path} is the source directory; choose another output directory")
    if src_path.is_file() and next(iter(inspect.signature(converter).parameters), None) == "src_dir":
        raise ConversionError(
            f"format {fmt!r} converts a checkpoint directory (config.json + model.safetensors or pytorch_model.bin), "
            f"but {src_path} is a file; pass the directory that holds it ({src_path.parent})"
        )
    try:
        return converter(src_path, dst_path, **options)
    except (SafetensorError, EOFError, pickle.UnpicklingError) as err:
        # A converter that reads weights itself (not through _common.read_checkpoint_file).
        from ._common import unreadable_source

        raise unreadable_source(src_path, err) from err
