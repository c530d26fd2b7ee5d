"""VideoMAE key tables for :mod:`omnimask.convert.hf_videomae`: source key -> omnimask key.

Renamers (``key -> (section, name, q/k/v slot)`` or ``None``, see
:func:`omnimask.convert._common.map_state`) for the two VideoMAE layouts, the transformers one
(:func:`hf_rename`) and the official MCG-NJU one (:func:`official_renamer`), plus what both share:
the target prefix of each section, the hint added to an unknown-key error and taking a fine-tuned
classifier's head out (:func:`split_classifier`). The key mapping
itself is documented in :mod:`omnimask.convert.hf_videomae`.
"""

from __future__ import annotations

import re

from torch import Tensor

from . import ConversionError
from ._common import Renamer, Target
from .mae import ClassifierHead

__all__ = [
    "DEC",
    "DECODER_KEYS",
    "ENC",
    "hf_rename",
    "official_renamer",
    "split_classifier",
    "target_prefixes",
    "unknown_hint",
]

ENC = "omnimask."  # encoder prefix inside OmniMaskForPreTraining (empty for OmniMaskModel)
DEC = "decoders.video."


# ---------------------------------------------------------------------------------------------
# transformers layout

# Sub-module of one transformers VideoMAE layer -> (omnimask name, q/k/v slot).
_HF_LAYER_PARTS: dict[str, tuple[str, int | None]] = {
    "layernorm_before.weight": ("norm1.weight", None),
    "layernorm_before.bias": ("norm1.bias", None),
    "layernorm_after.weight": ("norm2.weight", None),
    "layernorm_after.bias": ("norm2.bias", None),
    "attention.attention.query.weight": ("attn.qkv.weight", 0),
    "attention.attention.key.weight": ("attn.qkv.weight", 1),
    "attention.attention.value.weight": ("attn.qkv.weight", 2),
    "attention.attention.q_bias": ("attn.qkv.bias", 0),  # hub layout
    "attention.attention.v_bias": ("attn.qkv.bias", 2),
    "attention.attention.query.bias": ("attn.qkv.bias", 0),  # in-memory layout
    "attention.attention.value.bias": ("attn.qkv.bias", 2),
    "attention.output.dense.weight": ("attn.proj.weight", None),
    "attention.output.dense.bias": ("attn.proj.bias", None),
    "intermediate.dense.weight": ("mlp.fc1.weight", None),
    "intermediate.dense.bias": ("mlp.fc1.bias", None),
    "output.dense.weight": ("mlp.fc2.weight", None),
    "output.dense.bias": ("mlp.fc2.bias", None),
}
_HF_ENC_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_HF_DEC_LAYER = re.compile(r"^decoder\.decoder_layers\.(\d+)\.(.+)$")
_HF_TOP: dict[str, tuple[str, str]] = {
    "embeddings.patch_embeddings.projection.weight": ("enc", "tokenizers.video.proj.weight"),
    "embeddings.patch_embeddings.projection.bias": ("enc", "tokenizers.video.proj.bias"),
    "layernorm.weight": ("enc", "encoder.norm.weight"),
    "layernorm.bias": ("enc", "encoder.norm.bias"),
    "encoder_to_decoder.weight": ("dec", "embed.weight"),
    "mask_token": ("dec", "mask_token"),
    "decoder.norm.weight": ("dec", "norm.weight"),
    "decoder.norm.bias": ("dec", "norm.bias"),
    "decoder.head.weight": ("dec", "pred.weight"),
    "decoder.head.bias": ("dec", "pred.bias"),
}
#: Key prefixes of decoder tensors (the same in both layouts).
DECODER_KEYS = ("encoder_to_decoder.", "mask_token", "decoder.")


def hf_rename(key: str) -> Target | None:
    """Renamer for transformers VideoMAE keys (with or without the ``videomae.`` prefix)."""
    if key.startswith("videomae."):
        key = key[len("videomae.") :]
    if key in _HF_TOP:
        return (*_HF_TOP[key], None)
    for section, pattern, base in (("enc", _HF_ENC_LAYER, "encoder.blocks"), ("dec", _HF_DEC_LAYER, "blocks")):
        m = pattern.match(key)
        if m and m.group(2) in _HF_LAYER_PARTS:
            name, slot = _HF_LAYER_PARTS[m.group(2)]
            return section, f"{base}.{m.group(1)}.{name}", slot
    return None


# ---------------------------------------------------------------------------------------------
# official MCG-NJU layout

