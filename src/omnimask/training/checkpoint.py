"""Atomic, prunable training checkpoints, sharded with ``torch.distributed.checkpoint`` (DCP).

Layout under ``<output_dir>/checkpoints/``::

    step_00000500/
        training_state.pt    counters, RNG states (one per rank), user ``extra`` (rank 0 writes it)
        state/               model + optimizer state as DCP shards (``.metadata`` + one file per
                             rank): every process writes its own part, so an FSDP run never
                             gathers the whole model, and any number of processes can read it
                             back (2 -> 1, 1 -> 2, DDP <-> FSDP: DCP reshards by parameter name)
        model.safetensors    the whole model (or what ``model.save_pretrained`` writes, + config.json),
                             when one process holds it (one process, DDP); an FSDP checkpoint holds
                             ``config.json`` only: ``omnimask export`` writes the whole model from it
    latest                   text file naming the newest complete step directory

A checkpoint is assembled in a hidden temp directory beside its final place, fsynced and then
moved with ``os.replace`` by rank 0 once every rank's shards are written, and ``latest`` is
rewritten the same way, so a crash (or kill -9) at any moment leaves either the old or the new
checkpoint, never a half-written one. Leftover temp directories are never mistaken for
checkpoints, and the next save removes them. A save that fails (disk full) raises
:class:`CheckpointError` on every rank and leaves the earlier checkpoints and ``latest`` as they
were; loading an output directory skips a damaged newest checkpoint for the newest readable one.
Checkpoints of the earlier format (optimizer inside ``training_state.pt``) still load.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model
from torch import nn
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from .strategy import is_sharded, plain_class

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "resolve_checkpoint",
    "list_checkpoints",
    "capture_rng_state",
    "restore_rng_state",
    "load_model_weights",
]

logger = logging.getLogger(__name__)

STATE_FILE = "training_state.pt"
WEIGHTS_FILE = "model.safetensors"
SHARDS_DIR = "state"
_STEP_RE = re.compile(r"^step_(\d{8,})$")
# What save_checkpoint leaves behind when it is killed: its temp folder, the trash folder of a re-saved
# step, the temp file of ``latest``. Nothing else in checkpoints/ is touched.
_TEMP_DIR_RE = re.compile(r"^\.(tmp|old)_(step_\d{8,})_[a-z0-9_]+$")
_TEMP_LATEST_RE = re.compile(r"^\.latest\.\d+\.tmp$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or unreadable; the message names the path."""


