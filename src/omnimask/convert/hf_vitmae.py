"""``hf-vitmae``: transformers' ViTMAE checkpoints (``ViTMAEForPreTraining``, ``ViTMAEModel``) -> omnimask.

Three key layouts exist for the same weights and all are accepted (after an optional ``vit.``
prefix on encoder keys, which ``ViTMAEModel`` files lack):

* hub/legacy (``facebook/vit-mae-*``, and what transformers 5.x ``save_pretrained`` writes for the
  encoder): ``encoder.layer.N.attention.attention.{query,key,value}``, ``attention.output.dense``,
  ``intermediate.dense``, ``output.dense``; decoder ``decoder.decoder_layers.N.<same>``;
* in-memory 5.x: ``layers.N.attention.{q,k,v,o}_proj``, ``layers.N.mlp.{fc1,fc2}``;
* 5.x ``save_pretrained`` quirk for the decoder: ``decoder.decoder_encoder.layer.N.<legacy names>``.

Separate q/k/v projections are fused into omnimask's ``attn.qkv`` (rows ``[q; k; v]``). Position
tables are not weights in omnimask (it generates MAE's sin-cos tables), so they are *checked*
against the generated ones instead of copied; the encoder table's ``[CLS]`` row is folded into
``cls_token``, which is exactly how ViTMAE uses it. Nothing is dropped silently: an unmapped
source key is an error.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from ..backbone.pos_embed import sincos_2d_mae
from ..modalities.image.tokenizer import IMAGENET_MEAN, IMAGENET_STD
from ..model_config import OmniMaskConfig
from . import CONVERTERS, ConversionError
from ._common import map_state, write_checkpoint

__all__ = ["convert_hf_vitmae", "vitmae_state_to_omnimask", "vitmae_config_to_omnimask", "load_hf_state_dict"]

log = logging.getLogger(__name__)

ENC = "omnimask."  # encoder prefix inside OmniMaskForPreTraining (empty for OmniMaskModel)
DEC = "decoders.image."
POS_TOLERANCE = 1e-4

# Sub-module of one transformer layer, in every source spelling -> (omnimask name, q/k/v slot).
_LAYER_PARTS: dict[str, tuple[str, int | None]] = {
    "layernorm_before": ("norm1", None),
    "layernorm_after": ("norm2", None),
    "attention.attention.query": ("attn.qkv", 0),
    "attention.attention.key": ("attn.qkv", 1),
    "attention.attention.value": ("attn.qkv", 2),
    "attention.q_proj": ("attn.qkv", 0),
    "attention.k_proj": ("attn.qkv", 1),
    "attention.v_proj": ("attn.qkv", 2),
    "attention.output.dense": ("attn.proj", None),
    "attention.o_proj": ("attn.proj", None),
    "intermediate.dense": ("mlp.fc1", None),
    "mlp.fc1": ("mlp.fc1", None),
    "output.dense": ("mlp.fc2", None),
    "mlp.fc2": ("mlp.fc2", None),
}
_ENC_LAYER = re.compile(r"^(?:encoder\.layer|layers)\.(\d+)\.(.+)\.(weight|bias)$")
_DEC_LAYER = re.compile(r"^decoder\.(?:decoder_layers|decoder_encoder\.layer)\.(\d+)\.(.+)\.(weight|bias)$")
# Keys outside the layers. "@..." targets are position tables / the cls token, handled specially.
_TOP: dict[str, tuple[str, str]] = {
    "embeddings.cls_token": ("enc", "@cls"),
    "embeddings.position_embeddings": ("enc", "@pos"),
    "embeddings.patch_embeddings.projection.weight": ("enc", "tokenizers.image.proj.weight"),
    "embeddings.patch_embeddings.projection.bias": ("enc", "tokenizers.image.proj.bias"),
    "layernorm.weight": ("enc", "encoder.norm.weight"),
    "layernorm.bias": ("enc", "encoder.norm.bias"),
    "decoder.mask_token": ("dec", "mask_token"),
    "decoder.decoder_pos_embed": ("dec", "@pos"),
    **{f"decoder.decoder_{m}.{p}": ("dec", f"{m}.{p}") for m in ("embed", "norm", "pred") for p in ("weight", "bias")},
}


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def _mlp_ratio(dim: int, hidden: int, where: str) -> float:
    """``hidden / dim``, nudged up where float rounding would make ``int(dim * ratio)`` one short."""
    ratio = hidden / dim
    for _ in range(8):
        if int(dim * ratio) == hidden:
            return ratio
        ratio = math.nextafter(ratio, math.inf)
    raise ConversionError(f"{where}: intermediate size {hidden} cannot be expressed as an MLP ratio of width {dim}")


def _check_hf_config(hf: dict, where: str = "config") -> None:
    if hf.get("model_type", "vit_mae") != "vit_mae":
        raise ConversionError(
            f"{where}: model_type is {hf.get('model_type')!r}, expected 'vit_mae' (a transformers ViTMAE checkpoint)"
        )
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        # omnimask blocks use exact GELU; another activation would change every output.
        raise ConversionError(f"{where}: hidden_act {act!r} is not supported; omnimask blocks use exact 'gelu'")
    dim, heads = hf.get("hidden_size", 768), hf.get("num_attention_heads", 12)
    if hf.get("head_dim") not in (None, dim // heads):
        raise ConversionError(
            f"{where}: head_dim {hf['head_dim']} != hidden_size / num_attention_heads; omnimask needs that"
        )


def vitmae_config_to_omnimask(hf: dict, preprocessor: dict | None = None) -> OmniMaskConfig:
    """Map a ViTMAE ``config.json`` dict (and optional ``preprocessor_config.json``) to an OmniMaskConfig."""
    _check_hf_config(hf)
    dim, ddim = hf.get("hidden_size", 768), hf.get("decoder_hidden_size", 512)
    eps, qkv_bias = hf.get("layer_norm_eps", 1e-12), hf.get("qkv_bias", True)
    encoder = dict(
        dim=dim,
        depth=hf.get("num_hidden_layers", 12),
        num_heads=hf.get("num_attention_heads", 12),
        mlp_ratio=_mlp_ratio(dim, hf.get("intermediate_size", 3072), "intermediate_size"),
        qkv_bias=qkv_bias,
        norm_eps=eps,
        cls_token=True,
        modality_embed=False,
        # Dropouts only act in training; ViTMAE applies hidden dropout after each residual branch.
        attn_drop=hf.get("attention_probs_dropout_prob", 0.0),
        proj_drop=hf.get("hidden_dropout_prob", 0.0),
    )
    decoder = dict(
        name="transformer",
        dim=ddim,
        depth=hf.get("decoder_num_hidden_layers", 8),
        num_heads=hf.get("decoder_num_attention_heads", 16),
        mlp_ratio=_mlp_ratio(ddim, hf.get("decoder_intermediate_size", 2048), "decoder_intermediate_size"),
        qkv_bias=qkv_bias,
        norm_eps=eps,  # ViTMAE's decoder layers copy the encoder's config
    )
    pre = preprocessor or {}
    image = {
        "tokenizer": {
            "image_size": list(_pair(hf.get("image_size", 224))),
            "patch_size": list(_pair(hf.get("patch_size", 16))),
            "in_chans": hf.get("num_channels", 3),
        },
        "masking": {"name": "random", "ratio": hf.get("mask_ratio", 0.75)},
        "decoder": decoder,
        "objective": {"name": "mse", "norm": "patch" if hf.get("norm_pix_loss", False) else "none"},
        "processor": {
            "mean": list(pre.get("image_mean", IMAGENET_MEAN)),
            "std": list(pre.get("image_std", IMAGENET_STD)),
        },
    }
    return OmniMaskConfig(encoder=encoder, modalities={"image": image})


def _rename(key: str) -> tuple[str, str, int | None] | None:
    """Source key -> (section "enc"/"dec", omnimask name within the section, q/k/v slot), None if unknown."""
    if key.startswith("vit."):
        key = key[4:]
    if key in _TOP:
        return (*_TOP[key], None)
    for section, pattern, base in (("enc", _ENC_LAYER, "encoder.blocks"), ("dec", _DEC_LAYER, "blocks")):
        m = pattern.match(key)
        if m and m.group(2) in _LAYER_PARTS:
            name, slot = _LAYER_PARTS[m.group(2)]
            return section, f"{base}.{m.group(1)}.{name}.{m.group(3)}", slot
    return None


def _check_table(table: Tensor, dim: int, grid: tuple[int, int], what: str, with_cls_row: bool) -> None:
    """Raise unless ``table`` (1, 1+N, dim) is MAE's sin-cos table (its cls row zero if ``with_cls_row``)."""
    expected = sincos_2d_mae(dim, grid)
    if tuple(table.shape) != (1, 1 + expected.shape[0], dim):
        want = (1, 1 + expected.shape[0], dim)
        raise ConversionError(
            f"{what} position table has shape {tuple(table.shape)}, expected {want} for a {grid[0]}x{grid[1]} grid"
        )
    t = table[0].float()
    if not bool(t.any()):
        raise ConversionError(
            f"{what} position table is all zeros: the source model was never initialised (a transformers 5.x "
            "ViTMAE built from a config has zero position tables until pretrained weights are loaded)"
        )
    rows = t if with_cls_row else t[1:]
    ref = torch.cat([torch.zeros(1, dim), expected]) if with_cls_row else expected
    diff = float((rows - ref).abs().max())
    if diff >= POS_TOLERANCE:
        raise ConversionError(
            f"{what} position table differs from MAE's fixed 2-D sin-cos table (max abs diff {diff:.3g}); "
            "omnimask generates these tables and cannot carry learned or modified ones"
        )


