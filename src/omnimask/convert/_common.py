"""Pieces every converter shares: renaming a source state dict (with q/k/v fusion) and writing the
checked omnimask checkpoint. Private: not a format, so converter discovery skips it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..configuration import OmniMaskConfig
from ..models import OmniMaskForPreTraining, OmniMaskModel
from . import ConversionError

__all__ = ["Target", "Renamer", "map_state", "write_checkpoint"]

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
                raise ConversionError(f"{target}: the source has only one of the q/v biases; it lacks the {lacking} bias")
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