def capture_rng_state() -> dict[str, Any]:
    """torch/numpy/python (and CUDA) RNG states as tensors and plain containers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": [int(version), torch.tensor(internal, dtype=torch.int64), gauss_next],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(
        (npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["cached_gaussian"])
    )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(int(x) for x in internal.tolist()), gauss_next))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            logger.warning(
                "checkpoint has %d CUDA RNG states but there are %d devices; not restored",
                len(cuda),
                torch.cuda.device_count(),
            )


def _check_plain(obj: Any, where: str) -> None:
    """Reject anything ``torch.load(weights_only=True)`` could not read back."""
    # Exact types: subclasses such as numpy.float64 or torch's TorchVersion (a str) pickle as
    # their own class, which the weights-only unpickler refuses.
    if obj is None or type(obj) in (bool, int, float, str) or isinstance(obj, torch.Tensor):
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    if type(obj) in (dict, OrderedDict):
        for k, v in obj.items():
            _check_plain(k, f"{where} key")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where} has a {type(obj).__name__}; checkpoints hold only tensors and plain python values")


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    # Directory fsync makes the rename durable; not supported on every platform/filesystem.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoint directories under ``<output_dir>/checkpoints``, oldest step first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_RE.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if (p / STATE_FILE).is_file()]


def save_checkpoint(
    output_dir: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    epoch: int,
    step_in_epoch: int,
    extra: dict[str, Any] | None = None,
    keep: int = 2,
    rng_states: list[dict[str, Any]] | None = None,
    distributed: bool = False,
) -> Path:
    """Write ``<output_dir>/checkpoints/step_<step:08d>/`` atomically and return its path.

    With ``distributed=True`` every rank of the process group calls it (collective): each writes
    its shards, rank 0 the rest. ``rng_states`` is one :func:`capture_rng_state` per rank
    (gathered by the trainer); by default the calling process's state is stored. ``keep`` newest
    checkpoints survive pruning (``keep <= 0`` keeps all); the one just written is never deleted.
    Temp folders of an earlier, killed save are removed first.

    Raises:
        CheckpointError: the checkpoint could not be written (disk full...), on every rank: the
            message names the folder and the error; earlier checkpoints and ``latest`` are left as
            they were.
    """
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    main = not distributed or dist.get_rank() == 0
    root = Path(output_dir) / "checkpoints"
    name = f"step_{step:08d}"
    final, tmp = root / name, root / f".tmp_{name}_shards"
    state = {
        "format": 2,
        "step": int(step),
        "epoch": int(epoch),
        "step_in_epoch": int(step_in_epoch),
        "rng": rng_states if rng_states is not None else [capture_rng_state()],
        "extra": extra,
        "torch_version": str(torch.__version__),
        "whole_model": not is_sharded(model),  # a whole-model file beside the shards (checked on load)
    }
    _check_plain(state, "training state")  # fail now, not when the resume tries to read it
    sharded = is_sharded(model)
    failure: BaseException | None = None
    if main:
        try:
            root.mkdir(parents=True, exist_ok=True)
            _remove_stale_temps(root)
            tmp.mkdir()
        except OSError as err:
            failure = err
    _agree(failure, distributed, root, name, tmp if main else None)
    try:
        model_state, optim_state = get_state_dict(model, optimizer or [])
        shards = {"model": model_state, **({"optimizer": optim_state} if optimizer is not None else {})}
        with _quiet_dcp():
            dcp.save(shards, checkpoint_id=str(tmp / SHARDS_DIR), no_dist=not distributed)
    except (Exception, CheckpointException) as err:  # noqa: BLE001 - DCP wraps each rank's error in its own
        failure = RuntimeError(_dcp_reason(err))
    _agree(failure, distributed, root, name, tmp if main else None)
    if main:
        try:
            _finish_step(tmp, final, state, model, whole=not sharded)
            _write_latest(root, name)
        except (OSError, RuntimeError, SafetensorError) as err:  # disk full, read-only, quota...
            failure = err
    _agree(failure, distributed, root, name, tmp if main else None)
    if main and keep > 0:
        old = [p for p in list_checkpoints(output_dir) if p != final]
        for p in old[: max(len(old) - (keep - 1), 0)]:
            shutil.rmtree(p, ignore_errors=True)
    if main:
        logger.info("saved checkpoint %s", final)
    return final


def _agree(failure: BaseException | None, distributed: bool, root: Path, name: str, tmp: Path | None) -> None:
    """Every rank learns whether any rank failed (in place of a barrier), so a failed save stops
    them all with the reason instead of leaving the others waiting for a timeout; rank 0 (``tmp``
    given) then removes the unfinished folder."""
    reasons = [_reason(failure) if failure is not None else None]
    if distributed:
        reasons = [None] * dist.get_world_size()
        dist.all_gather_object(reasons, _reason(failure) if failure is not None else None)
    bad = [(rank, why) for rank, why in enumerate(reasons) if why is not None]
    if not bad:
        return
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    before = _latest_name(root) if root.is_dir() else None
    kept = f"latest still names {before}" if before else "no earlier checkpoint"
    where = "; ".join(f"rank {r}: {why}" if distributed else why for r, why in bad)
    error = CheckpointError(f"cannot save checkpoint {name} in {root}: {where} ({kept})")
    raise error from failure


def _dcp_reason(err: BaseException) -> str:
    """The first underlying error of a DCP ``CheckpointException`` (which wraps each rank's)."""
    failures = getattr(err, "failures", None)
    if failures:
        _, wrapped = min(failures.items())
        inner = wrapped[0] if isinstance(wrapped, tuple) else wrapped
        if isinstance(inner, BaseException):
            return _reason(inner)
    return _reason(err)


def _reason(err: BaseException) -> str:
    """An OS error as ``[Errno 28] No space left on device``; others by their first line."""
    if isinstance(err, OSError) and err.strerror:
        return f"[Errno {err.errno}] {err.strerror}" if err.errno else err.strerror
    text = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    if len(text) > 200 and ". " in text[:200]:  # torch's long explanations: the first sentence
        return text[: text.index(". ") + 1]
    return text if len(text) <= 200 else text[:197] + "..."


def _remove_stale_temps(root: Path) -> None:
    """Remove what a killed save left in ``root`` (only omnimask's own temp names). A step moved to
    the trash by a re-save that died before its new copy was in place goes back first."""
    for p in root.iterdir():
        if _TEMP_LATEST_RE.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            continue
        m = _TEMP_DIR_RE.match(p.name)
        if not m or not p.is_dir():
            continue
        trashed, final = p / m.group(2), root / m.group(2)
        if m.group(1) == "old" and (trashed / STATE_FILE).is_file() and not final.exists():
            os.replace(trashed, final)
            logger.warning("restored %s from an interrupted re-save", final)
        shutil.rmtree(p, ignore_errors=True)
        logger.info("removed %s, left by an interrupted save", p)


def _finish_step(tmp: Path, final: Path, state: dict[str, Any], model: nn.Module, whole: bool) -> None:
    """Add the training state (and the whole model when this process holds it) to ``tmp``, fsync
    it and move it in place (rank 0, after every rank wrote its shards)."""
    root = final.parent
    torch.save(state, tmp / STATE_FILE)
    if whole and callable(getattr(model, "save_pretrained", None)):
        model.save_pretrained(str(tmp))  # type: ignore[operator]
    elif whole:
        save_model(model, str(tmp / WEIGHTS_FILE), force_contiguous=True)
    elif callable(getattr(model, "_config_with_assets", None)):  # sharded: the config, for `omnimask export`
        config = model._config_with_assets(tmp)  # type: ignore[operator]
        config.architectures = [plain_class(type(model)).__name__]
        config.save_pretrained(tmp)
    _fsync_tree(tmp)
    if final.exists():  # re-saving a step (e.g. after a resume): swap, then drop the old copy
        trash = Path(tempfile.mkdtemp(prefix=f".old_{final.name}_", dir=root))
        os.replace(final, trash / final.name)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)


