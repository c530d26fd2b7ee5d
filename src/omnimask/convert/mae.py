"""``mae``: official facebookresearch/mae checkpoints -> omnimask.

The source is a ``.pth`` file (or a directory holding one): ``{"model": state_dict}`` as released,
or a training checkpoint ``{"model", "optimizer", "epoch", "scaler", "args"}`` (the
``argparse.Namespace`` is allowed by the weights-only load; a DDP ``module.`` prefix is stripped).
Keys are timm-0.3.2 style and map one to one::

    patch_embed.proj                      -> tokenizers.image.proj
    cls_token (+ pos_embed[:, 0])         -> cls_token
    blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}
                                          -> encoder.blocks.N.<same>
    norm                                  -> encoder.norm
    decoder_embed / mask_token            -> decoders.image.embed / mask_token
    decoder_blocks.N.<...>                -> decoders.image.blocks.N.<same>
    decoder_norm / decoder_pred           -> decoders.image.norm / pred

Three kinds of file convert:

* pretraining files as released (``mae_pretrain_vit_*.pth``: the encoder only) -> ``OmniMaskModel``;
* files that keep the decoder (the demo's ``mae_visualize_vit_large.pth``, training checkpoints)
  -> ``OmniMaskForPreTraining``;
* fine-tuned classifiers (``models_vit``): the encoder -> ``OmniMaskModel`` with
  ``final_norm: false``, and the head -> ``classifier_head.pt`` in the layout the fine-tuning
  runner saves (``fc_norm``, ``head``, ``modality``, ``pool``, ``num_classes``; plus
  ``fc_norm_eps``, 1e-6 for MAE). ``global_pool`` files (``fc_norm`` + ``head``, no ``norm``) pool
  the mean of the un-normed patch tokens (``pool: mean``); ``[CLS]`` files (``norm`` + ``head``)
  take the ``[CLS]`` token, and their ``norm`` becomes the head's ``fc_norm`` (a LayerNorm acts
  per token, so ``norm(x)[:, 0] == norm(x[:, 0])``). A linear probe's ``head.0`` BatchNorm is
  folded into ``head.1`` (exact at inference).

The file holds no config: widths, depths, MLP ratio, patch size, channels and q/k/v biases come
from tensor shapes; the image size from ``pos_embed``'s length (MAE's grid is square). Head counts
are not in the weights: ``num_heads`` defaults to MAE's for the width (768 -> 12, 1024 -> 16,
1280 -> 16) and ``decoder_num_heads`` to 16 for MAE's 512-wide decoder; other widths need the
options. ``norm_pix_loss`` and ``mask_ratio`` come from the options, else the file's ``args``,
else MAE's argparse defaults (false, 0.75; the visualize files were trained on raw pixels).

Position tables are not weights in omnimask: ``pos_embed`` / ``decoder_pos_embed`` are *checked*
against the generated MAE sin-cos tables. The encoder table's ``[CLS]`` row is folded into
``cls_token`` (what MAE adds to it); the decoder's must be zero. Refused with the reason: tables
that differ (fine-tuning trains ``pos_embed``, so most fine-tuned files are refused; linear probes
keep it fixed and convert), a classifier with both or neither of ``norm`` / ``fc_norm``, unmapped
tensors (all named).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..backbone.pos_embed import sincos_2d_mae
from ..modalities.image.tokenizer import IMAGENET_MEAN, IMAGENET_STD
from ..model_config import OmniMaskConfig
from . import CONVERTERS, ConversionError
from ._common import (
    Target,
    attention_heads,
    block_count,
    map_state,
    official_file,
    read_checkpoint_file,
    unwrap_state,
    write_checkpoint,
)
from .hf_vitmae import _mlp_ratio

__all__ = [
    "convert_mae",
    "mae_state_to_omnimask",
    "load_mae_checkpoint",
    "ClassifierHead",
    "write_classifier_head",
    "ENCODER_HEADS",
    "DECODER_HEADS",
]

log = logging.getLogger(__name__)

ENC = "omnimask."  # encoder prefix inside OmniMaskForPreTraining (empty for OmniMaskModel)
DEC = "decoders.image."
POS_TOLERANCE = 1e-4
EPS = 1e-6  # partial(nn.LayerNorm, eps=1e-6) everywhere in MAE, fc_norm and the probe's BatchNorm too
#: MAE's ViT sizes (B, L, H): encoder width -> heads; its decoder is 512 wide with 16 heads.
ENCODER_HEADS = {768: 12, 1024: 16, 1280: 16}
DECODER_HEADS = {512: 16}
CLASSIFIER_HEAD_FILE = "classifier_head.pt"
_SIZES = f"one of MAE's model sizes {sorted(ENCODER_HEADS)}"

_PARTS = {
    f"{m}.{p}" for m in ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2") for p in ("weight", "bias")
}
_BLOCK = re.compile(r"^(blocks|decoder_blocks)\.(\d+)\.(.+)$")
_TOP: dict[str, tuple[str, str]] = {
    "patch_embed.proj.weight": ("enc", "tokenizers.image.proj.weight"),
    "patch_embed.proj.bias": ("enc", "tokenizers.image.proj.bias"),
    "cls_token": ("enc", "@cls"),
    "pos_embed": ("enc", "@pos"),
    "norm.weight": ("enc", "encoder.norm.weight"),
    "norm.bias": ("enc", "encoder.norm.bias"),
    "mask_token": ("dec", "mask_token"),
    "decoder_pos_embed": ("dec", "@pos"),
    **{f"decoder_{m}.{p}": ("dec", f"{m}.{p}") for m in ("embed", "norm", "pred") for p in ("weight", "bias")},
}
_HEAD_KEYS = re.compile(r"^(fc_norm|head)(\.\d+)?\.")


def _rename(key: str) -> Target | None:
    if key in _TOP:
        return (*_TOP[key], None)
    m = _BLOCK.match(key)
    if m and m.group(3) in _PARTS:
        section, base = ("enc", "encoder.blocks") if m.group(1) == "blocks" else ("dec", "blocks")
        return section, f"{base}.{m.group(2)}.{m.group(3)}", None
    return None


def _unknown_hint(keys: list[str]) -> str:
    if any(re.search(r"\.(gamma_[12]|ls[12]\.)", k) for k in keys):
        return " (LayerScale: MAE blocks have none, nor do omnimask's)"
    if any(k.startswith(("encoder.", "decoder.")) for k in keys):
        return " (encoder./decoder. prefixes: a VideoMAE checkpoint? use --from videomae)"
    return ""


# ---------------------------------------------------------------------------------------------
# classifier heads (shared with the VideoMAE converters)


@dataclass
class ClassifierHead:
    """A fine-tuned classifier's head in the fine-tuning runner's layout: ``head(fc_norm(pool(x)))``."""

    fc_norm: dict[str, Tensor]
    head: dict[str, Tensor]
    modality: str
    pool: str  # "mean" of the modality's tokens or "cls"
    fc_norm_eps: float

    @property
    def num_classes(self) -> int:
        return int(self.head["weight"].shape[0])

    def check(self, dim: int, where: str) -> None:
        shapes = {f"fc_norm.{k}": tuple(v.shape) for k, v in self.fc_norm.items()}
        shapes.update({f"head.{k}": tuple(v.shape) for k, v in self.head.items()})
        want = {"fc_norm.weight": (dim,), "fc_norm.bias": (dim,), "head.weight": (self.num_classes, dim)}
        want["head.bias"] = (self.num_classes,)
        if shapes != want:
            raise ConversionError(f"{where}: the classification head's tensors {shapes} do not fit width {dim}: {want}")


def write_classifier_head(dst: Path, head: ClassifierHead) -> Path:
    """Save ``dst/classifier_head.pt`` as :mod:`omnimask.runners.finetune` does (plus ``fc_norm_eps``).

    Load it with ``torch.load(path, weights_only=True)``; ``nn.LayerNorm(dim, eps=fc_norm_eps)``
    and ``nn.Linear(dim, num_classes)`` take its ``fc_norm`` / ``head`` state dicts.
    """
    path = Path(dst) / CLASSIFIER_HEAD_FILE
    torch.save(
        {
            "fc_norm": {k: v.detach().clone().contiguous() for k, v in head.fc_norm.items()},
            "head": {k: v.detach().clone().contiguous() for k, v in head.head.items()},
            "modality": head.modality,
            "pool": head.pool,
            "num_classes": head.num_classes,
            "fc_norm_eps": float(head.fc_norm_eps),
        },
        path,
    )
    log.info("wrote the classification head (%d classes, pool %s) to %s", head.num_classes, head.pool, path)
    return path


def _fold_batchnorm(state: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    """A linear probe's ``head.0`` BatchNorm (eval statistics, optional affine) folded into ``head.1``."""
    need = ("head.0.running_mean", "head.0.running_var", "head.1.weight", "head.1.bias")
    lacking = [k for k in need if k not in state]
    if lacking:
        raise ConversionError(f"{where}: a linear-probe head (head.0 BatchNorm + head.1 Linear) lacks {lacking}")
    mean, var = state["head.0.running_mean"].double(), state["head.0.running_var"].double()
    gamma = state["head.0.weight"].double() if "head.0.weight" in state else torch.ones_like(mean)
    beta = state["head.0.bias"].double() if "head.0.bias" in state else torch.zeros_like(mean)
    scale = gamma / (var + EPS).sqrt()
    weight, bias = state["head.1.weight"].double(), state["head.1.bias"].double()
    dtype = state["head.1.weight"].dtype
    return {"weight": (weight * scale).to(dtype), "bias": (bias + weight @ (beta - mean * scale)).to(dtype)}


