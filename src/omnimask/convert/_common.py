"""Pieces every converter shares: renaming a source state dict (with q/k/v fusion) and writing the
checked omnimask checkpoint. Private: not a format, so converter discovery skips it."""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor

from ..model_config import OmniMaskConfig
from ..models import OmniMaskForPreTraining, OmniMaskModel
from . import ConversionError, SourceReadError

__all__ = [
    "Target",
    "Renamer",
    "map_state",
    "write_checkpoint",
    "official_file",
    "read_checkpoint_file",
    "unreadable_source",
    "unwrap_state",
    "load_state_file",
    "block_count",
    "positive_int",
]

#: Weight files a directory source may hold (research repos save ``.pth``).
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")

log = logging.getLogger(__name__)

# A target is (section "enc"/"dec", omnimask name inside the section, q/k/v slot or None).
# Names starting with "@" are special tensors (position tables, cls) the converter handles itself.
Target = tuple[str, str, "int | None"]
Renamer = Callable[[str], "Target | None"]


def map_state(
    state: dict[str, Tensor],
    rename: Renamer,
    prefix: dict[str, str],
    *,
    qv_bias_only: bool = False,
    unknown_hint: Callable[[list[str]], str] = lambda keys: "",
) -> dict[str, Tensor]:
    """Rename every tensor (``prefix[section] + name``, or ``"<section>@..."`` for special ones) and
    fuse separate q/k/v tensors into ``attn.qkv`` (rows ``[q; k; v]``).

    ``qv_bias_only``: the source has q and v biases but none on k (VideoMAE); the fused bias gets a
    zero k part. Otherwise all three parts are required for weights and biases alike.

    Raises:
        ConversionError: unmapped tensors (all named), two sources for one target, incomplete q/k/v.
    """
    out: dict[str, Tensor] = {}
    source_of: dict[str, str] = {}
    pieces: dict[str, dict[int, Tensor]] = {}
    unknown = []
    for key, tensor in state.items():
        found = rename(key)
        if found is None:
            unknown.append(key)
            continue
        section, name, slot = found
        target = f"{section}{name}" if name.startswith("@") else prefix[section] + name
        slot_key = f"{target}#{slot}"
        if slot_key in source_of:  # e.g. both q_bias and query.bias, or "videomae.x" and "x"
            raise ConversionError(f"source tensors {source_of[slot_key]!r} and {key!r} both map to {target!r}")
        source_of[slot_key] = key
        if slot is None:
            out[target] = tensor
        else:
            pieces.setdefault(target, {})[slot] = tensor
    if unknown:
        raise ConversionError(
            f"{len(unknown)} source tensor(s) have no omnimask counterpart: {sorted(unknown)}{unknown_hint(unknown)}"
        )
    for target, parts in pieces.items():
        if target in out:
            raise ConversionError(f"{target}: the source holds it both fused and as separate q/k/v parts")
        if qv_bias_only and target.endswith(".bias"):
            # VideoMAE: q and v biases, none on k (it computes k with a zero bias).
            if sorted(parts) != [0, 2]:
                lacking = "value (v_bias)" if 0 in parts else "query (q_bias)"
                raise ConversionError(
                    f"{target}: the source has only one of the q/v biases; it lacks the {lacking} bias"
                )
            out[target] = torch.cat([parts[0], torch.zeros_like(parts[0]), parts[2]])
        else:
            if sorted(parts) != [0, 1, 2]:
                names = [n for i, n in enumerate(("query", "key", "value")) if i not in parts]
                raise ConversionError(f"{target}: the source lacks the {names} projection(s) needed to fuse q/k/v")
            out[target] = torch.cat([parts[0], parts[1], parts[2]], dim=0)
    return out


def write_checkpoint(
    config: OmniMaskConfig, state: dict[str, Tensor], has_decoder: bool, src: Path, dst: Path, described_by: str
) -> Path:
    """Build the omnimask model, check keys and shapes against ``state``, load strictly and save.

    ``described_by`` names what the config came from, for the error messages (``"config.json"``).
    """
    model = (OmniMaskForPreTraining if has_decoder else OmniMaskModel)(config)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ConversionError(f"{src}: the source lacks tensors for omnimask {missing}")
    extra = sorted(set(state) - set(own))
    if extra:
        raise ConversionError(f"{src}: source tensors for {extra} have no place in the model {described_by} describes")
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise ConversionError(f"{src}: tensor shapes disagree with {described_by} (source vs omnimask): {bad[:10]}")
    model.load_state_dict(state, strict=True)
    model.save_pretrained(dst)
    log.info("converted %s -> %s (%s)", src, dst, type(model).__name__)
    return dst


def official_file(src: Path, suffixes: Sequence[str] = WEIGHT_SUFFIXES) -> Path:
    """``src`` if it is a file, else the one weights file in the directory ``src``."""
    if src.is_file():
        return src
    if not src.is_dir():
        raise FileNotFoundError(f"source checkpoint {src} does not exist")
    found = sorted(p for p in src.iterdir() if p.is_file() and p.name.endswith(tuple(suffixes)))
    if len(found) != 1:
        what = f"several ({[p.name for p in found]})" if found else "none"
        raise ConversionError(
            f"{src}: expected exactly one weights file ({', '.join(suffixes)}) in the directory, found {what}; "
            "pass the file itself"
        )
    return found[0]


