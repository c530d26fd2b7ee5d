"""The ``omnimask`` command line.

omnimask list                                  modalities, sources, masking, decoders, objectives, converters, recipes
omnimask train RECIPE [--config F] [--resume] [key=value ...]   run recipes/RECIPE.py
omnimask convert --from FORMAT SRC DST         convert a reference checkpoint (omnimask list names the formats)
omnimask data [--root DIR] [--parts PART ...]  build (or locate) the embedded dataset
omnimask eval CHECKPOINT [--data RECIPE] ...   kNN, probes, few-label fine-tuning, retrieval (docs/evaluation.md)
omnimask COMMAND ...                           commands that modality packages add, e.g. audio-stats

Exit codes (docs/cli.md): 0 done; 1 training stopped on a non-finite loss; 2 a usage or configuration
error; 3 a data error (an input that cannot be read); 4 an I/O error (a checkpoint or output that
cannot be written or read); 130 / 143 training interrupted by SIGINT / SIGTERM (its step was saved).
Errors print as one ``error:`` line naming the file, key or step; ``omnimask --debug ...`` (or
``OMNIMASK_DEBUG=1``) raises them with the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "main",
    "recipes_dir",
    "list_recipes",
    "exit_code",
    "error_line",
    "debug_enabled",
    "EXIT_OK",
    "EXIT_NON_FINITE",
    "EXIT_USAGE",
    "EXIT_DATA",
    "EXIT_IO",
]

from .exits import (
    EXIT_DATA,
    EXIT_IO,
    EXIT_NON_FINITE,
    EXIT_OK,
    EXIT_USAGE,
    debug_enabled,
    error_line,
    exit_code,
)
from .recipe_index import list_recipes, recipes_dir


def _cmd_list(_: argparse.Namespace) -> int:
    from .commands import COMMANDS
    from .convert import CONVERTERS
    from .data.embedded import available_parts
    from .data.sources import SOURCES
    from .decoders import DECODERS
    from .masking import MASKING
    from .modalities import MODALITIES
    from .objectives import OBJECTIVES

    print("modalities:")
    for name in MODALITIES.names():
        print(f"  {name:<12} {MODALITIES.get(name).description}")
    print("data sources (data.<name>, several modalities per sample):")
    for name in SOURCES.names():
        print(f"  {name:<12} {SOURCES.get(name).description}")
    registries = (
        ("masking strategies", MASKING),
        ("decoders", DECODERS),
        ("objectives", OBJECTIVES),
        ("converters (--from)", CONVERTERS),
        ("commands", COMMANDS),
    )
    for title, reg in registries:
        print(f"{title}: {', '.join(reg.names())}")
    print(f"embedded dataset parts: {', '.join(available_parts())}")
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
            # as a path that works from here; `--config` also accepts it relative to recipes/
            with contextlib.suppress(ValueError):
                path = path.relative_to(Path.cwd())
            print(f"      --config {path}")
    return 0


def _cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    root = recipes_dir()
    script = root / f"{args.recipe}.py"
    if not script.is_file():
        raise ValueError(f"unknown recipe {args.recipe!r}; available: {sorted(list_recipes())}")
    argv, sys.argv = sys.argv, [str(script), *rest]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        if isinstance(exit_.code, str):  # sys.exit("message"): what the interpreter would print
            print(exit_.code, file=sys.stderr)
            return 1
        return int(exit_.code or 0)
    finally:
        sys.argv = argv
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from .data import ensure_embedded_dataset

    root = ensure_embedded_dataset(args.root, parts=tuple(args.parts))
    print(root)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from .commands import COMMANDS
    from .convert.cli import add_convert_parser

    parser = argparse.ArgumentParser(
        prog="omnimask",
        description="Masked-modeling pretraining for every modality.",
        epilog="exit codes: 0 done, 1 non-finite loss, 2 usage/config error, 3 data error, 4 I/O error, "
        "130/143 interrupted by SIGINT/SIGTERM (a checkpoint of the step was saved)",
    )
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered components and recipes")
    train = sub.add_parser(
        "train", help="run a recipe: omnimask train RECIPE [--config F] [--resume] [key=value ...]", add_help=False
    )
    train.add_argument("recipe")
    add_convert_parser(sub)
    data = sub.add_parser("data", help="build (or locate) the embedded dataset and print its path")
    data.add_argument(
        "--root", default=None, help="dataset root (default: $OMNIMASK_DATA_DIR or ~/.cache/omnimask/embedded)"
    )
    data.add_argument(
        "--parts", nargs="+", default=["image"], help="parts to build (omnimask list names them; default: image)"
    )
    export = sub.add_parser(
        "export", help="write the whole model of a training checkpoint (e.g. an FSDP run's shards) as save_pretrained"
    )
    export.add_argument("checkpoint", help="a checkpoint dir, or an output dir (its latest checkpoint)")
    export.add_argument("destination", help="folder for config.json + model.safetensors")
    sub.add_parser(
        "eval",
        help="kNN, probes, few-label fine-tuning or retrieval of a checkpoint: omnimask eval CHECKPOINT [options] "
        "(omnimask eval --help, docs/evaluation.md)",
        add_help=False,
    )
    commands = {}
    for name in COMMANDS.names():  # added by modality packages (audio-stats) and plugins
        command = commands[name] = COMMANDS.get(name)
        command.add_arguments(sub.add_parser(name, help=command.help))
    for action in sub.choices.values():  # `omnimask convert ... --debug` works too
        action.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    args, rest = parser.parse_known_args(argv)
    if args.command not in ("train", "eval") and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    debug = args.debug or debug_enabled()
    saved = os.environ.get("OMNIMASK_DEBUG")
    if debug:  # the recipe runners read it
        os.environ["OMNIMASK_DEBUG"] = "1"
    try:
        return _run_command(args, rest, commands)
    except Exception as err:
        code = exit_code(err)
        if debug or code is None:  # a traceback when asked for, or for a bug
            raise
        print(f"error: {error_line(err)}", file=sys.stderr)
        return code
    finally:
        if debug and saved is None:
            os.environ.pop("OMNIMASK_DEBUG", None)
        elif debug:
            os.environ["OMNIMASK_DEBUG"] = saved  # type: ignore[assignment]


_DEBUG_HELP = "show the full traceback of an error instead of one line (also: OMNIMASK_DEBUG=1)"


def _run_command(args: argparse.Namespace, rest: list[str], commands: dict) -> int:
    from .convert.cli import run_convert

    if args.command == "train":
        return _cmd_train(args, rest)
    if args.command == "list":
        return _cmd_list(args)
    if args.command == "convert":
        return run_convert(args)
    if args.command == "data":
        return _cmd_data(args)
    if args.command == "export":
        from .models.export import export_checkpoint

        out = export_checkpoint(args.checkpoint, args.destination)
        print(f"wrote {out} (load it with from_pretrained or AutoModel)")
        return 0
    if args.command == "eval":
        from .runners.evaluate import main as eval_main

        return eval_main(rest)
    return commands[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