def _split_classifier(state: dict[str, Tensor], where: str) -> tuple[dict[str, Tensor], ClassifierHead | None]:
    """``(encoder tensors, head)``: a ``models_vit`` classifier's head taken out (``None`` if there is none)."""
    head_keys = [k for k in state if _HEAD_KEYS.match(k)]
    if not head_keys:
        return state, None
    rest = {k: v for k, v in state.items() if k not in head_keys}
    if "head.0.running_mean" in state or "head.1.weight" in state:
        head = _fold_batchnorm(state, where)
    elif "head.weight" in state and "head.bias" in state:
        head = {"weight": state["head.weight"], "bias": state["head.bias"]}
    else:
        raise ConversionError(f"{where}: classifier tensors {sorted(head_keys)} without a complete head.weight/bias")
    has_fc_norm, has_norm = "fc_norm.weight" in state, "norm.weight" in state
    if has_fc_norm == has_norm:
        what = "both the encoder's norm and fc_norm" if has_norm else "neither norm nor fc_norm"
        raise ConversionError(
            f"{where}: a classifier with {what}; MAE's global_pool classifier has only fc_norm (after mean pooling), "
            "its [CLS] classifier only norm"
        )
    if has_fc_norm:  # global_pool: mean of the un-normed patch tokens, then fc_norm
        norm = {p: state.get(f"fc_norm.{p}") for p in ("weight", "bias")}
        pool = "mean"
    else:  # [CLS]: norm(x)[:, 0] is norm(x[:, 0]), so the encoder's norm becomes the head's
        norm = {p: rest.pop(f"norm.{p}", None) for p in ("weight", "bias")}
        pool = "cls"
    if any(v is None for v in norm.values()):
        raise ConversionError(f"{where}: the classifier's LayerNorm lacks its weight or bias")
    return rest, ClassifierHead(norm, head, "image", pool, EPS)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# reading, options, tables


