"""The ``omnimask`` command line.

    omnimask list                                  registered modalities, masking, decoders, objectives, recipes
    omnimask train RECIPE [--config F] [--resume] [key=value ...]   run recipes/RECIPE.py
    omnimask convert --from hf-vitmae SRC DST      convert a reference checkpoint
    omnimask data [--root DIR] [--parts PART ...]       build (or locate) the embedded dataset
    omnimask audio-stats LIST [--num-mel-bins N] ...    fbank mean/std of your audio (for processor.mean/std)
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main", "recipes_dir", "list_recipes"]


def recipes_dir() -> Path:
    """Where the recipe scripts live: ``$OMNIMASK_RECIPES``, else the source checkout's ``recipes/``."""
    env = os.environ.get("OMNIMASK_RECIPES")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for candidate in (here.parent / "_recipes", here.parents[2] / "recipes"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("cannot find the recipes folder; set OMNIMASK_RECIPES to the repository's recipes/ directory")


def list_recipes() -> dict[str, list[str]]:
    """``{recipe name: [config paths relative to recipes/]}``.

    A script's configs are the YAML files in the folder of its ``DEFAULT_CONFIG``
    (``configs/<modality>/``); fine-tuning configs (those with a ``finetune`` section) belong to
    ``finetune`` wherever they sit.
    """
    import re

    from .config import load_yaml

    root = recipes_dir()
    configs = sorted((root / "configs").rglob("*.yaml"))
    finetune = {p for p in configs if "finetune" in (load_yaml(p) or {})}
    out: dict[str, list[str]] = {}
    for script in sorted(root.glob("*.py")):
        if script.name.startswith("_"):
            continue
        if script.stem == "finetune":
            mine = finetune
        else:
            m = re.search(r'"configs"\s*/\s*"([\w-]+)"', script.read_text(encoding="utf-8"))
            folder = root / "configs" / (m.group(1) if m else script.stem.split("_")[0])
            mine = {p for p in configs if p.parent == folder} - finetune
        out[script.stem] = sorted(str(p.relative_to(root)) for p in mine)
    return out


def _cmd_list(_: argparse.Namespace) -> int:
    from .convert import CONVERTERS
    from .decoders import DECODERS
    from .masking import MASKING
    from .modalities import MODALITIES
    from .objectives import OBJECTIVES

    print("modalities:")
    for name in MODALITIES.names():
        print(f"  {name:<12} {MODALITIES.get(name).description}")
    for title, reg in (("masking strategies", MASKING), ("decoders", DECODERS), ("objectives", OBJECTIVES), ("converters (--from)", CONVERTERS)):
        print(f"{title}: {', '.join(reg.names())}")
    try:
        recipes = list_recipes()
    except FileNotFoundError as err:
        print(f"recipes: ({err})")
        return 0
    root = recipes_dir()
    print(f"recipes ({root}):")
    for name, configs in recipes.items():
        print(f"  {name}")
        for c in configs:
            path = root / c
            try:  # as a path that works from here; `--config` also accepts it relative to recipes/
                path = path.relative_to(Path.cwd())
            except ValueError:
                pass
            print(f"      --config {path}")
    return 0


def _cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    root = recipes_dir()
    script = root / f"{args.recipe}.py"
    if not script.is_file():
        raise SystemExit(f"error: unknown recipe {args.recipe!r}; available: {sorted(list_recipes())}")
    sys.argv = [str(script), *rest]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from .data import ensure_embedded_dataset

    root = ensure_embedded_dataset(args.root, parts=tuple(args.parts))
    print(root)
    return 0


def _cmd_audio_stats(args: argparse.Namespace) -> int:
    import json

    from .data.audio import compute_audio_stats

    stats = compute_audio_stats(
        args.source, sample_rate=args.sample_rate, num_mel_bins=args.num_mel_bins, target_length=args.target_length,
        root=args.root, max_clips=args.max_clips, on_error="skip" if args.skip_errors else "raise", progress=True,
    )
    text = json.dumps(stats, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    print(
        f"\nfor a recipe: model.modalities.audio.processor='{{mean: [{stats['mean']:.7g}], std: [{2 * stats['std']:.7g}], "
        f"sample_rate: {args.sample_rate}}}'   (std doubled: AudioMAE divides by 2 * std)",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from .convert.cli import add_convert_parser, run_convert

    parser = argparse.ArgumentParser(prog="omnimask", description="Masked-modeling pretraining for every modality.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered components and recipes")
    train = sub.add_parser("train", help="run a recipe: omnimask train RECIPE [--config F] [--resume] [key=value ...]", add_help=False)
    train.add_argument("recipe")
    add_convert_parser(sub)
    data = sub.add_parser("data", help="build (or locate) the embedded dataset and print its path")
    data.add_argument("--root", default=None, help="dataset root (default: $OMNIMASK_DATA_DIR or ~/.cache/omnimask/embedded)")
    data.add_argument("--parts", nargs="+", default=["image"], help="parts to build: image, video, points, shapes, audio, captions (default: image)")
    stats = sub.add_parser("audio-stats", help="filterbank mean/std of an audio list (AudioMAE JSON, <path> <label> list or folder)")
    stats.add_argument("source", help="a .json list, a <path> <label> list file, or a folder of audio files")
    stats.add_argument("--sample-rate", type=int, default=16000, help="clips are resampled to this rate (default 16000)")
    stats.add_argument("--num-mel-bins", type=int, default=128, help="mel bins (default 128)")
    stats.add_argument("--target-length", type=int, default=None, help="pad/cut to this many frames first, as training does")
    stats.add_argument("--root", default=None, help="folder relative paths resolve against (default: the list's folder)")
    stats.add_argument("--max-clips", type=int, default=None, help="use at most this many clips, evenly spaced")
    stats.add_argument("--skip-errors", action="store_true", help="leave unreadable clips out (they are listed) instead of stopping")
    stats.add_argument("--out", default=None, help="also write the JSON here")
    args, rest = parser.parse_known_args(argv)
    if args.command == "train":
        return _cmd_train(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "convert":
            return run_convert(args)
        if args.command == "audio-stats":
            return _cmd_audio_stats(args)
        return _cmd_data(args)
    except (KeyError, ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
