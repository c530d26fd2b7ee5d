"""Where the recipe scripts and their configs are: the folder (a wheel's packaged copy or the
checkout's ``recipes/``) and the configs of each recipe."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["recipes_dir", "list_recipes"]


def recipes_dir() -> Path:
    """Where the recipe scripts live: ``$OMNIMASK_RECIPES``, else the copy packaged in the wheel
    (``omnimask/_recipes/``), else the source checkout's ``recipes/`` (an editable install).

    In a checkout ``src/omnimask/_recipes`` is a symlink to ``recipes/`` (that is how the build packages it,
    see pyproject.toml); resolving it keeps the paths ``omnimask list`` prints the repository's own.
    """
    env = os.environ.get("OMNIMASK_RECIPES")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for candidate in (here.parent / "_recipes", here.parents[2] / "recipes"):
        if candidate.is_dir():
            return candidate.resolve()
    raise FileNotFoundError(
        "cannot find the recipes folder; set OMNIMASK_RECIPES to the repository's recipes/ directory"
    )


def list_recipes() -> dict[str, list[str]]:
    """``{recipe name: [config paths relative to recipes/]}``.

    A script's configs are the YAML files in the folder of its ``DEFAULT_CONFIG``
    (``configs/<modality>/``); fine-tuning configs (those with a ``finetune`` section) belong to
    ``finetune`` wherever they sit.
    """
    import re

    from .run_config import load_yaml

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