def vitmae_state_to_omnimask(state: dict[str, Tensor], hf_config: dict) -> dict[str, Tensor]:
    """Map a ViTMAE state dict (any layout) to omnimask keys.

    Returns ``OmniMaskForPreTraining`` keys when ``state`` has a decoder, else ``OmniMaskModel`` keys.

    Raises:
        ConversionError: unknown keys, incomplete q/k/v, duplicate tensors, or non-MAE position tables.
    """
    _check_hf_config(hf_config)
    has_decoder = any(k.startswith("decoder.") for k in state)
    prefix = {"enc": ENC if has_decoder else "", "dec": DEC}
    out = map_state(state, _rename, prefix)

    grid = tuple(
        s // p for s, p in zip(_pair(hf_config.get("image_size", 224)), _pair(hf_config.get("patch_size", 16)))
    )
    for section, what in (("enc", "encoder"), ("dec", "decoder")):
        table = out.pop(f"{section}@pos", None)
        if table is None:
            if section == "enc" or has_decoder:
                log.warning("no %s position table in the source; assuming MAE's fixed sin-cos table", what)
            continue
        dim = table.shape[-1]
        # The encoder's cls row is folded into cls_token below; the decoder's cannot be, so it must be zero.
        _check_table(table, dim, grid, what, with_cls_row=section == "dec")  # type: ignore[arg-type]
        if section == "enc" and "enc@cls" in out:
            cls = out["enc@cls"]
            out["enc@cls"] = (cls.float() + table[:, :1].float()).to(cls.dtype)
    if "enc@cls" in out:
        out[prefix["enc"] + "cls_token"] = out.pop("enc@cls")
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConversionError(f"{path} is not valid JSON: {err}") from None