def _write_latest(root: Path, name: str) -> None:
    latest_tmp = root / f".latest.{os.getpid()}.tmp"
    try:
        with latest_tmp.open("w", encoding="utf-8") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(latest_tmp, root / "latest")
    finally:
        latest_tmp.unlink(missing_ok=True)
    _fsync_dir(root)


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a checkpoint dir, a ``checkpoints`` dir or an output dir; return the checkpoint dir."""
    p = Path(path)
    if (p / STATE_FILE).is_file():
        return p
    for root in (p / "checkpoints", p):
        latest = root / "latest"
        if latest.is_file():
            target = root / latest.read_text(encoding="utf-8").strip()
            if not (target / STATE_FILE).is_file():
                raise CheckpointError(f"{latest} points to {target}, which is missing or incomplete")
            return target
    ckpts = list_checkpoints(p.parent if p.name == "checkpoints" else p)
    if ckpts:
        logger.warning("no 'latest' file under %s; using newest checkpoint %s", p, ckpts[-1])
        return ckpts[-1]
    raise CheckpointError(
        f"no checkpoint at {str(p)!r}: expected a directory with {STATE_FILE} or an output dir with checkpoints/latest"
    )


def _latest_name(root: Path) -> str | None:
    """The step folder ``root/latest`` names, or None (no file, unreadable)."""
    try:
        return (root / "latest").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _read_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    index = ckpt / f"{WEIGHTS_FILE}.index.json"  # sharded save_pretrained output
    files = [ckpt / WEIGHTS_FILE]
    try:
        if not files[0].is_file() and index.is_file():
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            files = [ckpt / shard for shard in shards]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot read {index}: {_reason(e)}") from e
    out: dict[str, torch.Tensor] = {}
    for path in files:
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        try:
            out.update(load_file(str(path)))
        except (SafetensorError, OSError) as e:  # truncated, empty, not safetensors
            raise CheckpointError(f"{path} is truncated or corrupt ({_reason(e)})") from e
    return out


def _apply_weights(model: nn.Module, weights: dict[str, torch.Tensor], ckpt: Path) -> None:
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing:
        # save_model/save_pretrained store one copy of tied tensors; a missing name is fine when it
        # shares storage with a name that was loaded.
        own = model.state_dict()
        loaded_ptrs = {own[k].data_ptr() for k in weights if k in own}
        missing = [k for k in missing if own[k].data_ptr() not in loaded_ptrs]
    if missing or unexpected:
        raise CheckpointError(f"weights in {ckpt} do not match the model: missing {missing}, unexpected {unexpected}")


def load_model_weights(model: nn.Module, ckpt: str | Path) -> None:
    """Load a checkpoint's weights into ``model`` (one process), strictly (tied duplicates may be
    absent): the whole-model file when the checkpoint has one, else its DCP shards."""
    ckpt = Path(ckpt)
    if not (ckpt / WEIGHTS_FILE).is_file() and _has_shards(ckpt):
        _check_shards(ckpt)
        _load_shards(ckpt, model, None, distributed=False)
        return
    _apply_weights(model, _read_weights(ckpt), ckpt)


@contextmanager
def _quiet_dcp() -> Iterator[None]:
    """DCP warns that it assumes one process whenever no process group is joined: that is meant."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def _has_shards(ckpt: Path) -> bool:
    return (ckpt / SHARDS_DIR).is_dir()


