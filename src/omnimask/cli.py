"""The ``omnimask`` command line.

    omnimask list                                  registered modalities, masking, decoders, objectives, recipes
    omnimask train RECIPE [--config F] [--resume] [key=value ...]   run recipes/RECIPE.py
    omnimask convert --from hf-vitmae SRC DST      convert a reference checkpoint
    omnimask data [--root DIR] [--parts PART ...]       build (or locate) the embedded dataset
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
    """``{recipe name: [config paths relative to recipes/]}``; configs sit under ``configs/<modality>/``."""
    root = recipes_dir()
    out: dict[str, list[str]] = {}
    for script in sorted(root.glob("*.py")):
        if script.name.startswith("_"):
            continue
        modality = script.stem.split("_")[0]
        out[script.stem] = sorted(str(p.relative_to(root)) for p in (root / "configs" / modality).glob("*.yaml"))
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
    data.add_argument("--parts", nargs="+", default=["image"], help="parts to build: image, video, points, shapes (default: image)")
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
        return _cmd_data(args)
    except (KeyError, ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
