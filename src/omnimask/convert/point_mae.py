"""Official Point-MAE checkpoints (Pang-Yatian/Point-MAE) -> omnimask.

Point-MAE saves ``{"base_model": state_dict, "optimizer": ..., "epoch": ..., ...}`` with DDP's
``module.`` prefix on every key. Two layouts exist:

* **pretraining** (``Point_MAE``): ``MAE_encoder.encoder.{first,second}_conv`` (the mini-PointNet,
  kernel-1 ``Conv1d`` + ``BatchNorm1d``), ``MAE_encoder.pos_embed`` (centre MLP),
  ``MAE_encoder.blocks.blocks.<i>`` (timm-style blocks, no q/k/v bias), ``MAE_encoder.norm``,
  ``mask_token``, ``decoder_pos_embed``, ``MAE_decoder.blocks.<i>``, ``MAE_decoder.norm`` and
  ``increase_dim.0`` (``Conv1d(dim, 3*k, 1)``) -> :class:`~omnimask.OmniMaskForPreTraining`;
* **fine-tuned** (``PointTransformer``): the same encoder without the ``MAE_encoder.`` prefix, plus
  ``cls_token``/``cls_pos`` and the classification head ``cls_head_finetune`` (dropped, logged)
  -> encoder-only :class:`~omnimask.OmniMaskModel` with ``[CLS]`` and its position.

The converted model groups points exactly like the checkpoint's training code: FPS from index 0,
never picking points with squared norm <= 1e-3 (pointnet2's kernel), the kernel's tie order, and
positions re-added before every block. With the same cloud and mask it gives the same predictions
and Chamfer loss (``tests/test_convert_point_mae.py``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from torch import Tensor

from ..model_config import OmniMaskConfig
from ..ops.geometry import POINTNET2_MIN_NORM_SQ
from . import CONVERTERS, ConversionError
from ._common import Target, block_count, load_state_file, map_state, official_file, positive_int, write_checkpoint

__all__ = ["convert_point_mae", "point_mae_state_to_omnimask"]

log = logging.getLogger(__name__)

_BLOCK_PARTS = {
    f"{m}.{p}": f"{m}.{p}"
    for m in ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
    for p in ("weight", "bias")
}
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_CONV_LAYERS = {"0": ("weight", "bias"), "1": _BN, "3": ("weight", "bias")}
_HEAD = "cls_head_finetune."


def _renamer(enc: str):
    """Renamer for Point-MAE keys whose encoder part starts with ``enc`` (``"MAE_encoder."`` or ``""``)."""
    block = re.compile(rf"^{re.escape(enc)}blocks\.blocks\.(\d+)\.(.+)$")
    dec_block = re.compile(r"^MAE_decoder\.blocks\.(\d+)\.(.+)$")
    table: dict[str, Target] = {}
    for src, dst in (("first_conv", "first"), ("second_conv", "second")):
        for layer, params in _CONV_LAYERS.items():
            for p in params:
                table[f"{enc}encoder.{src}.{layer}.{p}"] = ("enc", f"tokenizers.points.embed.{dst}.{layer}.{p}", None)
    for layer in ("0", "2"):
        for p in ("weight", "bias"):
            table[f"{enc}pos_embed.{layer}.{p}"] = ("enc", f"tokenizers.points.pos_embed.{layer}.{p}", None)
            table[f"decoder_pos_embed.{layer}.{p}"] = ("top", f"decoder_pos_embed.points.{layer}.{p}", None)
    for p in ("weight", "bias"):
        table[f"{enc}norm.{p}"] = ("enc", f"encoder.norm.{p}", None)
        table[f"MAE_decoder.norm.{p}"] = ("dec", f"norm.{p}", None)
        table[f"increase_dim.0.{p}"] = ("dec", f"pred.{p}", None)
    table["mask_token"] = ("dec", "mask_token", None)
    table["cls_token"] = ("enc", "cls_token", None)
    table["cls_pos"] = ("enc", "cls_pos", None)

    def rename(key: str) -> Target | None:
        if key in table:
            return table[key]
        for section, pattern, base in (("enc", block, "encoder.blocks"), ("dec", dec_block, "blocks")):
            m = pattern.match(key)
            if m and m.group(2) in _BLOCK_PARTS:
                return section, f"{base}.{m.group(1)}.{_BLOCK_PARTS[m.group(2)]}", None
        return None

    return rename


def _squeeze_convs(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Kernel-1 ``Conv1d`` weights (out, in, 1) -> ``Linear`` weights (out, in)."""
    return {
        k: v.squeeze(-1) if v.ndim == 3 and k.endswith(".weight") and v.shape[-1] == 1 else v for k, v in state.items()
    }