def load_mae_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a MAE checkpoint file: ``(state dict, training args as a dict or {})``."""
    obj = read_checkpoint_file(path, "model", [argparse.Namespace])
    raw = obj.get("args") if isinstance(obj, dict) else None
    args = vars(raw) if isinstance(raw, argparse.Namespace) else dict(raw) if isinstance(raw, dict) else {}
    return unwrap_state(obj, path, ("model", "module")), args


def _resolve(option: Any, args: dict, key: str, default: Any, kind: type, name: str) -> Any:
    """An explicit option, else the checkpoint's training arg, else MAE's default; type-checked."""
    value = option if option is not None else args.get(key, default)
    if kind is bool and not isinstance(value, bool):
        raise ConversionError(f"option {name} must be true or false, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1):
        raise ConversionError(f"option {name} must be a number in (0, 1), got {value!r}")
    return float(value) if kind is float else value


def _grid(state: dict[str, Tensor], dim: int, where: str) -> int:
    """The side of MAE's square token grid, from ``pos_embed`` (1, 1 + side^2, dim)."""
    table = state.get("pos_embed")
    if table is None:
        raise ConversionError(f"{where}: pos_embed is missing, so the image size is unknown (MAE files store it)")
    n = int(table.shape[1]) - 1 if table.ndim == 3 else -1
    side = math.isqrt(n) if n > 0 else 0
    if table.ndim != 3 or table.shape[0] != 1 or table.shape[2] != dim or side * side != n:
        raise ConversionError(
            f"{where}: pos_embed has shape {tuple(table.shape)}; MAE's is (1, 1 + side^2, {dim}) for a square grid "
            "(a non-square grid: an AudioMAE checkpoint? use --from audiomae)"
        )
    return side


