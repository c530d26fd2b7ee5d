"""What the pretraining and fine-tuning runners share: the data sections, the datasets, finding a
config file, and one command-line ``main`` with the documented exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..data.errors import DataReadError
from ..data.sources import SOURCES
from ..data.wrappers import RenamedKeys
from ..exits import EXIT_NON_FINITE, debug_enabled, error_line, exit_code
from ..modalities import MODALITIES
from ..model_config import OmniMaskConfig
from ..recipe_index import recipes_dir
from ..registry import ConfigError, check_keys
from ..run_config import from_dict
from ..training import NonFiniteLossError, cleanup

__all__ = ["data_configs", "build_dataset", "find_config", "runner_main"]


def data_configs(config: OmniMaskConfig, data: dict) -> dict[str, Any]:
    """Validate a recipe's ``data`` section once: ``{key: typed config}``.

    A key is one of the model's modalities (its section becomes the modality's ``data_config``
    dataclass) or a registered multi-modality source (``pairs``: its ``config`` dataclass).
    """
    check_keys(data, [*config.modalities, *SOURCES.names()], "data (keys are the model's modalities or data sources)")
    out: dict[str, Any] = {}
    for key, section in data.items():
        if key in config.modalities:
            mtype = config.modalities[key]["type"]
            spec = MODALITIES.get(mtype)
            if spec.data_config is None:
                raise ConfigError(f"data.{key}: modality type {mtype!r} has no dataset reader")
            out[key] = from_dict(spec.data_config, section or {}, f"data.{key}")
        else:
            out[key] = from_dict(SOURCES.get(key).config, section or {}, f"data.{key}")
    return out


def build_dataset(config: OmniMaskConfig, data: dict[str, Any], key: str, split: str) -> Any:
    """Modality ``key``'s dataset for ``split`` from its typed data config (``data_configs``; a
    plain mapping is validated here); an absent section means the defaults (the embedded data)."""
    m = config.modalities[key]
    spec = MODALITIES.get(m["type"])
    if spec.build_dataset is None or spec.data_config is None:
        raise ConfigError(f"modality type {m['type']!r} has no dataset reader")
    cfg = data.get(key)
    if cfg is None or isinstance(cfg, dict):
        cfg = from_dict(spec.data_config, cfg or {}, f"data.{key}")
    ds = spec.build_dataset(cfg, m, split)
    return ds if key == m["type"] else RenamedKeys(ds, {m["type"]: key})


def find_config(path: str | Path) -> Path:
    """A config path as given, or relative to the recipes folder (as ``omnimask list`` prints them)."""
    p = Path(path)
    if p.is_file() or p.is_absolute():
        return p
    try:
        alt = recipes_dir() / p
    except FileNotFoundError:
        return p
    return alt if alt.is_file() else p


def runner_main(
    argv: Sequence[str] | None,
    *,
    description: str,
    run: Callable[[Path, list[str], bool | str], Any],
    default_config: str | Path | None = None,
    prog: str | None = None,
    resume_from: bool = True,
) -> int:
    """Parse ``[--config F] [--resume] [--resume-from DIR] [key=value ...]`` and call
    ``run(config path, overrides, resume)``.

    Exit codes (:func:`omnimask.exits.exit_code`, docs/cli.md): 0 done; 1 training stopped on a
    non-finite loss; 2 a configuration error; 3 a data error (an unreadable sample file); 4 a
    checkpoint or output that cannot be written or read (disk full). Each prints one line naming the
    key, file or step; ``OMNIMASK_DEBUG=1`` (``omnimask --debug``) raises with the traceback instead.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", default=default_config, required=default_config is None, help="recipe YAML")
    parser.add_argument(
        "--resume", action="store_true", help="continue exactly from the latest checkpoint in train.output_dir"
    )
    if resume_from:
        parser.add_argument(
            "--resume-from", default=None, metavar="DIR", help="continue from this checkpoint directory"
        )
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=5 optim.base_lr=1e-3")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    resume = getattr(args, "resume_from", None) or args.resume
    try:
        run(find_config(args.config), list(args.overrides), resume)
    except NonFiniteLossError as err:
        print(f"training stopped: {error_line(err)}", file=sys.stderr)
        return EXIT_NON_FINITE
    except Exception as err:
        code = exit_code(err)
        if code is None or debug_enabled():  # a bug, or a traceback asked for
            raise
        print(f"error: {error_line(err)}{_hint(err)}", file=sys.stderr)
        return code
    finally:
        cleanup()  # leave a torchrun process group before exit (a live one can abort the exit)
    return 0


def _hint(err: BaseException) -> str:
    """What to do about an unreadable sample, unless the skip policy already ran and gave up."""
    if isinstance(err, DataReadError) and not err.after_skipping:
        return "; set data.<modality>.on_error=skip to skip unreadable files and count them"
    return ""