_OFFICIAL_BLOCK_PARTS: dict[str, tuple[str, int | None]] = {
    **{
        f"{m}.{p}": (f"{m}.{p}", None)
        for m in ("norm1", "norm2", "attn.proj", "mlp.fc1", "mlp.fc2")
        for p in ("weight", "bias")
    },
    "attn.qkv.weight": ("attn.qkv.weight", None),  # already fused, rows [q; k; v]
    "attn.q_bias": ("attn.qkv.bias", 0),
    "attn.v_bias": ("attn.qkv.bias", 2),
}
_OFFICIAL_DEC_BLOCK = re.compile(r"^decoder\.blocks\.(\d+)\.(.+)$")
_OFFICIAL_DEC_TOP: dict[str, str] = {
    "encoder_to_decoder.weight": "embed.weight",
    "mask_token": "mask_token",
    "decoder.norm.weight": "norm.weight",
    "decoder.norm.bias": "norm.bias",
    "decoder.head.weight": "pred.weight",
    "decoder.head.bias": "pred.bias",
}


def official_renamer(enc_prefix: str) -> Renamer:
    """Renamer for official keys whose encoder part starts with ``enc_prefix`` (``"encoder."`` or ``""``)."""
    enc_block = re.compile(rf"^{re.escape(enc_prefix)}blocks\.(\d+)\.(.+)$")
    enc_top = {
        f"{enc_prefix}patch_embed.proj.weight": "tokenizers.video.proj.weight",
        f"{enc_prefix}patch_embed.proj.bias": "tokenizers.video.proj.bias",
        f"{enc_prefix}norm.weight": "encoder.norm.weight",
        f"{enc_prefix}norm.bias": "encoder.norm.bias",
        f"{enc_prefix}pos_embed": "@pos",
    }

    def rename(key: str) -> Target | None:
        if key in enc_top:
            return "enc", enc_top[key], None
        if key in _OFFICIAL_DEC_TOP:
            return "dec", _OFFICIAL_DEC_TOP[key], None
        for section, pattern, base in (("dec", _OFFICIAL_DEC_BLOCK, "blocks"), ("enc", enc_block, "encoder.blocks")):
            m = pattern.match(key)
            if m and m.group(2) in _OFFICIAL_BLOCK_PARTS:
                name, slot = _OFFICIAL_BLOCK_PARTS[m.group(2)]
                return section, f"{base}.{m.group(1)}.{name}", slot
        return None

    return rename


# ---------------------------------------------------------------------------------------------
# shared by both layouts: target prefixes, hints for unknown keys


def target_prefixes(has_decoder: bool) -> dict[str, str]:
    """Target prefix of each section: the encoder's is empty for an encoder-only checkpoint."""
    return {"enc": ENC if has_decoder else "", "dec": DEC}


def unknown_hint(keys: list[str]) -> str:
    """What an unknown-key error adds when ``keys`` look like a classifier or LayerScale."""
    if any(re.search(r"(^|\.)(fc_norm|classifier|head)\.", k) and not k.startswith("decoder.") for k in keys):
        return (
            " (a classification head: convert the checkpoint with convert_hf_videomae / convert_videomae, which "
            "take the head out with split_classifier and write classifier_head.pt)"
        )
    if any(re.search(r"\.gamma_[12]$", k) for k in keys):
        return " (LayerScale gamma_1/gamma_2: omnimask blocks have no LayerScale)"
    return ""


# ---------------------------------------------------------------------------------------------
# fine-tuned classifiers (both layouts): the head in front of the encoder

_HEAD = re.compile(r"^(fc_norm|classifier|head)\.(weight|bias)$")


def split_classifier(state: dict[str, Tensor], fc_norm_eps: float, where: str) -> tuple[dict, ClassifierHead | None]:
    """``(encoder tensors, head)``: a mean-pooling classifier's ``fc_norm`` and linear head
    (``classifier`` in transformers, ``head`` in the official code) taken out; ``None`` without one.

    Raises:
        ConversionError: a head that reads the first patch token (no ``fc_norm``), an incomplete head,
            or a head next to a decoder.
    """
    keys = sorted(k for k in state if _HEAD.match(k))
    if not keys:
        return state, None
    if any(k.startswith(DECODER_KEYS) for k in state):
        raise ConversionError(
            f"{where}: tensors {keys} are a classification head, but the checkpoint has a decoder too"
        )
    if "fc_norm.weight" not in state:
        raise ConversionError(
            f"{where}: tensors {keys} are a classification head on the first patch token (no fc_norm: "
            "use_mean_pooling false); omnimask's classifier pools the mean of the tokens or a [CLS] token, "
            "which VideoMAE lacks"
        )
    linear = "classifier" if "classifier.weight" in state else "head"
    lacking = [k for k in ("fc_norm.bias", f"{linear}.weight", f"{linear}.bias") if k not in state]
    if lacking:
        raise ConversionError(f"{where}: the classification head {keys} lacks {lacking}")
    norm = {p: state[f"fc_norm.{p}"] for p in ("weight", "bias")}
    head = {p: state[f"{linear}.{p}"] for p in ("weight", "bias")}
    rest = {k: v for k, v in state.items() if k not in keys}
    return rest, ClassifierHead(norm, head, "video", "mean", fc_norm_eps)