def _check_table(table: Tensor, side: int, what: str, zero_cls_row: bool) -> None:
    """Raise unless ``table`` (1, 1 + side^2, d) is MAE's fixed 2-D sin-cos table (its cls row zero if asked)."""
    dim = int(table.shape[-1])
    if tuple(table.shape) != (1, 1 + side * side, dim):
        raise ConversionError(f"{what} has shape {tuple(table.shape)}, expected (1, {1 + side * side}, {dim})")
    diff = float((table[0, 1:].float() - sincos_2d_mae(dim, (side, side))).abs().max())
    if diff >= POS_TOLERANCE:
        raise ConversionError(
            f"{what} differs from MAE's fixed 2-D sin-cos table (max abs diff {diff:.3g}): a learned table (fine-tuning "
            "trains pos_embed); omnimask generates its tables and cannot carry learned ones"
        )
    if zero_cls_row and float(table[0, 0].abs().max()) >= POS_TOLERANCE:
        raise ConversionError(f"{what} has a non-zero cls row; MAE's decoder table has zeros there")


# ---------------------------------------------------------------------------------------------
# config and tensors


def _encoder_config(state: dict[str, Tensor], num_heads: Any, final_norm: bool, where: str) -> dict:
    dim = int(state["patch_embed.proj.weight"].shape[0])
    depth, fc1 = block_count(state, ""), state.get("blocks.0.mlp.fc1.weight")
    if depth == 0 or fc1 is None:
        raise ConversionError(f"{where}: no encoder blocks (blocks.N.*; first keys: {sorted(state)[:8]})")
    return dict(
        dim=dim,
        depth=depth,
        num_heads=attention_heads(dim, num_heads, ENCODER_HEADS, "num_heads", "encoder", _SIZES),
        mlp_ratio=_mlp_ratio(dim, int(fc1.shape[0]), "blocks.0.mlp.fc1.weight"),
        qkv_bias="blocks.0.attn.qkv.bias" in state,
        norm_eps=EPS,
        cls_token=True,
        modality_embed=False,
        final_norm=final_norm,
    )


def _decoder_config(state: dict[str, Tensor], decoder_num_heads: Any, patch_dim: int, where: str) -> dict:
    embed, dfc1 = state.get("decoder_embed.weight"), state.get("decoder_blocks.0.mlp.fc1.weight")
    if embed is None or dfc1 is None:
        raise ConversionError(
            f"{where}: the checkpoint has decoder tensors but lacks decoder_embed.weight or decoder_blocks.0.*"
        )
    pred = state.get("decoder_pred.weight")
    if pred is not None and int(pred.shape[0]) != patch_dim:
        raise ConversionError(
            f"{where}: decoder_pred.weight predicts {int(pred.shape[0])} values per token; a patch has {patch_dim}"
        )
    ddim = int(embed.shape[0])
    return dict(
        name="transformer",
        dim=ddim,
        depth=block_count(state, "decoder_"),
        num_heads=attention_heads(ddim, decoder_num_heads, DECODER_HEADS, "decoder_num_heads", "decoder", _SIZES),
        mlp_ratio=_mlp_ratio(ddim, int(dfc1.shape[0]), "decoder_blocks.0.mlp.fc1.weight"),
        qkv_bias="decoder_blocks.0.attn.qkv.bias" in state,
        norm_eps=EPS,
        context="all",  # MAE decodes [CLS] + the grid
        embed_bias="decoder_embed.bias" in state,
    )


def _map_tensors(state: dict[str, Tensor], has_decoder: bool, side: int, where: str) -> dict[str, Tensor]:
    """Rename, check the position tables, fold the encoder table's cls row into ``cls_token``."""
    prefix = {"enc": ENC if has_decoder else "", "dec": DEC}
    out = map_state(state, _rename, prefix, unknown_hint=_unknown_hint)
    table = out.pop("enc@pos")
    _check_table(table, side, f"{where}: pos_embed", zero_cls_row=False)
    if "enc@cls" not in out:
        raise ConversionError(f"{where}: cls_token is missing; MAE encoders have one")
    cls = out.pop("enc@cls")
    out[prefix["enc"] + "cls_token"] = (cls.float() + table[:, :1].float()).to(cls.dtype)
    dec_table = out.pop("dec@pos", None)
    if has_decoder and dec_table is None:
        log.warning("%s: no decoder_pos_embed in the checkpoint; assuming MAE's fixed sin-cos table", where)
    elif dec_table is not None:
        _check_table(dec_table, side, f"{where}: decoder_pos_embed", zero_cls_row=True)
    return out


