"""A bad-input matrix for the I/O boundaries: checkpoints (save, resume, ``from_pretrained``),
``omnimask convert`` sources and the command line's exit codes.

Every row of :data:`MATRIX` is ``(id, make(tmp_path), action, expected)``. ``make`` writes its files
into ``tmp_path`` (no binary fixtures) and returns a dict; ``action(made, env)`` runs the code under
test (CLI rows call ``omnimask.cli.main`` in-process and capture stderr). ``expected`` is one class:

* :class:`Ok`: the action returns and ``check(result, made, warnings)`` finds nothing wrong;
* :class:`Error`: an API call raises ``exc``, or a CLI call exits with ``code`` after printing one
  line and no traceback; the message names every string in ``names`` (file, key, step) and none
  of ``absent`` (advice that would be wrong); ``after(made)`` checks what must survive (checkpoints);
* :class:`Skip`: a known problem in code this suite's owner does not edit; reported, not run.

:func:`judge` classifies one run as ``correct``, ``traceback`` (an unexpected exception escaped or a
traceback was printed), ``misleading`` (wrong exit code or error type, a message that does not name
the culprit or says something false) or ``wrong`` (a wrong result, a lost checkpoint).
:func:`matrix_totals` counts the rows per expected class; ``python tests/test_bad_inputs_io.py``
runs them all and prints the verdict totals.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import logging
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from omnimask import OmniMaskConfig, OmniMaskModel
from omnimask.cli import main as cli_main
from omnimask.convert import ConversionError
from omnimask.data.errors import DataReadError, read_with_policy
from omnimask.runners.common import runner_main
from omnimask.training import CheckpointError, NonFiniteLossError, load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "recipes/configs/image/mae_vit_test.yaml"
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

# ---------------------------------------------------------------- outcome classes


@dataclass(frozen=True)
class Ok:
    check: Callable[[Any, dict, str], str | None]  # (result, made, warnings) -> what is wrong, or None


@dataclass(frozen=True)
class Error:
    exc: type[BaseException] | None = None  # an API call raises this
    code: int | None = None  # a CLI call exits with this
    names: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    after: Callable[[dict], str | None] | None = None


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass
class Env:
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    stderr: Callable[[], str]  # what was written to stderr since the last call


@dataclass
class CliRun:
    code: int
    err: str = ""


@dataclass(frozen=True)
class Row:
    id: str
    make: Callable[[Path], dict]
    action: Callable[[dict, Env], Any]
    expected: Ok | Error | Skip = field(default_factory=lambda: Skip("no expectation"))


# ---------------------------------------------------------------- writers


def _cut(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _tiny_model() -> OmniMaskModel:
    image = {
        "tokenizer": {"image_size": 16, "patch_size": 8, "in_chans": 3},
        "decoder": {"dim": 8, "depth": 1, "num_heads": 2},
    }
    return OmniMaskModel(OmniMaskConfig(encoder={"dim": 16, "depth": 1, "num_heads": 2}, modalities={"image": image}))


def _saved_model(cut: float | None = None) -> Callable[[Path], dict]:
    def make(tmp: Path) -> dict:
        model = _tiny_model()
        model.save_pretrained(tmp / "model")
        if cut is not None:
            _cut(tmp / "model" / "model.safetensors", cut)
        return {"dir": tmp / "model", "state": model.state_dict()}

    return make


def _file(name: str, data: bytes | Callable[[Path], None]) -> Callable[[Path], dict]:
    def make(tmp: Path) -> dict:
        path = tmp / name
        data(path) if callable(data) else path.write_bytes(data)
        return {"src": path, "dst": tmp / "out"}

    return make


def _torch_file(obj: Any, cut: float | None = None) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        torch.save(obj, path)
        if cut is not None:
            _cut(path, cut)

    return write


def _hf_dir(weights: bytes) -> Callable[[Path], dict]:
    def make(tmp: Path) -> dict:
        (tmp / "hf").mkdir()
        (tmp / "hf" / "config.json").write_text('{"model_type": "vit_mae"}')
        (tmp / "hf" / "model.safetensors").write_bytes(weights)
        return {"src": tmp / "hf", "dst": tmp / "out"}

    return make


def _checkpoints(
    steps: tuple[int, ...] = (1, 2), damage: Callable[[Path], None] | None = None
) -> Callable[[Path], dict]:
    """Checkpoints of a Linear model whose weights are all ``step``; ``damage`` gets the newest."""

    def make(tmp: Path) -> dict:
        model = nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model(torch.ones(1, 4)).sum().backward()
        opt.step()
        for step in steps:
            with torch.no_grad():
                for p in model.parameters():
                    p.fill_(float(step))
            save_checkpoint(tmp / "run", model=model, optimizer=opt, step=step, epoch=0, step_in_epoch=step, keep=0)
        newest = tmp / "run" / "checkpoints" / f"step_{steps[-1]:08d}"
        if damage is not None:
            damage(newest)
        return {"out": tmp / "run", "newest": newest, "model": model, "opt": opt}

    return make


def _images(tmp: Path, good: int, bad: int) -> Path:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp / "images" / c).mkdir(parents=True)
        for i in range(good):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp / "images" / c / f"{i}.png")
        for i in range(bad):
            (tmp / "images" / c / f"bad_{i}.png").write_bytes(b"not a png")
    return tmp / "images"


def _train_setup(good: int = 8, bad: int = 0) -> Callable[[Path], dict]:
    return lambda tmp: {"root": _images(tmp, good, bad), "out": tmp / "run"}


def _summary(made: dict) -> dict:
    path = made["out"] / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _tiny_pretraining_model() -> Any:
    from omnimask import OmniMaskForPreTraining

    image = {"tokenizer": {"image_size": 16, "patch_size": 4}, "decoder": {"dim": 16, "depth": 1, "num_heads": 2}}
    return OmniMaskForPreTraining(
        OmniMaskConfig(encoder={"dim": 32, "depth": 1, "num_heads": 2}, modalities={"image": image})
    )


def _nan_batch() -> torch.Tensor:
    x = torch.randn(3, 3, 16, 16)
    x[1, 0, 2, 2] = float("nan")
    return x


# ---------------------------------------------------------------- actions


def _cli(argv: Callable[[dict], list[str]]) -> Callable[[dict, Env], CliRun]:
    """Run ``omnimask ARGV`` in-process; a SystemExit is what the console script would turn it into."""

    def action(made: dict, env: Env) -> CliRun:
        env.stderr()
        try:
            code = cli_main([str(a) for a in argv(made)])
        except SystemExit as exit_:
            text = exit_.code if isinstance(exit_.code, str) else ""
            return CliRun(1 if text else int(exit_.code or 0), env.stderr() + text)
        return CliRun(code, env.stderr())

    return action


def _train(*extra: str, good: bool = True) -> Callable[[dict, Env], CliRun]:
    def argv(made: dict) -> list[str]:
        base = ["train", "image_mae", "--config", TEST_CFG, f"train.output_dir={made['out']}"]
        return [*base, f"data.image.root={made['root']}", "train.batch_size=4", "visualize_every=0", *extra]

    return _cli(argv)


def _runner(raise_: Callable[[Path], None]) -> Callable[[dict, Env], CliRun]:
    """``runner_main`` (what ``omnimask train`` runs) around a ``run`` that fails with a real error."""

    def action(made: dict, env: Env) -> CliRun:
        env.stderr()
        code = runner_main([], description="test", default_config=TEST_CFG, run=lambda *_: raise_(made["tmp"]))
        return CliRun(code, env.stderr())

    return action


def _give_up(tmp: Path) -> None:
    def read(path: str) -> None:
        raise DataReadError(f"cannot read points {path}: not a point file")

    items = [(str(tmp / f"{i}.npy"), 0) for i in range(3)]
    kw = {"on_error": "skip", "max_skips": 10, "skipped": [], "error": DataReadError, "what": "point cloud"}
    read_with_policy(items, 0, read, logger=logging.getLogger("omnimask.test"), **kw)  # type: ignore[arg-type]


def _fail_save(env: Env, target: str, when: str = "") -> None:
    """Make ``target`` (``module.attr``) raise ENOSPC for paths containing ``when``."""
    module, _, attr = target.rpartition(".")
    real = getattr(sys.modules[module], attr)

    def fake(*args: Any, **kw: Any) -> Any:
        if when in " ".join(str(a) for a in args[:2]):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[1]))
        return real(*args, **kw)

    env.monkeypatch.setattr(sys.modules[module], attr, fake)


def _save_step(target: str, model: Callable[[], nn.Module] = lambda: nn.Linear(4, 2)) -> Callable[[dict, Env], Any]:
    def action(made: dict, env: Env) -> Any:
        _fail_save(env, target)
        return save_checkpoint(made["out"], model=model(), optimizer=None, step=3, epoch=0, step_in_epoch=3, keep=1)

    return action


def _resume(made: dict, env: Env) -> dict:
    """What ``Trainer._resume`` does: load the output dir into a fresh model and optimizer."""
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    state = load_checkpoint(made["out"], model, opt)
    state["weight"] = float(model.weight.detach().flatten()[0])
    return state


# ---------------------------------------------------------------- checks


def _resumed(step: int, skipped: str) -> Ok:
    def check(state: dict, made: dict, warnings: str) -> str | None:
        if state["step"] != step or state["weight"] != float(step):
            return f"resumed step {state['step']} with weight {state['weight']}, expected step {step}"
        if skipped not in warnings:
            return f"no warning naming {skipped!r} (warnings: {warnings!r})"
        return None

    return Ok(check)


def _survives(*names: str, latest: str | None = None) -> Callable[[dict], str | None]:
    def after(made: dict) -> str | None:
        root = made["out"] / "checkpoints"
        lost = [n for n in names if not (root / n / "training_state.pt").is_file()]
        temps = [p.name for p in root.iterdir() if p.name.startswith((".tmp_", ".latest."))]
        pointed = (root / "latest").read_text().strip() if (root / "latest").is_file() else None
        if lost or temps or (latest and pointed != latest):
            return f"lost {lost}, temp leftovers {temps}, latest -> {pointed}"
        return None

    return after


def _same_weights(model: nn.Module, made: dict, warnings: str) -> str | None:
    got = model.state_dict()
    return None if all(torch.equal(got[k], v) for k, v in made["state"].items()) else "weights differ"


def _stale(tmp: Path) -> dict:
    made = _checkpoints((1,))(tmp)
    root = made["out"] / "checkpoints"
    (root / ".tmp_step_00000002_k1ll3d00").mkdir()
    (root / ".tmp_step_00000002_k1ll3d00" / "training_state.pt").write_bytes(b"half")
    (root / ".latest.4242.tmp").write_text("step_00000002")
    (root / ".tmp_user_notes").mkdir()  # not omnimask's pattern: left alone
    return made


def _stale_check(path: Path, made: dict, warnings: str) -> str | None:
    names = sorted(p.name for p in path.parent.iterdir())
    if names != [".tmp_user_notes", "latest", "step_00000001", "step_00000002"]:
        return f"checkpoints/ holds {names}"
    return None


def _trash(tmp: Path) -> dict:
    """A re-save of step 1 killed between its two renames: the old copy sits in the trash folder."""
    made = _checkpoints((1,))(tmp)
    root = made["out"] / "checkpoints"
    (root / ".old_step_00000001_d34dd34d").mkdir()
    os.replace(root / "step_00000001", root / ".old_step_00000001_d34dd34d" / "step_00000001")
    return made


def _trash_check(path: Path, made: dict, warnings: str) -> str | None:
    return _survives("step_00000001", "step_00000002", latest="step_00000002")(made)


def _stat(name: str) -> Callable[[Path], None]:
    return lambda ckpt: (ckpt / name).unlink()


# ---------------------------------------------------------------- the matrix

_NS = {"base_model": {"w": torch.zeros(2)}, "args": argparse.Namespace(lr=1)}
_CONVERT = ["convert", "--from"]


def _convert(fmt: str) -> Callable[[dict, Env], CliRun]:
    return _cli(lambda m: [*_CONVERT, fmt, m["src"], m["dst"]])


# fmt: off
MATRIX: list[Row] = [
    # 1. from_pretrained on damaged weights
    Row("hub-roundtrip", _saved_model(), lambda m, e: OmniMaskModel.from_pretrained(m["dir"]), Ok(_same_weights)),
    Row("hub-truncated-weights", _saved_model(0.5), lambda m, e: OmniMaskModel.from_pretrained(m["dir"]),
        Error(CheckpointError, names=("model.safetensors", "truncated"))),
    Row("hub-empty-weights", _saved_model(0.0), lambda m, e: OmniMaskModel.from_pretrained(m["dir"]),
        Error(CheckpointError, names=("model.safetensors", "empty"))),
    Row("hub-file-not-dir", _saved_model(), lambda m, e: OmniMaskModel.from_pretrained(m["dir"] / "config.json"),
        Error(NotADirectoryError, names=("config.json", "directory"))),
    # 2. omnimask convert on sources that are not checkpoints
    Row("convert-empty-pth", _file("empty.pth", b""), _convert("videomae"), Error(code=3, names=("empty.pth", "empty"))),
    Row("convert-text-pth", _file("notes.pth", b"hello, this is text\n"), _convert("point-mae"),
        Error(code=3, names=("notes.pth", "not a PyTorch checkpoint"))),
    Row("convert-random-pth", _file("random.pth", np.random.default_rng(0).bytes(4096)), _convert("videomae"),
        Error(code=3, names=("random.pth", "not a PyTorch checkpoint"), absent=("weights-only",))),
    Row("convert-truncated-pth", _file("cut.pth", _torch_file({"model": {"w": torch.zeros(4096)}}, 0.5)),
        _convert("videomae"), Error(code=3, names=("cut.pth", "truncated"))),
    Row("convert-garbage-safetensors", _file("w.safetensors", np.random.default_rng(1).bytes(4096)),
        _convert("audiomae"), Error(code=3, names=("w.safetensors", "safetensors"))),
    Row("convert-empty-safetensors", _file("w.safetensors", b""), _convert("point-mae"),
        Error(code=3, names=("w.safetensors", "empty"))),
    Row("convert-refused-objects", _file("ns.pth", _torch_file(_NS)), _convert("point-mae"),
        Error(code=3, names=("ns.pth", "weights-only", "argparse.Namespace"))),
    Row("convert-hf-dir-corrupt-weights", _hf_dir(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}"), _convert("hf-vitmae"),
        Error(code=3, names=("model.safetensors", "corrupt"))),
    Row("convert-hf-given-a-file", _hf_dir(b""), _cli(lambda m: [*_CONVERT, "hf-vitmae", m["src"] / "config.json", m["dst"]]),
        Error(code=2, names=("config.json", "directory", "is a file"), absent=("does not exist",))),
    Row("convert-missing-source", _file("here.pth", b""), _cli(lambda m: [*_CONVERT, "videomae", m["src"].parent / "nowhere.pth", m["dst"]]),
        Error(code=2, names=("nowhere.pth", "does not exist"))),
    Row("convert-unknown-option", _file("here.pth", b""), _cli(lambda m: [*_CONVERT, "videomae", m["src"], m["dst"], "--option", "frames=8"]),
        Error(code=2, names=("frames", "num_frames"))),
    # 3. disk full while saving: a CheckpointError naming the folder; earlier checkpoints survive
    Row("save-disk-full-state", _checkpoints((1, 2)), _save_step("torch.save"),
        Error(CheckpointError, names=("step_00000003", "No space left"), after=_survives("step_00000001", "step_00000002", latest="step_00000002"))),
    Row("save-disk-full-weights", _checkpoints((1, 2)), _save_step("omnimask.models.hub.save_file", _tiny_model),
        Error(CheckpointError, names=("step_00000003", "No space left"), after=_survives("step_00000002", latest="step_00000002"))),
    Row("train-disk-full", _train_setup(), lambda m, e: (_fail_save(e, "torch.save", "step_00000004"), _train()(m, e))[1],
        Error(code=4, names=("step_00000004", "No space left"), after=_survives("step_00000002", latest="step_00000002"))),
    Row("runner-output-oserror", lambda t: {"tmp": t}, _runner(lambda t: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device", str(t / "final")))),
        Error(code=4, names=("final", "No space left"))),
    # 4. temp folders of a killed save are removed at the next save
    Row("save-removes-stale-temps", _stale, lambda m, e: save_checkpoint(m["out"], model=m["model"], optimizer=None, step=2, epoch=0, step_in_epoch=2, keep=0),
        Ok(_stale_check)),
    Row("save-restores-trashed-step", _trash, lambda m, e: save_checkpoint(m["out"], model=m["model"], optimizer=None, step=2, epoch=0, step_in_epoch=2, keep=0),
        Ok(_trash_check)),
    # 5. resume falls back to the previous good checkpoint
    Row("resume-truncated-weights", _checkpoints(damage=lambda c: _cut(c / "model.safetensors")), _resume, _resumed(1, "step_00000002")),
    Row("resume-missing-weights", _checkpoints(damage=_stat("model.safetensors")), _resume, _resumed(1, "step_00000002")),
    Row("resume-garbage-state", _checkpoints(damage=lambda c: (c / "training_state.pt").write_bytes(b"garbage")), _resume, _resumed(1, "step_00000002")),
    Row("resume-missing-state", _checkpoints(damage=_stat("training_state.pt")), _resume, _resumed(1, "step_00000002")),
    Row("resume-latest-dangling", _checkpoints(damage=lambda c: (c.parent / "latest").write_text("step_00000009\n")), _resume, _resumed(2, "step_00000009")),
    Row("resume-nothing-readable", _checkpoints((1,), damage=lambda c: _cut(c / "model.safetensors")), _resume,
        Error(CheckpointError, names=("step_00000001", "model.safetensors"))),
    Row("resume-named-dir-corrupt", _checkpoints(damage=lambda c: _cut(c / "model.safetensors")), lambda m, e: load_checkpoint(m["newest"], nn.Linear(4, 2)),
        Error(CheckpointError, names=("step_00000002", "model.safetensors"))),
    Row("train-resume-nothing", _train_setup(), _train("--resume"), Error(code=4, names=("run", "checkpoint"))),
    # 6. exit codes and one-line errors
    Row("train-unknown-recipe", lambda t: {}, _cli(lambda m: ["train", "imag_mae"]), Error(code=2, names=("imag_mae", "image_mae"))),
    Row("train-config-typo", _train_setup(), _train("optim.base_lrr=1"), Error(code=2, names=("base_lrr", "base_lr"))),
    Row("train-unreadable-image", _train_setup(0, 2), _train(), Error(code=3, names=("bad_", "on_error=skip"))),
    Row("runner-giving-up-under-skip", lambda t: {"tmp": t}, _runner(_give_up), Error(code=3, names=("giving up", "0.npy"), absent=("set data.<modality>.on_error=skip",))),
    Row("runner-non-finite", lambda t: {"tmp": t}, _runner(lambda t: (_ for _ in ()).throw(NonFiniteLossError("non-finite loss nan at optimizer step 3", 3, 0, {}, None))),
        Error(code=1, names=("step 3",))),
    Row("data-unknown-part", lambda t: {"tmp": t}, _cli(lambda m: ["data", "--root", m["tmp"], "--parts", "nope"]), Error(code=2, names=("nope", "image"))),
    Row("debug-flag-traceback", _file("empty.pth", b""), lambda m, e: cli_main(["--debug", *_CONVERT, "videomae", str(m["src"]), str(m["dst"])]),
        Error(ConversionError, names=("empty.pth",))),
    Row("debug-env-traceback", _file("empty.pth", b""), lambda m, e: (e.monkeypatch.setenv("OMNIMASK_DEBUG", "1"), cli_main([*_CONVERT, "videomae", str(m["src"]), str(m["dst"])]))[1],
        Error(ConversionError, names=("empty.pth",))),
    # 7. config values named at their key
    Row("train-negative-base-lr", _train_setup(), _train("optim.base_lr=-1"), Error(code=2, names=("optim.base_lr", "-1"))),
    Row("train-bad-mask-ratio", _train_setup(), _train("model.modalities.image.masking={name: random, ratio: 1.5}"),
        Error(code=2, names=("modalities.image.masking", "ratio", "1.5"))),
    Row("train-image-folder-all-unreadable", _train_setup(0, 2), _train("data.image.on_error=skip"),
        Error(code=3, names=("no decodable image", "files failed"), absent=("on_error=skip to skip",))),
    # 8. what the issue saw: silent garbage that must now be a count or a named error
    # one epoch (16 images, batch 4): each of the two unreadable files is hit once and skipped
    Row("train-skip-counted-in-summary", _train_setup(7, 1), _train("data.image.on_error=skip", "train.max_steps=4", "eval.enabled=false"),
        Ok(lambda v, m, w: None if v.code == 0 and _summary(m)["skipped_samples"] == 2 else f"exit {v.code}, summary {_summary(m)}")),
    Row("train-mask-ratio-zero", _train_setup(), _train("model.modalities.image.masking={name: random, ratio: 0.0}"),
        Error(code=2, names=("modalities.image.masking.ratio is 0", "nothing to reconstruct"))),
    Row("model-nan-input", lambda t: {}, lambda m, e: _tiny_pretraining_model()({"image": _nan_batch()}),
        Error(ValueError, names=("'image'", "NaN or inf", "sample(s) [1]"))),
    Row("model-empty-batch", lambda t: {}, lambda m, e: _tiny_pretraining_model()({"image": torch.zeros(0, 3, 16, 16)}),
        Error(ValueError, names=("empty batch", "image"))),
]
# fmt: on


# ---------------------------------------------------------------- judging


@contextmanager
def _warnings() -> Iterator[list[str]]:
    records: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("omnimask")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _message_verdict(exp: Error, text: str) -> tuple[str, str]:
    missing = [n for n in exp.names if n not in text]
    false = [a for a in exp.absent if a in text]
    if missing or false:
        return "misleading", f"message lacks {missing} / says {false}: {text.strip()!r}"
    return "correct", ""


def judge(row: Row, env: Env) -> tuple[str, str]:
    """``(verdict, detail)``: run the row and classify what happened."""
    exp = row.expected
    if isinstance(exp, Skip):
        return "skip", exp.reason
    made = row.make(env.tmp)
    with _warnings() as records:
        try:
            value, raised = row.action(made, env), None
        except (Exception, SystemExit) as err:  # noqa: BLE001 - the matrix records whatever escaped
            value, raised = None, err
    warnings = " | ".join(records)
    if isinstance(exp, Ok):
        if raised is not None:
            return "traceback", f"{type(raised).__name__}: {raised}"
        problem = exp.check(value, made, warnings)
        return ("wrong", problem) if problem else ("correct", "")
    if exp.exc is not None:
        if raised is None:
            return "wrong", f"no error; returned {value!r}"
        if not isinstance(raised, exp.exc):
            kind = "misleading" if isinstance(raised, SystemExit) else "traceback"  # argparse refused it
            return kind, f"{type(raised).__name__}: {raised}"
        verdict = _message_verdict(exp, str(raised))
    else:
        if raised is not None:
            return "traceback", f"{type(raised).__name__}: {raised}"
        lines = [line for line in value.err.splitlines() if line.strip()]
        if "Traceback" in value.err:
            return "traceback", f"exit {value.code}, stderr {value.err[-600:]!r}"
        if len(lines) != 1:
            return "misleading", f"exit {value.code}, {len(lines)} lines on stderr: {value.err[-600:]!r}"
        if value.code != exp.code:
            return "misleading", f"exit {value.code}, expected {exp.code}: {lines[0]!r}"
        verdict = _message_verdict(exp, lines[0])
    if verdict[0] == "correct" and exp.after is not None:
        problem = exp.after(made)
        return ("wrong", problem) if problem else verdict
    return verdict


def matrix_totals() -> Counter:
    """Rows per expected outcome class (``ok``, ``error``, ``skip``)."""
    names = {Ok: "ok", Error: "error", Skip: "skip"}
    return Counter(names[type(row.expected)] for row in MATRIX)


def observed_totals() -> tuple[Counter, dict[str, tuple[str, str]]]:
    """Run every row outside pytest: verdict totals and each row's verdict."""
    logging.getLogger().addHandler(logging.NullHandler())  # keeps the runners' basicConfig quiet
    verdicts = {}
    for row in MATRIX:
        buf = io.StringIO()

        def read(buf: io.StringIO = buf) -> str:
            text = buf.getvalue()
            buf.seek(0)
            buf.truncate()
            return text

        with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp, redirect_stderr(buf):
            mp.chdir(tmp)
            verdicts[row.id] = judge(row, Env(Path(tmp), mp, read))
    return Counter(v for v, _ in verdicts.values()), verdicts


# ---------------------------------------------------------------- tests


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OMNIMASK_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)  # a recipe's relative paths land in the test's folder


@pytest.mark.parametrize("row", MATRIX, ids=[r.id for r in MATRIX])
def test_bad_input_matrix(row: Row, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    if isinstance(row.expected, Skip):
        pytest.skip(row.expected.reason)
    verdict, detail = judge(row, Env(tmp_path, monkeypatch, lambda: capsys.readouterr().err))
    assert verdict == "correct", f"{row.id}: {verdict}: {detail}"


def test_matrix_totals() -> None:
    totals = matrix_totals()
    assert sum(totals.values()) == len(MATRIX) == len({r.id for r in MATRIX})
    assert set(totals) <= {"ok", "error", "skip"} and totals["error"] > totals["ok"] > 0


if __name__ == "__main__":
    totals, rows = observed_totals()
    for rid, (verdict, detail) in rows.items():
        print(f"{verdict:<10} {rid:<36} {detail[:160]}")
    print(dict(matrix_totals()), dict(totals))