def _check_shards(ckpt: Path) -> None:
    """Raise :class:`CheckpointError` unless the DCP metadata reads and every file it names is there."""
    shards = ckpt / SHARDS_DIR
    try:
        metadata = dcp.FileSystemReader(str(shards)).read_metadata()
    except Exception as e:  # noqa: BLE001 - missing or truncated .metadata: several error types
        raise CheckpointError(f"cannot read the shard index {shards / '.metadata'} ({_reason(e)})") from e
    files = {info.relative_path for info in (metadata.storage_data or {}).values()}
    missing = sorted(f for f in files if not (shards / f).is_file())
    if missing:
        raise CheckpointError(f"{shards} lacks the shard file(s) {missing}")


def _load_shards(ckpt: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, distributed: bool) -> None:
    """Read model (and optimizer) state from the DCP shards into this process's part of them."""
    model_state, optim_state = get_state_dict(model, optimizer or [])
    wanted = {"model": model_state, **({"optimizer": optim_state} if optimizer is not None else {})}
    try:
        with _quiet_dcp():
            dcp.load(wanted, checkpoint_id=str(ckpt / SHARDS_DIR), no_dist=not distributed)
    except (Exception, CheckpointException) as e:  # noqa: BLE001 - missing keys, bad shapes, I/O
        raise CheckpointError(f"cannot load {ckpt / SHARDS_DIR} into {type(model).__name__}: {_dcp_reason(e)}") from e
    if optimizer is not None:
        set_state_dict(model, optimizer, model_state_dict=wanted["model"], optim_state_dict=wanted["optimizer"])
    else:
        set_state_dict(model, [], model_state_dict=wanted["model"], optim_state_dict={})