def point_mae_state_to_omnimask(
    state: dict[str, Tensor],
    *,
    num_points: int = 1024,
    num_groups: int = 64,
    group_size: int | None = None,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
    mask_ratio: float = 0.6,
    mask_type: str = "rand",
    loss: str = "cdl2",
    drop_path: float = 0.1,
    where: str = "checkpoint",
) -> tuple[OmniMaskConfig, dict[str, Tensor], bool]:
    """Config + renamed state of a Point-MAE state dict; returns ``(config, state, has_decoder)``."""
    pretraining = any(k.startswith("MAE_encoder.") for k in state)
    enc = "MAE_encoder." if pretraining else ""
    if f"{enc}norm.weight" not in state or f"{enc}encoder.second_conv.3.weight" not in state:
        raise ConversionError(
            f"{where}: not a Point-MAE checkpoint: no {enc}norm.weight / {enc}encoder.second_conv.3.weight "
            f"(keys start with {sorted({k.split('.')[0] for k in state})[:8]})"
        )
    head = sorted(k for k in state if k.startswith(_HEAD))
    if head:
        log.info("%s: dropping the fine-tuning classification head (%d tensors)", where, len(head))
        state = {k: v for k, v in state.items() if not k.startswith(_HEAD)}
    has_decoder = "increase_dim.0.weight" in state
    if pretraining and not has_decoder:
        raise ConversionError(f"{where}: a pretraining checkpoint without its decoder head increase_dim.0")
    dim = state[f"{enc}norm.weight"].shape[0]
    depth = block_count(state, f"{enc}blocks.")
    fc1 = state.get(f"{enc}blocks.blocks.0.mlp.fc1.weight")
    if depth == 0 or fc1 is None:
        raise ConversionError(f"{where}: no encoder blocks ({enc}blocks.blocks.<i>.*)")
    mlp_ratio = fc1.shape[0] / dim
    qkv_bias = f"{enc}blocks.blocks.0.attn.qkv.bias" in state
    heads = positive_int(num_heads, "num_heads") if num_heads is not None else (6 if dim == 384 else None)
    if heads is None:
        raise ConversionError(
            f"{where}: the encoder width {dim} is not Point-MAE's 384, so its number of attention heads is unknown; "
            "pass it with the option num_heads=N (CLI: --option num_heads=N)"
        )
    if has_decoder:
        out = state["increase_dim.0.weight"].shape[0]
        if out % 3:
            raise ConversionError(f"{where}: increase_dim.0 predicts {out} values per group, not a multiple of 3")
        if group_size is not None and positive_int(group_size, "group_size") != out // 3:
            raise ConversionError(
                f"{where}: option group_size={group_size}, but the decoder predicts {out // 3} points per group"
            )
        group_size = out // 3
    group_size = positive_int(32 if group_size is None else group_size, "group_size")
    if mask_type not in ("rand", "block"):
        raise ConversionError(f"option mask_type must be 'rand' or 'block' (Point-MAE's names), got {mask_type!r}")
    if loss not in ("cdl1", "cdl2"):
        raise ConversionError(f"option loss must be 'cdl1' or 'cdl2' (Point-MAE's names), got {loss!r}")
    if dim % heads:
        raise ConversionError(f"option num_heads={heads} does not divide the encoder width {dim}")
    encoder = {
        "dim": dim,
        "depth": depth,
        "num_heads": heads,
        "mlp_ratio": mlp_ratio,
        "qkv_bias": qkv_bias,
        "norm_eps": 1e-5,
        "drop_path": drop_path,
        "cls_token": "cls_token" in state,
        "pos_every_block": True,
        "modality_embed": False,
    }
    points: dict[str, Any] = {
        "tokenizer": {
            "num_points": positive_int(num_points, "num_points"),
            "num_groups": positive_int(num_groups, "num_groups"),
            "group_size": group_size,
            "fps_start": 0,
            "fps_min_norm_sq": POINTNET2_MIN_NORM_SQ,
            "fps_ties": "pointnet2",
        },
        "masking": {
            "name": "random" if mask_type == "rand" else "nearest_block",
            "ratio": float(mask_ratio),
            "count": "hidden",
        },
        # cdl1 keeps omnimask's 1e-12 under the square root: finite gradients at coincident points.
        "objective": {"name": "chamfer", "norm": "l2" if loss == "cdl2" else "l1"},
    }
    if has_decoder:
        dec_depth = block_count(state, "MAE_decoder.")
        dec_heads = positive_int(decoder_num_heads, "decoder_num_heads") if decoder_num_heads is not None else heads
        if dim % dec_heads:
            raise ConversionError(f"option decoder_num_heads={dec_heads} does not divide the decoder width {dim}")
        points["decoder"] = {
            "name": "transformer",
            "dim": None,
            "depth": dec_depth,
            "num_heads": dec_heads,
            "mlp_ratio": mlp_ratio,
            "qkv_bias": qkv_bias,
            "norm_eps": 1e-5,
            "project": False,
            "pos_every_block": True,
            "predict": "hidden",
            "drop_path": drop_path,
        }
    config = OmniMaskConfig(encoder=encoder, modalities={"points": points})
    prefix = {"enc": "omnimask." if has_decoder else "", "dec": "decoders.points.", "top": ""}
    mapped = map_state(
        state,
        _renamer(enc),
        prefix,
        unknown_hint=lambda keys: (
            " (the encoder of a pretraining checkpoint lives under MAE_encoder.; a fine-tuned one at the top level)"
        ),
    )
    return config, _squeeze_convs(mapped), has_decoder


