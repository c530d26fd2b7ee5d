"""``cav-mae``: official CAV-MAE (YuanGongND/cav-mae) pretraining checkpoints -> omnimask.

The source is the ``audio_model.N.pth`` the pretraining script saves (a file, or a directory
holding one): a bare state dict saved from ``nn.DataParallel``, every key ``module.``-prefixed
(stripped here). Keys map as follows (``<part>`` = ``norm1``, ``attn.qkv``, ``attn.proj``,
``norm2``, ``mlp.fc1``, ``mlp.fc2``)::

    patch_embed_a.proj / patch_embed_v.proj  -> omnimask.tokenizers.audio.proj (kernel transposed, below)
                                                / omnimask.tokenizers.image.proj
    pos_embed_a / pos_embed_v                -> checked against the generated tables, not stored
    modality_a / modality_v                  -> omnimask.modality_embed.audio / .image
    blocks_a.N.<part> / blocks_v.N.<part>    -> omnimask.encoder.specific_blocks.audio.N / .image.N
    blocks_u.N.<part>                        -> omnimask.encoder.blocks.N.<part>
    blocks_u.N.norm{1,2}_a / _v              -> omnimask.encoder.blocks.N.modality_norms.audio / .image.norm{1,2}
    norm / norm_a / norm_v                   -> omnimask.encoder.norm / modality_final_norms.audio / .image
    decoder_embed / mask_token               -> joint_decoder.embed / joint_decoder.mask_token
    decoder_modality_a / _v                  -> decoders.audio.modality_embed / decoders.image.modality_embed
    decoder_pos_embed_a / _v                 -> checked, not stored
    decoder_blocks.N.<part> / decoder_norm   -> joint_decoder.blocks.N.<part> / joint_decoder.norm
    decoder_pred_a / decoder_pred_v          -> decoders.audio.pred (rows reordered, below) / decoders.image.pred

Every CAV-MAE ``Block`` carries ``norm{1,2}_a`` / ``norm{1,2}_v``, but only the shared blocks use
them; those of ``blocks_a``, ``blocks_v`` and ``decoder_blocks`` are dropped (logged), which changes
nothing the original computes.

Audio layout. CAV-MAE takes a ``(B, T, F)`` fbank, transposes it to ``(B, 1, F, T)`` and cuts
``kf x kt`` patches: tokens run frequency-major (``index = f * T' + t``), each patch vector is
(freq, time)-ordered. omnimask's audio modality takes ``(B, 1, T, F)`` (``fbank.unsqueeze(1)``),
tokens time-major (``t * F' + f``), patch vectors (time, freq)-ordered. So the conversion:

* transposes the conv kernel's two spatial axes (``(D, 1, kf, kt) -> (D, 1, kt, kf)``; the
  tokenizer's ``patch_size`` is ``[kt, kf]``): the same token values, in another order;
* reorders the rows of ``decoder_pred_a`` (and its bias) from (freq, time) to (time, freq) patch
  vectors, so the prediction of a patch is the same numbers, laid out as omnimask's target;
* keeps the position tables as CAV-MAE's values per (t, f) token: the tokenizer's
  ``pos_embed: cav_mae`` generates exactly ``pos_embed_a`` (and, at the decoder width,
  ``decoder_pos_embed_a``) in omnimask's token order; the visual tables are MAE's, which the image
  tokenizer generates. All four are checked (max abs difference below 1e-4).

A mask, noise or prediction given in CAV-MAE's audio token order translates with
:func:`cav_to_omnimask_tokens` / :func:`omnimask_to_cav_tokens`, and omnimask's audio predictions
to CAV-MAE's patch layout with :func:`omnimask_audio_patches_to_cav`. Masks are bool, True =
hidden (CAV-MAE: float, 1 = removed).

Read from the tensors: width, depths (``blocks_a`` = ``blocks_v``, ``blocks_u``, decoder), MLP
ratios, q/k/v biases, patches, channels, the clip length (``pos_embed_a``'s tokens over
``num_mel_bins / kf`` rows) and the image size (``pos_embed_v``'s square grid). Options give the
rest, with CAV-MAE's published defaults: ``num_heads`` / ``decoder_num_heads`` (12 / 16 for the
768 / 512 widths, required for others), ``norm_pix_loss`` (true), ``mask_ratio_a`` /
``mask_ratio_v`` (0.75), ``mae_loss_weight`` (1.0, the scripts' value; argparse's is 3.0),
``contrast_loss_weight`` (0.01), ``temperature`` (0.05), ``bidirect_contrast`` (false: each visual
picks its audio), ``dataset_mean`` / ``dataset_std`` (-5.081 / 4.4849, the processor's ``mean`` /
``std``), ``num_mel_bins`` (128), ``norm_eps`` (1e-5, PyTorch's default that CAV-MAE keeps).

One difference is documented rather than refused: with more than one shared block, CAV-MAE's
pretraining contrastive loop does not chain them (each re-reads the modality's input, so only the
last acts); omnimask chains them, as CAV-MAE's retrieval (``forward_feat``) and fine-tuning do.
Weights, joint pass, reconstruction and retrieval features are exact; the contrastive loss of
continued pretraining is not the original's. Such files convert with a warning (the published ones
have one shared block, where both agree).

A file without decoder tensors becomes an ``OmniMaskModel`` checkpoint (its config names CAV-MAE's
default decoder). Refused with the reason: fine-tuned ``CAVMAEFT`` files (``mlp_head.*``): their
tables are trained (``tr_pos=True``; omnimask generates its tables) and their multimodal head pools
the joint pass over both modalities, which the runner's one-modality head cannot represent; learned
or mismatching tables; ``blocks_a`` / ``blocks_v`` of different depths; another framework's file
(AudioMAE, MAE: named); missing or unknown tensors (named).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from torch import Tensor

from ..backbone.pos_embed import sincos_2d_mae
from ..modalities.audio.tokenizer import sincos_2d_cav_mae
from ..modalities.image.tokenizer import IMAGENET_MEAN, IMAGENET_STD
from ..model_config import OmniMaskConfig
from . import CONVERTERS, ConversionError
from ._common import (
    Target,
    attention_heads,
    map_state,
    official_file,
    positive_int,
    read_checkpoint_file,
    unwrap_state,
    write_checkpoint,
)
from .hf_vitmae import _mlp_ratio

__all__ = [
    "convert_cav_mae",
    "cav_mae_state_to_omnimask",
    "load_cav_mae_checkpoint",
    "cav_to_omnimask_tokens",
    "omnimask_to_cav_tokens",
    "omnimask_audio_patches_to_cav",
]

log = logging.getLogger(__name__)

ENC = "omnimask."  # encoder prefix inside OmniMaskForPreTraining (empty for OmniMaskModel)
POS_TOLERANCE = 1e-4
#: CAV-MAE's published width -> heads (ViT-B), decoder width -> heads.
ENCODER_HEADS = {768: 12}
DECODER_HEADS = {512: 16}
#: CAV-MAE's default decoder (for the config of an encoder-only file).
DEFAULT_DECODER = {"dim": 512, "depth": 8, "num_heads": 16}
KEYS = {"a": "audio", "v": "image"}

_PARTS = tuple(
    f"{m}.{p}" for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2") for p in ("weight", "bias")
)
_MODALITY_NORMS = tuple(f"{n}_{s}.{p}" for n in ("norm1", "norm2") for s in "av" for p in ("weight", "bias"))
_BLOCK = re.compile(r"^(blocks_a|blocks_v|blocks_u|decoder_blocks)\.(\d+)\.(.+)$")
_BLOCK_BASE = {
    "blocks_a": ("enc", "encoder.specific_blocks.audio"),
    "blocks_v": ("enc", "encoder.specific_blocks.image"),
    "blocks_u": ("enc", "encoder.blocks"),
    "decoder_blocks": ("dec", "joint_decoder.blocks"),
}
_WB = ("weight", "bias")
_TOP: dict[str, tuple[str, str]] = {
    **{f"patch_embed_{s}.proj.{p}": ("enc", f"tokenizers.{k}.proj.{p}") for s, k in KEYS.items() for p in _WB},
    **{f"modality_{s}": ("enc", f"modality_embed.{k}") for s, k in KEYS.items()},
    **{f"pos_embed_{s}": ("enc", f"@pos_{s}") for s in KEYS},
    **{f"norm.{p}": ("enc", f"encoder.norm.{p}") for p in _WB},
    **{f"norm_{s}.{p}": ("enc", f"encoder.modality_final_norms.{k}.{p}") for s, k in KEYS.items() for p in _WB},
    **{f"decoder_embed.{p}": ("dec", f"joint_decoder.embed.{p}") for p in _WB},
    "mask_token": ("dec", "joint_decoder.mask_token"),
    **{f"decoder_modality_{s}": ("dec", f"decoders.{k}.modality_embed") for s, k in KEYS.items()},
    **{f"decoder_pos_embed_{s}": ("dec", f"@pos_{s}") for s in KEYS},
    **{f"decoder_norm.{p}": ("dec", f"joint_decoder.norm.{p}") for p in _WB},
    **{f"decoder_pred_{s}.{p}": ("dec", f"decoders.{k}.pred.{p}") for s, k in KEYS.items() for p in _WB},
}
_ENCODER_TOP = [k for k, (section, _) in _TOP.items() if section == "enc"]
_DECODER_TOP = [k for k, (section, _) in _TOP.items() if section == "dec"]


# ---- token orders ---------------------------------------------------------------------------------
def _order(grid: tuple[int, int]) -> Tensor:
    """For each omnimask audio token ``t * F' + f`` (grid = (T', F')), its CAV-MAE index ``f * T' + t``."""
    time, freq = grid
    return torch.arange(freq * time).reshape(freq, time).T.reshape(-1)


def cav_to_omnimask_tokens(x: Tensor, grid: tuple[int, int]) -> Tensor:
    """(B, N, ...) audio tokens (a mask, noise, features) in CAV-MAE's frequency-major order ->
    omnimask's time-major order. ``grid`` is omnimask's ``(T', F')`` token grid (1024 frames,
    128 bins, 16x16 patches: ``(64, 8)``)."""
    return x[:, _order(grid).to(x.device)]


def omnimask_to_cav_tokens(x: Tensor, grid: tuple[int, int]) -> Tensor:
    """The inverse of :func:`cav_to_omnimask_tokens`."""
    return x[:, torch.argsort(_order(grid)).to(x.device)]


def omnimask_audio_patches_to_cav(pred: Tensor, grid: tuple[int, int], patch_size: tuple[int, int]) -> Tensor:
    """omnimask's audio predictions or targets (B, T'F', kt*kf), time-major tokens with (time, freq)
    patch vectors -> CAV-MAE's (B, F'T', kf*kt): frequency-major tokens, (freq, time) patch vectors.
    ``patch_size`` is omnimask's ``(kt, kf)``."""
    kt, kf = patch_size
    return rearrange(omnimask_to_cav_tokens(pred, grid), "b n (kt kf) -> b n (kf kt)", kt=kt, kf=kf)


