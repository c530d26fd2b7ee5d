"""``omnimask convert --from FORMAT SRC DST [--option KEY=VALUE ...]``: the command-line face of
:func:`omnimask.convert.convert`.

The main CLI calls :func:`add_convert_parser` with its sub-parser collection; the parsed arguments
carry ``func=run_convert``. ``--option`` is repeatable; values read as bool (``true``/``false``),
int, float, else string (``--option num_frames=16 --option norm_pix=false``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from safetensors import safe_open

from . import ConversionError, available_formats, convert

__all__ = ["add_convert_parser", "run_convert", "parse_option", "parse_option_value"]


def parse_option_value(raw: str) -> bool | int | float | str:
    """``true``/``false`` (any case) -> bool, else int, else float, else the string itself."""
    low = raw.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def parse_option(text: str) -> tuple[str, bool | int | float | str]:
    """``KEY=VALUE`` -> (key, typed value); dashes in the key read as underscores."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. num_frames=16), got {text!r}")
    return key, parse_option_value(raw.strip())


def add_convert_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``convert`` sub-command on an ``argparse`` sub-parser collection."""
    formats = available_formats()
    parser = subparsers.add_parser(
        "convert",
        help="convert another framework's checkpoint into an omnimask checkpoint",
        description="Convert a checkpoint directory into an omnimask checkpoint (config.json + model.safetensors).",
        epilog=(
            "exit status: 0 converted; 2 usage error (unknown format or option, a source that does not exist, "
            "a file for a format that converts directories); 3 the source cannot be read (empty, truncated, "
            "not a checkpoint, objects a weights-only load refuses); 4 DST cannot be written"
        ),
    )
    # ``from`` is a Python keyword, hence dest="fmt".
    parser.add_argument(
        "--from", dest="fmt", required=True, choices=formats, metavar="FORMAT", help=f"source format, one of {formats}"
    )
    parser.add_argument("src", type=Path, help="source checkpoint directory (or file, for formats stored as one file)")
    parser.add_argument("dst", type=Path, help="output directory for the omnimask checkpoint")
    parser.add_argument(
        "--option",
        dest="options",
        action="append",
        type=parse_option,
        default=[],
        metavar="KEY=VALUE",
        help="format-specific option, repeatable (e.g. --option num_frames=16 for --from videomae)",
    )
    parser.set_defaults(func=run_convert)
    return parser


def _parameter_count(checkpoint: Path) -> int:
    """Elements stored in ``model.safetensors`` (omnimask stores parameters only; tables are generated)."""
    total = 0
    with safe_open(str(checkpoint / "model.safetensors"), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            n = 1
            for s in f.get_slice(key).get_shape():
                n *= s
            total += n
    return total


def run_convert(args: argparse.Namespace) -> int:
    """Run the conversion and print a one-line summary; returns the exit status.

    Errors propagate (``ConversionError``, ``SourceReadError``...): ``omnimask.cli.main`` turns them
    into one ``error:`` line and the documented exit status.
    """
    options: dict[str, object] = {}
    for key, value in getattr(args, "options", None) or []:
        if key in options:
            raise ConversionError(f"--option {key} given twice ({options[key]!r} and {value!r})")
        options[key] = value
    dst = convert(args.fmt, args.src, args.dst, **options)
    print(f"converted {args.fmt}: {args.src} -> {dst} ({_parameter_count(dst):,} parameters)")
    return 0