def _first_line(err: BaseException, limit: int = 200) -> str:
    text = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    if len(text) > limit and ". " in text[:limit]:  # torch's long explanations: the first sentence
        return text[: text.index(". ") + 1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refused_global(err: pickle.UnpicklingError) -> str | None:
    """The class a weights-only load refused (``argparse.Namespace``), if that is why it failed."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    return found.group(1) if found else None


def _safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable safetensors file (header and sizes checked), or None."""
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError) as err:
        return _first_line(err)
    return None


def unreadable_source(src: Path, err: BaseException) -> ConversionError:
    """The error for a converter that failed to read a weights file somewhere under ``src``:
    it names the damaged safetensors files when it can find them."""
    files = sorted(src.glob("*.safetensors")) if src.is_dir() else [src]
    bad = [f"{p} ({problem})" for p in files if (problem := _safetensors_problem(p))]
    where = "; ".join(bad) if bad else f"{src} ({_first_line(err)})"
    return SourceReadError(f"cannot read the source checkpoint: {where}; the file is truncated or corrupt")


def read_checkpoint_file(path: Path, wrapper_hint: str = "model", allowed: Sequence[type] = ()) -> Any:
    """The object stored in a checkpoint file, loaded safely.

    ``.pth``/``.bin`` files are read with ``torch.load(weights_only=True)`` (nothing in the file can
    run code); ``allowed`` lists extra classes the file may hold (e.g. ``argparse.Namespace``).

    Raises:
        SourceReadError: the file is empty, truncated, not a checkpoint at all, or holds objects that a
            weights-only load refuses (the message names the file and which of these it is).
    """
    if path.stat().st_size == 0:
        raise SourceReadError(f"{path} is empty (0 bytes), not a checkpoint; was a download or copy interrupted?")
    if path.name.endswith(".safetensors"):
        try:
            return load_file(str(path))
        except SafetensorError as err:
            raise SourceReadError(f"{path} is not a readable safetensors file: truncated or corrupt ({err})") from None
    with path.open("rb") as f:
        head = f.read(16)
    # torch.save writes a zip archive ("PK\x03\x04"); its legacy format is a protocol-2 pickle ("\x80\x02").
    if not head.startswith(b"PK\x03\x04") and not head.startswith(b"\x80"):
        raise SourceReadError(
            f"{path} is not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle; it starts with "
            f"{head!r}); expected {', '.join(WEIGHT_SUFFIXES)} weights"
        )
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        refused = _refused_global(err)
        if refused is None:
            raise SourceReadError(f"{path} is truncated or corrupt ({_first_line(err)})") from None
        raise SourceReadError(
            f"{path} holds objects that a weights-only load refuses ({refused}); re-save just its state dict, e.g. "
            f"torch.save({{'{wrapper_hint}': ckpt['{wrapper_hint}']}}, path), from a file you trust"
        ) from None
    except Exception as err:  # noqa: BLE001 - torch.load raises many types for damaged files
        raise SourceReadError(
            f"{path} is truncated or corrupt: not readable as a PyTorch checkpoint ({_first_line(err)})"
        ) from None


def unwrap_state(obj: Any, path: Path, wrappers: Sequence[str]) -> dict[str, Tensor]:
    """The state dict in a loaded checkpoint: under the first of ``wrappers`` found at the top level
    (``model``, ``base_model``...) or the object itself; DDP's ``module.`` prefix stripped."""
    if isinstance(obj, dict):
        for wrapper in wrappers:
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        top = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        under = "/".join(repr(w) for w in wrappers)
        raise ConversionError(f"{path} does not hold a state dict of tensors (or one under {under}); top level: {top}")
    state = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in obj.items()}
    if len(state) != len(obj):
        raise ConversionError(f"{path}: keys with and without the 'module.' prefix collide")
    return state


def load_state_file(path: Path, wrappers: Sequence[str], allowed: Sequence[type] = ()) -> dict[str, Tensor]:
    """:func:`read_checkpoint_file` then :func:`unwrap_state`: a research-code checkpoint's weights."""
    return unwrap_state(read_checkpoint_file(path, wrappers[0], allowed), path, wrappers)


def block_count(state: dict[str, Tensor], prefix: str) -> int:
    """Number of ``<prefix>blocks.<i>.`` blocks in ``state``."""
    pattern = re.compile(rf"^{re.escape(prefix)}blocks\.(\d+)\.")
    ids = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(ids) + 1 if ids else 0


def attention_heads(dim: int, given: Any, known: dict[int, int], option: str, what: str, sizes: str) -> int:
    """Attention heads of a ``what`` (encoder/decoder) ``dim`` wide: the option ``given``, else the
    reference's count for that width (``known``); they must divide the width. Heads are not stored in
    the weights, so an unknown width without the option is an error that names the option; ``sizes``
    says which widths are known (``"one of MAE's model sizes [768, 1024, 1280]"``)."""
    if given is not None:
        heads = positive_int(given, option)
    elif dim in known:
        heads = known[dim]
    else:
        raise ConversionError(
            f"the {what} width {dim} is not {sizes}, so its number of attention heads is unknown (heads are not "
            f"stored in the weights); pass it with the option {option}=N (CLI: --option {option}=N)"
        )
    if dim % heads:
        raise ConversionError(f"option {option}={heads} does not divide the {what} width {dim}")
    return heads


def positive_int(value: Any, name: str) -> int:
    """``value`` if it is a positive int, else a ConversionError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConversionError(f"option {name} must be a positive integer, got {value!r}")
    return value
