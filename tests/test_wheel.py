"""The built wheel works alone: installed (not editable) into a fresh virtual environment, with no
source tree on the path, it lists its recipes, loads the shipped caption tokenizer, builds the
embedded dataset and trains ``image_mae`` from the packaged configs.

The recipes and the tokenizer reach the wheel through the symlinks ``src/omnimask/_recipes`` and
``src/omnimask/_tokenizers`` (see pyproject.toml); a build that lost them fails here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# top-level entries of the checkout the build does not need (.venv is gigabytes; build/ could hold stale files)
_SKIP_TOP = {"build", "dist", "runs", "outputs"}


def _copy_ignore(folder: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    if Path(folder) == REPO:
        skip |= {n for n in names if n.startswith(".") or n in _SKIP_TOP}
    return skip


def _builds_offline() -> bool:
    """Whether this environment can build the wheel without build isolation (no network): setuptools
    70.1+ alone, or 68+ with the ``wheel`` package (the ``test`` extra installs setuptools)."""
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(x) for x in re.findall(r"\d+", setuptools.__version__)[:2])
    return version >= (70, 1) or (version >= (68, 0) and importlib.util.find_spec("wheel") is not None)


def _pip_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(x) for x in re.findall(r"\d+", version("pip"))[:2])


def _run(cmd: list[str], **kwargs) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; returns its ``bin`` (``Scripts``) folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a copy, so the build's build/ and *.egg-info stay out of the checkout; symlinks stay links.
    tree = tmp / "tree"
    shutil.copytree(REPO, tree, symlinks=True, ignore=_copy_ignore)
    dist = tmp / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", str(dist)]
    if _builds_offline():
        build.append("--no-build-isolation")  # else pip fetches setuptools from the index into an isolated env
    _run([*build, str(tree)])
    (wheel,) = dist.glob("omnimask-*.whl")

    venv = tmp / "venv"
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    install = ["install", "--no-deps", "--no-index", "--disable-pip-version-check", "-q", str(wheel)]
    if _pip_version() >= (22, 3):  # this pip installs into the venv (--python): no pip of its own to set up
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        _run([sys.executable, "-m", "pip", "--python", str(python), *install])
    else:
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(python), "-m", "pip", *install])
    # The dependencies (torch alone is several GB) are not installed again: a .pth file puts this
    # environment's site-packages after the new venv's own. Paths in a .pth are only appended to
    # sys.path (the .pth files inside them are not run), so this environment's editable install of
    # omnimask (its .pth pointing at src/) stays out; the tests below check the import comes from the venv.
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    host = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (purelib / "_omnimask_test_host_deps.pth").write_text("".join(f"{p}\n" for p in host), encoding="utf-8")
    return bindir


@pytest.fixture()
def start_installed(wheel_venv, tmp_path):
    """Start a command of the venv with an empty working directory and the data under ``tmp_path``;
    calling what it returns waits for it and gives its stdout (asserting it succeeded)."""
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OMNIMASK_RECIPES", "PYTHONHOME")}
    env["OMNIMASK_DATA_DIR"] = str(tmp_path / "data")
    exe = ".exe" if os.name == "nt" else ""
    started: list[subprocess.Popen] = []

    def start(program: str, *args: str):
        cmd = [str(wheel_venv / f"{program}{exe}"), *args]
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)

        def result() -> str:
            try:
                out, err = proc.communicate(timeout=600)
            finally:
                proc.kill()
            assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{out}\n{err}"
            return out

        return result

    yield start
    for proc in started:  # a failed assertion leaves the others running
        proc.kill()
        proc.communicate()


def _inside(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def test_installed_wheel_runs_alone(wheel_venv, start_installed, tmp_path):
    venv = wheel_venv.parent
    # three independent commands at once (each spends seconds importing torch)
    code = (
        "import omnimask; from omnimask.modalities.text import CAPTION_TOKENIZER_FILE, TextTokenizer; "
        "tok = TextTokenizer.default(); ids = tok.encode('a handwritten seven'); "
        "print(omnimask.__file__); print(CAPTION_TOKENIZER_FILE); print(len(ids)); print(tok.decode(ids))"
    )
    tokenizer = start_installed("python", "-c", code)
    listing = start_installed("omnimask", "list")
    data = start_installed("omnimask", "data", "--parts", "image")

    # imports come from the wheel, and the caption tokenizer is the packaged copy
    module, tokenizer_file, n_ids, decoded = tokenizer().splitlines()
    assert _inside(module, venv) and not _inside(module, REPO), module
    assert _inside(tokenizer_file, venv) and tokenizer_file.endswith("omnimask_captions.model"), tokenizer_file
    assert int(n_ids) > 0 and decoded == "a handwritten seven"

    # the recipes are the packaged copy
    listing = listing()
    root = re.search(r"^recipes \((.+)\):$", listing, re.M)
    assert root and _inside(root.group(1), venv) and not _inside(root.group(1), REPO), listing
    recipes = set(re.findall(r"^  (\w+)$", listing, re.M))
    assert {"image_mae", "video_mae", "audio_mae", "point_mae", "m3ae", "finetune"} <= recipes, listing
    (config,) = [c for c in re.findall(r"--config (\S+)", listing) if c.endswith("mae_vit_test.yaml")]
    assert _inside(config, venv) and Path(config).is_file(), config

    data = Path(data().strip().splitlines()[-1])
    assert _inside(data, tmp_path / "data"), data

    out = tmp_path / "run"
    train = start_installed(
        "omnimask", "train", "image_mae", "--config", config,
        "train.max_steps=2", f"train.output_dir={out}", "eval.enabled=false",
    )  # fmt: skip
    train()
    assert sorted((out / "checkpoints").glob("step_*")), sorted(out.rglob("*"))