def _torch_load(path: Path) -> dict[str, Tensor]:
    # weights_only: a checkpoint must never be able to run code while it is read.
    state = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConversionError(f"{path} does not hold a flat state dict of tensors")
    return state


def load_hf_state_dict(src_dir: Path) -> dict[str, Tensor]:
    """Read a transformers checkpoint's weights: safetensors (single or sharded), else ``pytorch_model.bin``."""
    readers = (("model.safetensors", lambda p: load_file(str(p))), ("pytorch_model.bin", _torch_load))
    for name, read in readers:
        if (src_dir / name).is_file():
            return read(src_dir / name)
        index = src_dir / f"{name}.index.json"
        if index.is_file():
            state: dict[str, Tensor] = {}
            for shard in sorted(set(_read_json(index).get("weight_map", {}).values())):
                if not (src_dir / shard).is_file():
                    raise FileNotFoundError(f"{index} names shard {shard!r}, which is missing from {src_dir}")
                state.update(read(src_dir / shard))
            return state
    found = sorted(p.name for p in src_dir.iterdir())
    raise FileNotFoundError(
        f"no weights in {src_dir}: expected model.safetensors, model.safetensors.index.json or pytorch_model.bin "
        f"(the directory holds {found})"
    )


@CONVERTERS.register("hf-vitmae")
def convert_hf_vitmae(src_dir: Path, dst_dir: Path) -> Path:
    """Convert a transformers ViTMAE checkpoint directory into an omnimask checkpoint in ``dst_dir``.

    A source with a decoder becomes an ``OmniMaskForPreTraining`` checkpoint, an encoder-only one
    (``ViTMAEModel``) an ``OmniMaskModel`` checkpoint. Returns ``dst_dir``.
    """
    src, dst = Path(src_dir), Path(dst_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"source checkpoint directory {src} does not exist")
    cfg_path = src / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: {src} is not a transformers checkpoint directory")
    hf_config = _read_json(cfg_path)
    if hf_config.get("model_type") != "vit_mae":
        raise ConversionError(
            f"{cfg_path}: model_type is {hf_config.get('model_type')!r}, but hf-vitmae converts 'vit_mae' checkpoints"
        )
    pre_path = src / "preprocessor_config.json"
    config = vitmae_config_to_omnimask(hf_config, _read_json(pre_path) if pre_path.is_file() else None)
    state = vitmae_state_to_omnimask(load_hf_state_dict(src), hf_config)
    return write_checkpoint(config, state, any(k.startswith(ENC) for k in state), src, dst, "config.json")