# ---- reading --------------------------------------------------------------------------------------
def load_cav_mae_checkpoint(path: Path) -> dict[str, Tensor]:
    """The state dict of a CAV-MAE ``.pth`` (``torch.load(weights_only=True)``; ``module.`` stripped).

    ``argparse.Namespace`` is allowed so that another framework's training file (AudioMAE, MAE)
    reaches the check that names it, instead of failing on its stored args.
    """
    obj = read_checkpoint_file(path, "model", [argparse.Namespace])
    return unwrap_state(obj, path, ("model", "state_dict"))


def _rename(key: str) -> Target | None:
    if key in _TOP:
        return (*_TOP[key], None)
    m = _BLOCK.match(key)
    if m is None:
        return None
    group, index, part = m.groups()
    section, base = _BLOCK_BASE[group]
    if part in _PARTS:
        return section, f"{base}.{index}.{part}", None
    if group == "blocks_u" and part in _MODALITY_NORMS:
        name, rest = part.split("_", 1)  # "norm1", "a.weight"
        side, param = rest.split(".")
        return "enc", f"{base}.{index}.modality_norms.{KEYS[side]}.{name}.{param}", None
    return None


def _count(state: dict[str, Tensor], group: str, where: str) -> int:
    ids = {int(m.group(2)) for k in state if (m := _BLOCK.match(k)) and m.group(1) == group}
    if ids and sorted(ids) != list(range(len(ids))):
        missing = sorted(set(range(max(ids) + 1)) - ids)
        raise ConversionError(f"{where}: {group}: blocks {missing} are missing (found {sorted(ids)})")
    return len(ids)