@CONVERTERS.register("point-mae")
def convert_point_mae(
    src: Path,
    dst_dir: Path,
    *,
    num_points: int = 1024,
    num_groups: int = 64,
    group_size: int | None = None,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
    mask_ratio: float = 0.6,
    mask_type: str = "rand",
    loss: str = "cdl2",
    drop_path: float = 0.1,
) -> Path:
    """Convert an official Point-MAE checkpoint (``.pth`` file, or a directory holding one).

    Options (the file holds no config; defaults are ``cfgs/pretrain.yaml``'s): ``num_points``
    (1024) and ``num_groups`` (64; 128 or 512 for some fine-tuning configs); ``group_size`` (read
    from a pretraining checkpoint's head, else 32); ``num_heads``/``decoder_num_heads`` (6 for the
    384-wide model); ``mask_ratio`` (0.6), ``mask_type`` (``rand`` or ``block``), ``loss``
    (``cdl2`` or ``cdl1``), ``drop_path`` (0.1). Returns ``dst_dir``.
    """
    path = official_file(Path(src))
    config, state, has_decoder = point_mae_state_to_omnimask(
        load_state_file(path, ("base_model", "model")),
        num_points=num_points,
        num_groups=num_groups,
        group_size=group_size,
        num_heads=num_heads,
        decoder_num_heads=decoder_num_heads,
        mask_ratio=mask_ratio,
        mask_type=mask_type,
        loss=loss,
        drop_path=drop_path,
        where=str(path),
    )
    return write_checkpoint(config, state, has_decoder, path, Path(dst_dir), "the shapes and options")