def mae_state_to_omnimask(
    state: dict[str, Tensor],
    args: dict[str, Any] | None = None,
    *,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
    norm_pix_loss: bool | None = None,
    mask_ratio: float | None = None,
    where: str = "checkpoint",
) -> tuple[OmniMaskConfig, dict[str, Tensor], bool, ClassifierHead | None]:
    """Infer the config of an official MAE state dict (plus its training ``args``) and map its tensors.

    Returns:
        (config, omnimask state dict, has_decoder, classification head or None).
    """
    args = dict(args or {})
    proj = state.get("patch_embed.proj.weight")
    if proj is None or proj.ndim != 4:
        found = "missing" if proj is None else f"{proj.ndim}-D"
        raise ConversionError(
            f"{where}: not a MAE checkpoint: patch_embed.proj.weight is {found} (MAE's is a 4-D (dim, C, p, p) "
            f"patch embedding; first keys: {sorted(state)[:8]})"
        )
    state, head = _split_classifier(state, where)
    has_decoder = any(k.startswith("decoder_") for k in state)
    if head is not None and has_decoder:
        raise ConversionError(f"{where}: a classification head and a decoder in one file; MAE writes one or the other")
    if not has_decoder and "mask_token" in state:
        log.warning("%s: mask_token without a decoder is dropped (only a decoder uses it)", where)
        state = {k: v for k, v in state.items() if k != "mask_token"}
    dim, channels, p, q = (int(s) for s in proj.shape)
    side = _grid(state, dim, where)
    encoder = _encoder_config(state, num_heads, head is None, where)
    if has_decoder:
        decoder = _decoder_config(state, decoder_num_heads, p * q * channels, where)
    else:  # no decoder weights: the config still names one; MAE's dec512d8b
        decoder = dict(name="transformer", dim=512, depth=8, num_heads=16, norm_eps=EPS, context="all")
    rgb = channels == 3
    image = {
        "tokenizer": {"image_size": [side * p, side * q], "patch_size": [p, q], "in_chans": channels},
        "masking": {"name": "random", "ratio": _resolve(mask_ratio, args, "mask_ratio", 0.75, float, "mask_ratio")},
        "decoder": decoder,
        "objective": {
            "name": "mse",
            "norm": "patch" if _resolve(norm_pix_loss, args, "norm_pix_loss", False, bool, "norm_pix_loss") else "none",
        },
        "processor": {
            "mean": list(IMAGENET_MEAN) if rgb else [0.0] * channels,
            "std": list(IMAGENET_STD) if rgb else [1.0] * channels,
        },
    }
    config = OmniMaskConfig(encoder=encoder, modalities={"image": image})
    out = _map_tensors(state, has_decoder, side, where)
    if head is not None:
        head.check(dim, where)
    return config, out, has_decoder, head


@CONVERTERS.register("mae")
def convert_mae(
    src: Path,
    dst_dir: Path,
    *,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
    norm_pix_loss: bool | None = None,
    mask_ratio: float | None = None,
) -> Path:
    """Convert an official MAE checkpoint (``.pth`` file, or a directory holding one).

    Options (the weights hold no config): ``num_heads`` -- encoder attention heads, which the
    weights cannot tell; default MAE's for the width (768 -> 12, 1024 -> 16, 1280 -> 16), required
    for other widths. ``decoder_num_heads`` -- likewise (16 for MAE's 512-wide decoder).
    ``norm_pix_loss`` -- per-patch normalised targets (default: the file's ``args``, else false).
    ``mask_ratio`` -- random masking ratio (default: the file's ``args``, else 0.75).

    A file with a decoder becomes an ``OmniMaskForPreTraining`` checkpoint, an encoder-only one an
    ``OmniMaskModel`` checkpoint, a fine-tuned classifier an ``OmniMaskModel`` checkpoint without a
    final norm plus ``classifier_head.pt``. Returns ``dst_dir``.
    """
    path = official_file(Path(src))
    state, args = load_mae_checkpoint(path)
    config, mapped, has_decoder, head = mae_state_to_omnimask(
        state,
        args,
        num_heads=num_heads,
        decoder_num_heads=decoder_num_heads,
        norm_pix_loss=norm_pix_loss,
        mask_ratio=mask_ratio,
        where=str(path),
    )
    dst = write_checkpoint(config, mapped, has_decoder, path, Path(dst_dir), "the shapes and options")
    if head is not None:
        write_classifier_head(dst, head)
    return dst