def _drop_unused_norms(state: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    """Drop the per-modality norms of the blocks that never use them (all but ``blocks_u``)."""
    unused = {k for k in state if (m := _BLOCK.match(k)) and m.group(1) != "blocks_u" and m.group(3) in _MODALITY_NORMS}
    if unused:
        log.info(
            "%s: dropped %d unused per-modality norm tensors of blocks_a/blocks_v/decoder_blocks", where, len(unused)
        )
    return {k: v for k, v in state.items() if k not in unused}


# ---- options --------------------------------------------------------------------------------------
def _number(value: Any, name: str, low: float | None = None, high: float | None = None, closed: bool = True) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (low is None or (value >= low if closed else value > low)) and (high is None or value < high)
    if not ok:
        if high is not None:
            rng = f" in {'[' if closed else '('}{low}, {high})"
        else:
            rng = "" if low is None else f" {'>=' if closed else '>'} {low}"
        raise ConversionError(f"option {name} must be a number{rng}, got {value!r}")
    return float(value)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConversionError(f"option {name} must be true or false, got {value!r}")
    return value


# ---- checks ---------------------------------------------------------------------------------------
def _identify(state: dict[str, Tensor], where: str) -> None:
    if "patch_embed_a.proj.weight" in state:
        return
    if "patch_embed.proj.weight" in state or "encoder.patch_embed.proj.weight" in state:
        raise ConversionError(
            f"{where}: not a CAV-MAE checkpoint: it has one patch embedding (patch_embed.proj.weight) and no "
            "patch_embed_a.proj.weight / patch_embed_v.proj.weight; a single-modality file (AudioMAE: --from "
            "audiomae, MAE: --from mae, VideoMAE: --from videomae)"
        )
    raise ConversionError(
        f"{where}: not a CAV-MAE checkpoint: patch_embed_a.proj.weight is missing (first keys: {sorted(state)[:8]})"
    )


def _table_diff(table: Tensor | None, expected: Tensor) -> float | None:
    """Max abs difference of a (1, N, d) source table with an (N, d) generated one (None: shape differs)."""
    if table is None or tuple(table.shape) != (1, *expected.shape):
        return None
    return float((table[0].float() - expected).abs().max())


def _check_table(table: Tensor, expected: Tensor, key: str, grid_text: str, where: str) -> None:
    diff = _table_diff(table, expected)
    if diff is None:
        raise ConversionError(
            f"{where}: {key} has shape {tuple(table.shape)}, expected (1, {expected.shape[0]}, {expected.shape[1]}) "
            f"for a {grid_text} grid"
        )
    if diff >= POS_TOLERANCE:
        raise ConversionError(
            f"{where}: {key} is not CAV-MAE's fixed sin-cos table on the {grid_text} grid (max abs diff {diff:.3g}): "
            "a learned table (tr_pos=True, as CAVMAEFT fine-tuning trains it) or another layout; omnimask generates "
            "its position tables and cannot carry learned ones"
        )


def _tables(dim: int, grid_a: tuple[int, int], side: int) -> tuple[Tensor, Tensor]:
    """omnimask's generated (audio, image) tables, in CAV-MAE's token orders, at width ``dim``."""
    audio = omnimask_to_cav_tokens(sincos_2d_cav_mae(dim, grid_a)[None], grid_a)[0]
    return audio, sincos_2d_mae(dim, (side, side))


def _refuse_finetuned(state: dict[str, Tensor], dim: int, grid_a: tuple[int, int], side: int, where: str) -> None:
    heads = sorted(k for k in state if k.startswith("mlp_head."))
    if not heads:
        return
    expected = _tables(dim, grid_a, side)
    learned = []
    for key, table in zip(("pos_embed_a", "pos_embed_v"), expected):
        diff = _table_diff(state.get(key), table)
        if diff is None or diff >= POS_TOLERANCE:
            learned.append(f"{key} (max abs diff {diff:.3g})" if diff is not None else key)
    tables = (
        f"its position tables {', '.join(learned)} were trained (CAVMAEFT's tr_pos=True), and omnimask generates "
        "fixed tables and cannot hold learned ones; besides, "
        if learned
        else ""
    )
    raise ConversionError(
        f"{where}: a fine-tuned CAV-MAE classifier (CAVMAEFT, has {heads[:4]}): {tables}its head (mlp_head = "
        "LayerNorm + Linear) pools the joint pass over both modalities' tokens in 'multimodal' mode (the mode is not "
        "stored in the file), which the fine-tuning runner's classifier_head.pt (one modality's tokens) cannot "
        "represent; convert the pretraining checkpoint (audio_model.N.pth of the pretraining run) instead"
    )


def _expected_keys(state: dict[str, Tensor], depths: dict[str, int], has_decoder: bool) -> list[str]:
    """The official keys a file of these depths holds (biases as the first block of each stack has them)."""
    keys = list(_ENCODER_TOP) + (list(_DECODER_TOP) if has_decoder else [])
    for group, n in depths.items():
        if group == "decoder_blocks" and not has_decoder:
            continue
        has_qkv_bias = f"{group}.0.attn.qkv.bias" in state
        parts = [p for p in _PARTS if has_qkv_bias or p != "attn.qkv.bias"]
        parts += list(_MODALITY_NORMS) if group == "blocks_u" else []
        keys += [f"{group}.{i}.{p}" for i in range(n) for p in parts]
    return keys


def _shape(state: dict[str, Tensor], key: str, ndim: int, what: str, where: str) -> tuple[int, ...]:
    t = state[key]
    if t.ndim != ndim:
        raise ConversionError(f"{where}: {key} has shape {tuple(t.shape)}; expected {what}")
    return tuple(int(s) for s in t.shape)


def _grids(state: dict[str, Tensor], num_mel_bins: int, where: str) -> dict[str, Any]:
    """Patch sizes, channels and token grids read from the kernels and the encoder tables."""
    dim, ca, kf, kt = _shape(state, "patch_embed_a.proj.weight", 4, "a 4-D (dim, 1, kf, kt) kernel", where)
    dim_v, cv, p, q = _shape(state, "patch_embed_v.proj.weight", 4, "a 4-D (dim, C, p, q) kernel", where)
    if ca != 1 or dim_v != dim:
        raise ConversionError(
            f"{where}: patch_embed_a.proj.weight {(dim, ca, kf, kt)} and patch_embed_v.proj.weight {(dim_v, cv, p, q)}: "
            "expected one input channel for audio and the same width for both"
        )
    if num_mel_bins % kf:
        raise ConversionError(f"option num_mel_bins={num_mel_bins} is not divisible by the audio patch height {kf}")
    freq = num_mel_bins // kf
    table_a, table_v = state["pos_embed_a"], state["pos_embed_v"]
    n_a = int(table_a.shape[1]) if table_a.ndim == 3 else 0
    if table_a.ndim != 3 or table_a.shape[0] != 1 or table_a.shape[2] != dim or n_a == 0 or n_a % freq:
        raise ConversionError(
            f"{where}: pos_embed_a has shape {tuple(table_a.shape)}; expected (1, {freq} * T', {dim}) for "
            f"{num_mel_bins} mel bins in patches of {kf} (T' time columns of {kt} frames)"
        )
    n_v = int(table_v.shape[1]) if table_v.ndim == 3 else 0
    side = math.isqrt(n_v)
    if table_v.ndim != 3 or side * side != n_v or n_v == 0:
        raise ConversionError(
            f"{where}: pos_embed_v has shape {tuple(table_v.shape)}; expected (1, s * s, {dim}) for a square image grid"
        )
    return dict(dim=dim, channels=cv, patch_a=(kt, kf), patch_v=(p, q), grid_a=(n_a // freq, freq), side=side)


def _depths(state: dict[str, Tensor], where: str) -> dict[str, int]:
    depths = {g: _count(state, g, where) for g in ("blocks_a", "blocks_v", "blocks_u", "decoder_blocks")}
    if depths["blocks_a"] != depths["blocks_v"]:
        raise ConversionError(
            f"{where}: {depths['blocks_a']} blocks_a but {depths['blocks_v']} blocks_v; CAV-MAE (and omnimask's "
            "modality_specific_depth) gives both modalities the same number of modality-specific blocks"
        )
    if depths["blocks_a"] + depths["blocks_u"] == 0:
        raise ConversionError(f"{where}: no encoder blocks (blocks_a.N / blocks_u.N)")
    return depths


def _mlp(state: dict[str, Tensor], group: str, width: int) -> float:
    key = f"{group}.0.mlp.fc1.weight"
    return _mlp_ratio(width, int(state[key].shape[0]), key)


# ---- the conversion -------------------------------------------------------------------------------
def _decoder_config(
    state: dict[str, Tensor], depth: int, decoder_num_heads: Any, out_dims: dict[str, int], eps: float, where: str
) -> dict:
    ddim = int(state["decoder_embed.weight"].shape[0])
    for s, k in KEYS.items():
        rows = int(state[f"decoder_pred_{s}.weight"].shape[0])
        if rows != out_dims[k]:
            raise ConversionError(
                f"{where}: decoder_pred_{s}.weight predicts {rows} values per token; a {k} patch has {out_dims[k]}"
            )
    if depth == 0:
        raise ConversionError(f"{where}: the checkpoint has decoder tensors but no decoder_blocks.N")
    return dict(
        dim=ddim,
        depth=depth,
        num_heads=attention_heads(
            ddim,
            decoder_num_heads,
            DECODER_HEADS,
            "decoder_num_heads",
            "decoder",
            f"CAV-MAE's published one ({sorted(DECODER_HEADS)})",
        ),
        mlp_ratio=_mlp(state, "decoder_blocks", ddim),
        qkv_bias="decoder_blocks.0.attn.qkv.bias" in state,
        norm_eps=eps,
        modality_embed=True,
    )


def _map(state: dict[str, Tensor], g: dict[str, Any], decoder: dict | None, where: str) -> dict[str, Tensor]:
    """Rename, check and drop the tables, transpose the audio kernel, reorder the audio head's rows."""
    enc = ENC if decoder is not None else ""
    out = map_state(state, _rename, {"enc": enc, "dec": ""})
    (time, freq), side = g["grid_a"], g["side"]
    grid_texts = {"a": f"{freq} x {time} (frequency x time)", "v": f"{side} x {side}"}
    tables = {"enc": _tables(g["dim"], g["grid_a"], side)}
    if decoder is not None:
        tables["dec"] = _tables(decoder["dim"], g["grid_a"], side)
    for section, expected in tables.items():
        for s, table in zip(KEYS, expected):
            key = f"{'decoder_' if section == 'dec' else ''}pos_embed_{s}"
            _check_table(out.pop(f"{section}@pos_{s}"), table, key, grid_texts[s], where)
    kernel = f"{enc}tokenizers.audio.proj.weight"
    out[kernel] = out[kernel].transpose(2, 3).contiguous()
    if decoder is not None:
        kt, kf = g["patch_a"]
        for p in _WB:
            name = f"decoders.audio.pred.{p}"
            out[name] = rearrange(out[name], "(kf kt) ... -> (kt kf) ...", kf=kf, kt=kt).contiguous()
    return out


def cav_mae_state_to_omnimask(
    state: dict[str, Tensor],
    *,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
    norm_pix_loss: bool = True,
    mask_ratio_a: float = 0.75,
    mask_ratio_v: float = 0.75,
    mae_loss_weight: float = 1.0,
    contrast_loss_weight: float = 0.01,
    temperature: float = 0.05,
    bidirect_contrast: bool = False,
    dataset_mean: float = -5.081,
    dataset_std: float = 4.4849,
    num_mel_bins: int = 128,
    norm_eps: float = 1e-5,
    where: str = "checkpoint",
) -> tuple[OmniMaskConfig, dict[str, Tensor], bool]:
    """Infer the config of an official CAV-MAE state dict (``module.`` already stripped) and map its
    tensors (see the module docstring for the options).

    Returns:
        (config, omnimask state dict, has_decoder).
    """
    ratios = {k: _number(v, n, 0.0, 1.0, closed=False) for k, v, n in
              (("audio", mask_ratio_a, "mask_ratio_a"), ("image", mask_ratio_v, "mask_ratio_v"))}  # fmt: skip
    mae_w = _number(mae_loss_weight, "mae_loss_weight", 0.0)
    nce_w = _number(contrast_loss_weight, "contrast_loss_weight", 0.0)
    temperature = _number(temperature, "temperature", 0.0, closed=False)
    std = _number(dataset_std, "dataset_std", 0.0, closed=False)
    eps = _number(norm_eps, "norm_eps", 0.0, closed=False)
    mean = _number(dataset_mean, "dataset_mean")
    norm_pix, symmetric = _flag(norm_pix_loss, "norm_pix_loss"), _flag(bidirect_contrast, "bidirect_contrast")
    num_mel_bins = positive_int(num_mel_bins, "num_mel_bins")

    _identify(state, where)
    for key in ("patch_embed_v.proj.weight", "pos_embed_a", "pos_embed_v"):
        if key not in state:
            raise ConversionError(f"{where}: {key} is missing; every CAV-MAE checkpoint has it")
    g = _grids(state, num_mel_bins, where)
    _refuse_finetuned(state, g["dim"], g["grid_a"], g["side"], where)
    state = _drop_unused_norms(state, where)
    depths = _depths(state, where)
    has_decoder = any(k.startswith("decoder_") or k == "mask_token" for k in state)
    missing = [k for k in _expected_keys(state, depths, has_decoder) if k not in state]
    if missing:
        raise ConversionError(f"{where}: {len(missing)} CAV-MAE tensor(s) missing: {missing[:12]}")
    dim, first = g["dim"], "blocks_a" if depths["blocks_a"] else "blocks_u"
    encoder = dict(
        dim=dim,
        depth=depths["blocks_a"] + depths["blocks_u"],
        num_heads=attention_heads(
            dim, num_heads, ENCODER_HEADS, "num_heads", "encoder", f"CAV-MAE's published one ({sorted(ENCODER_HEADS)})"
        ),
        mlp_ratio=_mlp(state, first, dim),
        qkv_bias=f"{first}.0.attn.qkv.bias" in state,
        norm_eps=eps,
        cls_token=False,
        modality_embed=True,
        modality_specific_depth=depths["blocks_a"],
        modality_norms=True,
    )
    if depths["blocks_u"] > 1:
        log.warning(
            "%s: %d shared blocks: CAV-MAE's pretraining contrastive branch applies only the last of them to each "
            "modality alone (its loop does not chain), omnimask chains all of them as CAV-MAE's retrieval and "
            "fine-tuning do; weights, joint pass and retrieval features are exact, the contrastive loss of continued "
            "pretraining differs from the original's",
            where,
            depths["blocks_u"],
        )
    (kt, kf), (p, q), c = g["patch_a"], g["patch_v"], g["channels"]
    out_dims = {"audio": kt * kf, "image": p * q * c}
    decoder = (
        _decoder_config(state, depths["decoder_blocks"], decoder_num_heads, out_dims, eps, where)
        if has_decoder
        else None
    )
    objective = {"name": "mse", "norm": "patch" if norm_pix else "none"}
    rgb = c == 3
    modalities = {
        "audio": {
            "tokenizer": dict(
                target_length=g["grid_a"][0] * kt,
                num_mel_bins=num_mel_bins,
                patch_size=[kt, kf],
                in_chans=1,
                pos_embed="cav_mae",
            ),
            "processor": {"mean": [mean], "std": [std], "sample_rate": 16000},
        },
        "image": {
            "tokenizer": dict(image_size=[g["side"] * p, g["side"] * q], patch_size=[p, q], in_chans=c),
            "processor": {
                "mean": list(IMAGENET_MEAN) if rgb else [0.0] * c,
                "std": list(IMAGENET_STD) if rgb else [1.0] * c,
            },
        },
    }
    for k, m in modalities.items():
        m.update(masking={"name": "random", "ratio": ratios[k]}, objective=dict(objective), loss_weight=mae_w)
    joint = dict(DEFAULT_DECODER, norm_eps=eps) if decoder is None else decoder
    config = OmniMaskConfig(
        encoder=encoder,
        modalities=modalities,
        joint_decoder={"modalities": ["audio", "image"], **joint},
        contrastive={
            "name": "infonce",
            "modalities": ["audio", "image"],
            "weight": nce_w,
            "temperature": temperature,
            "symmetric": symmetric,
        },
    )
    return config, _map(state, g, decoder, where), has_decoder


@CONVERTERS.register("cav-mae")
def convert_cav_mae(
    src: Path,
    dst_dir: Path,
    *,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
    norm_pix_loss: bool = True,
    mask_ratio_a: float = 0.75,
    mask_ratio_v: float = 0.75,
    mae_loss_weight: float = 1.0,
    contrast_loss_weight: float = 0.01,
    temperature: float = 0.05,
    bidirect_contrast: bool = False,
    dataset_mean: float = -5.081,
    dataset_std: float = 4.4849,
    num_mel_bins: int = 128,
    norm_eps: float = 1e-5,
) -> Path:
    """Convert an official CAV-MAE pretraining checkpoint (``.pth`` file or a directory holding one).

    With its decoder it becomes an ``OmniMaskForPreTraining`` checkpoint (modalities ``audio`` and
    ``image``, a joint decoder, the InfoNCE term), without one an ``OmniMaskModel`` checkpoint.
    Options: see the module docstring. Returns ``dst_dir``.
    """
    path = official_file(Path(src))
    config, mapped, has_decoder = cav_mae_state_to_omnimask(
        load_cav_mae_checkpoint(path),
        num_heads=num_heads,
        decoder_num_heads=decoder_num_heads,
        norm_pix_loss=norm_pix_loss,
        mask_ratio_a=mask_ratio_a,
        mask_ratio_v=mask_ratio_v,
        mae_loss_weight=mae_loss_weight,
        contrast_loss_weight=contrast_loss_weight,
        temperature=temperature,
        bidirect_contrast=bidirect_contrast,
        dataset_mean=dataset_mean,
        dataset_std=dataset_std,
        num_mel_bins=num_mel_bins,
        norm_eps=norm_eps,
        where=str(path),
    )
    return write_checkpoint(config, mapped, has_decoder, path, Path(dst_dir), "the shapes and options")
