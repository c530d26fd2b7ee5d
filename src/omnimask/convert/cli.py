"""``omnimask convert --from FORMAT SRC DST``: the command-line face of :func:`omnimask.convert.convert`.

The main CLI calls :func:`add_convert_parser` with its sub-parser collection; the parsed arguments
carry ``func=run_convert``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from safetensors import safe_open

from . import available_formats, convert

__all__ = ["add_convert_parser", "run_convert"]


def add_convert_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``convert`` sub-command on an ``argparse`` sub-parser collection."""
    formats = available_formats()
    parser = subparsers.add_parser(
        "convert",
        help="convert another framework's checkpoint into an omnimask checkpoint",
        description="Convert a checkpoint directory into an omnimask checkpoint (config.json + model.safetensors).",
    )
    # ``from`` is a Python keyword, hence dest="fmt".
    parser.add_argument("--from", dest="fmt", required=True, choices=formats, metavar="FORMAT", help=f"source format, one of {formats}")
    parser.add_argument("src", type=Path, help="source checkpoint directory")
    parser.add_argument("dst", type=Path, help="output directory for the omnimask checkpoint")
    parser.set_defaults(func=run_convert)
    return parser


def _parameter_count(checkpoint: Path) -> int:
    """Elements stored in ``model.safetensors`` (omnimask stores parameters only; tables are generated)."""
    total = 0
    with safe_open(str(checkpoint / "model.safetensors"), framework="pt") as f:
        for key in f.keys():
            n = 1
            for s in f.get_slice(key).get_shape():
                n *= s
            total += n
    return total


def run_convert(args: argparse.Namespace) -> int:
    """Run the conversion and print a one-line summary; returns the exit status."""
    dst = convert(args.fmt, args.src, args.dst)
    print(f"converted {args.fmt}: {args.src} -> {dst} ({_parameter_count(dst):,} parameters)")
    return 0
