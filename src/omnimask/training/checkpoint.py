"""Atomic, prunable training checkpoints that load with ``torch.load(weights_only=True)``.

Layout under ``<output_dir>/checkpoints/``::

    step_00000500/
        training_state.pt    optimizer, counters, RNG states (per rank), user ``extra``
        model.safetensors    weights (or whatever ``model.save_pretrained`` writes, e.g. + config.json)
    latest                   text file naming the newest complete step directory

A checkpoint is assembled in a hidden temp directory beside its final place, fsynced and then
moved with ``os.replace``, and ``latest`` is rewritten the same way, so a crash at any moment
leaves either the old or the new checkpoint, never a half-written one. Leftover temp
directories are never mistaken for checkpoints.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_model
from torch import nn

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
_STEP_RE = re.compile(r"^step_(\d{8,})$")


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
) -> Path:
    """Write ``<output_dir>/checkpoints/step_<step:08d>/`` atomically and return its path.

    ``rng_states`` is one :func:`capture_rng_state` per rank (gathered by the trainer under DDP);
    by default the calling process's state is stored. ``keep`` newest checkpoints survive pruning
    (``keep <= 0`` keeps all); the one just written is never deleted.
    """
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    root = Path(output_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    final = root / name
    state = {
        "format": 1,
        "step": int(step),
        "epoch": int(epoch),
        "step_in_epoch": int(step_in_epoch),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": rng_states if rng_states is not None else [capture_rng_state()],
        "extra": extra,
        "torch_version": str(torch.__version__),
    }
    _check_plain(state, "training state")  # fail now, not when the resume tries to read it
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp_{name}_", dir=root))
    try:
        torch.save(state, tmp / STATE_FILE)
        if callable(getattr(model, "save_pretrained", None)):
            model.save_pretrained(str(tmp))  # type: ignore[operator]
        else:
            save_model(model, str(tmp / WEIGHTS_FILE), force_contiguous=True)
        _fsync_tree(tmp)
        if final.exists():  # re-saving a step (e.g. after a resume): swap, then drop the old copy
            trash = Path(tempfile.mkdtemp(prefix=f".old_{name}_", dir=root))
            os.replace(final, trash / name)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root)
    latest_tmp = root / f".latest.{os.getpid()}.tmp"
    with latest_tmp.open("w", encoding="utf-8") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(latest_tmp, root / "latest")
    _fsync_dir(root)
    if keep > 0:
        old = [p for p in list_checkpoints(output_dir) if p != final]
        for p in old[: max(len(old) - (keep - 1), 0)]:
            shutil.rmtree(p, ignore_errors=True)
    logger.info("saved checkpoint %s", final)
    return final


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


def _read_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    index = ckpt / f"{WEIGHTS_FILE}.index.json"  # sharded save_pretrained output
    try:
        if (ckpt / WEIGHTS_FILE).is_file():
            return load_file(str(ckpt / WEIGHTS_FILE))
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            out: dict[str, torch.Tensor] = {}
            for shard in shards:
                out.update(load_file(str(ckpt / shard)))
            return out
    except Exception as e:  # safetensors raises several types for truncated/corrupt files
        raise CheckpointError(f"cannot read model weights in {ckpt}: {e}") from e
    raise CheckpointError(f"no {WEIGHTS_FILE} in checkpoint {ckpt}")


def load_model_weights(model: nn.Module, ckpt: str | Path) -> None:
    """Load a checkpoint's weights into ``model``, strictly (tied duplicates may be absent)."""
    ckpt = Path(ckpt)
    weights = _read_weights(ckpt)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing:
        # save_model/save_pretrained store one copy of tied tensors; a missing name is fine when it
        # shares storage with a name that was loaded.
        own = model.state_dict()
        loaded_ptrs = {own[k].data_ptr() for k in weights if k in own}
        missing = [k for k in missing if own[k].data_ptr() not in loaded_ptrs]
    if missing or unexpected:
        raise CheckpointError(f"weights in {ckpt} do not match the model: missing {missing}, unexpected {unexpected}")


def load_checkpoint(
    path: str | Path,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    rank: int = 0,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore model weights, optimizer and this rank's RNG state; return the training state.

    ``path`` is a checkpoint dir or an output dir (``checkpoints/latest`` is followed). The
    returned dict has ``step``, ``epoch``, ``step_in_epoch``, ``extra`` and ``path``.
    """
    ckpt = resolve_checkpoint(path)
    try:
        state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read {ckpt / STATE_FILE}: {e}") from e
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{ckpt / STATE_FILE} is not a training state")
    if model is not None:
        load_model_weights(model, ckpt)
    if optimizer is not None:
        if state.get("optimizer") is None:
            raise CheckpointError(f"{ckpt} holds no optimizer state")
        optimizer.load_state_dict(state["optimizer"])
    rng = state.get("rng") or []
    if restore_rng and rng:
        if rank >= len(rng):
            logger.warning("checkpoint has RNG states for %d rank(s); rank %d uses rank 0's", len(rng), rank)
        restore_rng_state(rng[rank] if rank < len(rng) else rng[0])
    state["path"] = str(ckpt)
    return state