def _read_state(ckpt: Path) -> dict[str, Any]:
    path = ckpt / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing" if ckpt.is_dir() else f"{ckpt} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load raises many types for damaged files
        raise CheckpointError(f"cannot read {path}: truncated or corrupt ({_reason(e)})") from e
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path} is not a training state")
    return state


def _candidates(path: Path) -> tuple[list[Path], bool]:
    """Checkpoints to try, best first, and whether ``path`` named one checkpoint (no fallback).

    For an output (or ``checkpoints``) dir: the step ``latest`` names, then every other step folder,
    newest first.
    """
    if (path / STATE_FILE).is_file() or _STEP_RE.match(path.name):
        return [path], True
    for root in (path / "checkpoints", path):
        steps = [(int(m.group(1)), p) for p in _iterdir(root) if (m := _STEP_RE.match(p.name)) and p.is_dir()]
        latest = _latest_name(root)
        if not steps and latest is None:
            continue
        first = [root / latest] if latest else []
        return first + [p for _, p in sorted(steps, reverse=True) if p not in first], False
    raise CheckpointError(
        f"no checkpoint at {str(path)!r}: expected a directory with {STATE_FILE} or an output dir with checkpoints/latest"
    )


def _iterdir(root: Path) -> list[Path]:
    return list(root.iterdir()) if root.is_dir() else []


def load_checkpoint(
    path: str | Path,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    rank: int = 0,
    restore_rng: bool = True,
    distributed: bool = False,
) -> dict[str, Any]:
    """Restore model weights, optimizer and this rank's RNG state; return the training state.

    ``path`` is a checkpoint dir or an output dir (``checkpoints/latest`` is followed). For an
    output dir a checkpoint that cannot be read (truncated or missing shards or weights,
    unreadable state, ``latest`` naming a missing folder) is skipped with a warning naming it, for
    the next newest. With ``distributed=True`` every rank calls it and reads its own part of the
    shards (any number of processes can read a checkpoint written by any other number). The
    returned dict has ``step``, ``epoch``, ``step_in_epoch``, ``extra`` and ``path``.

    Raises:
        CheckpointError: no readable checkpoint (each one tried is named), or the one named checkpoint
            dir is damaged, or its weights do not fit ``model``.
    """
    candidates, named = _candidates(Path(path))
    skipped: list[str] = []
    for ckpt in candidates:
        try:  # check everything before touching the model: a damaged checkpoint leaves it as it was
            state = _read_state(ckpt)
            weights = None
            if _has_shards(ckpt):
                _check_shards(ckpt)
                if state.get("whole_model") and model is not None:
                    _read_weights(ckpt)  # part of the checkpoint: a damaged copy means a damaged checkpoint
            elif model is not None:  # the earlier format: whole weights, optimizer in the state file
                weights = _read_weights(ckpt)
        except CheckpointError as err:
            if named:
                raise
            skipped.append(str(err))
            logger.warning("skipping checkpoint %s: %s", ckpt, err)
            continue
        break
    else:
        raise CheckpointError(f"no readable checkpoint under {path}: " + "; ".join(skipped))
    if skipped:
        logger.warning("resuming from %s, the newest readable checkpoint (skipped %d newer)", ckpt, len(skipped))
    if _has_shards(ckpt) and model is not None:
        _load_shards(ckpt, model, optimizer, distributed)
    else:
        if model is not None and weights is not None:
            _apply_weights(model, weights, ckpt)
        if optimizer is not None:
            if state.get("optimizer") is None:
                raise CheckpointError(f"{ckpt} holds no optimizer state")
            optimizer.load_state_dict(state["optimizer"])
    rng = state.get("rng") or []
    if restore_rng and rng:
        if rank >= len(rng):
            logger.info("checkpoint has RNG states for %d rank(s); rank %d starts from rank 0's", len(rng), rank)
        restore_rng_state(rng[rank] if rank < len(rng) else rng[0])
    state["path"] = str(ckpt)
    return state
