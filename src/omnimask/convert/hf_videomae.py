"""VideoMAE checkpoints -> omnimask: ``hf-videomae`` (transformers) and ``videomae`` (official MCG-NJU).

``hf-videomae`` reads a transformers checkpoint *directory* (``config.json`` + weights) of
``VideoMAEForPreTraining`` or the encoder-only ``VideoMAEModel``. Two spellings of the attention
biases are accepted: the hub layout (and what transformers 5.x ``save_pretrained`` writes),
``attention.attention.{q_bias, v_bias}``, and the in-memory layout, ``attention.attention.{query,
value}.bias``. Everything else has one spelling::

    videomae.embeddings.patch_embeddings.projection   -> omnimask.tokenizers.video.proj
    videomae.encoder.layer.N.{layernorm_before, layernorm_after, attention.output.dense,
                              intermediate.dense, output.dense}
                                                      -> omnimask.encoder.blocks.N.{norm1, norm2, attn.proj, mlp.fc1, mlp.fc2}
    videomae.encoder.layer.N.attention.attention.{query, key, value}.weight -> ...attn.qkv.weight  (rows [q; k; v])
    videomae.layernorm                                -> omnimask.encoder.norm
    encoder_to_decoder.weight (no bias)               -> decoders.video.embed.weight
    mask_token                                        -> decoders.video.mask_token
    decoder.decoder_layers.N.<as the encoder>         -> decoders.video.blocks.N.<...>
    decoder.norm / decoder.head                       -> decoders.video.norm / pred

(``VideoMAEModel`` files lack the ``videomae.`` prefix and the decoder.) With ``use_mean_pooling:
true`` (``VideoMAEConfig``'s default) the encoder has no ``videomae.layernorm``: the converted
encoder gets ``final_norm: false``. ``VideoMAEForVideoClassification`` with mean pooling converts
to that encoder plus ``classifier_head.pt`` (``fc_norm``, ``classifier`` -> ``head``, pool ``mean``,
``fc_norm_eps`` 1e-5), the layout omnimask's fine-tuning runner saves.

``videomae`` reads the official repository's ``.pth`` (a file, or a directory holding one):
``{"model": state_dict}`` (or ``"module"``, or the bare state dict; a DDP ``module.`` prefix is
stripped) with ``encoder.patch_embed.proj``, ``encoder.blocks.N.{norm1, attn.qkv.weight,
attn.q_bias, attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``encoder.norm``,
``encoder_to_decoder.weight``, ``mask_token``, ``decoder.blocks.N.*``, ``decoder.norm``,
``decoder.head``; fine-tuned classifiers (``patch_embed``, ``blocks.N``, ``fc_norm``, ``head``, no
final ``norm``) convert to an encoder with ``final_norm: false`` plus ``classifier_head.pt``
(``fc_norm_eps`` 1e-6). The file holds no config: widths, depths, channels, tube and patch size, MLP
ratio and whether there is a decoder come from tensor shapes; head counts from VideoMAE's model
sizes (or ``num_heads`` / ``decoder_num_heads`` options); ``num_frames``, ``image_size``,
``norm_pix`` and ``mask_ratio`` from options (defaults: VideoMAE's 16 frames, 224 px, normalised
targets, tube masking 0.9).

In both formats VideoMAE attention has q and v biases but no k bias: the fused ``attn.qkv.bias``
gets a zero k part, which is what VideoMAE computes. Position tables are VideoMAE's fixed 1-D
sin-cos tables, which omnimask generates (``pos_embed: sincos_1d``); a stored (learnable)
``encoder.pos_embed`` is accepted only if it *is* that table. Nothing is dropped silently: an
unmapped source tensor is an error naming it.

Refused, with the reason: classifiers that read the first patch token (``use_mean_pooling``
false, no ``fc_norm``: VideoMAE has no ``[CLS]``), activations other than exact GELU, LayerScale
(``gamma_1``/``gamma_2``), learned position tables.

Loss-side differences, documented rather than refused (the weights and predictions are exact):

* transformers un-normalises the target with ImageNet's mean/std whenever there are 3 channels,
  whatever the processor used; omnimask un-normalises with the checkpoint's processor mean/std
  (``preprocessor_config.json``). They agree when the processor uses ImageNet statistics (the
  usual case); otherwise the ``norm_pix_loss=True`` loss still agrees up to the ``1e-6`` eps (the
  per-channel normalisation cancels any per-channel affine map), while the raw-pixel loss differs.
* transformers refuses to compute a loss with ``norm_pix_loss=False`` and ``num_channels != 3``
  (it cannot un-normalise); the converted model then regresses the (normalised) input itself
  (``norm: none``, ``unnormalize_input: false``), and a warning says so.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

from torch import Tensor

from ..backbone.pos_embed import sincos_1d_interleaved
from ..modalities.image.tokenizer import IMAGENET_MEAN, IMAGENET_STD
from ..model_config import OmniMaskConfig
from . import CONVERTERS, ConversionError
from ._common import (
    attention_heads,
    block_count,
    load_state_file,
    map_state,
    official_file,
    positive_int,
    write_checkpoint,
)
from ._videomae_keys import (
    DEC,  # noqa: F401  (defined here before the key tables moved; still importable from here)
    DECODER_KEYS,
    ENC,
    hf_rename,
    official_renamer,
    split_classifier,
    target_prefixes,
    unknown_hint,
)
from .hf_vitmae import _mlp_ratio, _pair, _read_json, load_hf_state_dict
from .mae import write_classifier_head

__all__ = [
    "convert_hf_videomae",
    "convert_videomae",
    "videomae_config_to_omnimask",
    "videomae_state_to_omnimask",
    "official_videomae_state_to_omnimask",
    "load_official_state_dict",
    "ENCODER_HEADS",
    "DECODER_HEADS",
]

log = logging.getLogger(__name__)

POS_TOLERANCE = 1e-4
#: transformers' VideoMAE decoder ends with ``nn.LayerNorm(decoder_hidden_size)``: PyTorch's eps.
TORCH_LAYERNORM_EPS = 1e-5
#: The official models' LayerNorm eps (``partial(nn.LayerNorm, eps=1e-6)`` everywhere).
OFFICIAL_EPS = 1e-6

#: Official VideoMAE sizes: encoder width -> heads (S, B, L, H) and decoder width -> heads.
ENCODER_HEADS = {384: 6, 768: 12, 1024: 16, 1280: 16}
DECODER_HEADS = {192: 3, 384: 6, 512: 8, 640: 8}


# ---------------------------------------------------------------------------------------------
# shared by both formats: loss, config


def _objective(norm_pix: bool, channels: int, where: str) -> dict:
    if not norm_pix and channels != 3:
        log.warning(
            "%s: norm_pix_loss is false with %d channel(s): VideoMAE cannot un-normalise non-RGB input (transformers "
            "raises when computing this loss); the converted model regresses the normalised input itself",
            where,
            channels,
        )
    return {"name": "mse", "norm": "patch_channel" if norm_pix else "none", "unnormalize_input": channels == 3}


def _build_config(
    *,
    encoder: dict,
    decoder: dict,
    tokenizer: dict,
    norm_pix: bool,
    mean: list[float],
    std: list[float],
    mask_ratio: float,
    where: str,
) -> OmniMaskConfig:
    channels = tokenizer["in_chans"]
    if len(mean) != channels or len(std) != channels:
        raise ConversionError(
            f"{where}: processor mean/std have {len(mean)}/{len(std)} values for {channels} channel(s)"
        )
    if tokenizer["num_frames"] % tokenizer["tubelet_size"]:
        raise ConversionError(
            f"{where}: num_frames {tokenizer['num_frames']} is not a multiple of tubelet_size {tokenizer['tubelet_size']}"
        )
    for size, p, axis in zip(tokenizer["image_size"], tokenizer["patch_size"], ("height", "width")):
        if size % p:
            raise ConversionError(f"{where}: image_size {axis} {size} is not divisible by patch_size {p}")
    for what, cfg in (("encoder", encoder), ("decoder", decoder)):
        if cfg["dim"] % cfg["num_heads"]:
            raise ConversionError(
                f"{where}: {what} width {cfg['dim']} is not divisible by its {cfg['num_heads']} heads"
            )
    video = {
        "tokenizer": {**tokenizer, "pos_embed": "sincos_1d"},
        "masking": {"name": "tube", "ratio": mask_ratio},
        "decoder": {"name": "transformer", "embed_bias": False, **decoder},
        "objective": _objective(norm_pix, channels, where),
        "processor": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
    }
    return OmniMaskConfig(encoder={**encoder, "cls_token": False, "modality_embed": False}, modalities={"video": video})


# ---------------------------------------------------------------------------------------------
# hf-videomae


def _check_hf_config(hf: dict, where: str = "config") -> None:
    if hf.get("model_type", "videomae") != "videomae":
        raise ConversionError(
            f"{where}: model_type is {hf.get('model_type')!r}, expected 'videomae' (a transformers VideoMAE checkpoint)"
        )
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise ConversionError(f"{where}: hidden_act {act!r} is not supported; omnimask blocks use exact 'gelu'")


def _hf_mean_pooling(hf: dict) -> bool:
    return bool(hf.get("use_mean_pooling", True))


def _hf_qv_bias(hf: dict) -> bool:
    return bool(hf.get("qv_bias", hf.get("qkv_bias", True)))


def videomae_config_to_omnimask(hf: dict, preprocessor: dict | None = None) -> OmniMaskConfig:
    """Map a transformers VideoMAE ``config.json`` dict (and optional processor config) to an OmniMaskConfig."""
    _check_hf_config(hf)
    dim, ddim = hf.get("hidden_size", 768), hf.get("decoder_hidden_size", 384)
    eps, qv_bias = hf.get("layer_norm_eps", 1e-12), _hf_qv_bias(hf)
    encoder = dict(
        dim=dim,
        depth=hf.get("num_hidden_layers", 12),
        num_heads=hf.get("num_attention_heads", 12),
        mlp_ratio=_mlp_ratio(dim, hf.get("intermediate_size", 3072), "intermediate_size"),
        qkv_bias=qv_bias,
        norm_eps=eps,
        attn_drop=hf.get("attention_probs_dropout_prob", 0.0),
        proj_drop=hf.get("hidden_dropout_prob", 0.0),
        # use_mean_pooling (the VideoMAEConfig default): no videomae.layernorm after the blocks
        final_norm=not _hf_mean_pooling(hf),
    )
    decoder = dict(
        dim=ddim,
        depth=hf.get("decoder_num_hidden_layers", 4),
        num_heads=hf.get("decoder_num_attention_heads", 6),
        mlp_ratio=_mlp_ratio(ddim, hf.get("decoder_intermediate_size", 1536), "decoder_intermediate_size"),
        qkv_bias=qv_bias,
        norm_eps=eps,  # the decoder layers copy the encoder's config
        final_norm_eps=TORCH_LAYERNORM_EPS,
    )
    channels = hf.get("num_channels", 3)
    tokenizer = dict(
        num_frames=hf.get("num_frames", 16),
        image_size=list(_pair(hf.get("image_size", 224))),
        patch_size=list(_pair(hf.get("patch_size", 16))),
        tubelet_size=hf.get("tubelet_size", 2),
        in_chans=channels,
    )
    pre = preprocessor or {}
    # Without a processor config: ImageNet statistics for RGB (VideoMAE's), identity otherwise.
    default_mean, default_std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ([0.0] * channels, [1.0] * channels)
    mean, std = list(pre.get("image_mean", default_mean)), list(pre.get("image_std", default_std))
    if channels == 3 and (mean, std) != (list(IMAGENET_MEAN), list(IMAGENET_STD)):
        log.warning(
            "processor mean/std %s/%s are not ImageNet's: transformers un-normalises VideoMAE targets with ImageNet "
            "statistics, omnimask with the processor's; predictions are identical, the loss differs "
            "(only through the 1e-6 eps when norm_pix_loss is true)",
            mean,
            std,
        )
    return _build_config(
        encoder=encoder,
        decoder=decoder,
        tokenizer=tokenizer,
        norm_pix=bool(hf.get("norm_pix_loss", True)),
        mean=mean,
        std=std,
        mask_ratio=0.9,
        where="config",
    )


def _hf_has_decoder(state: dict[str, Tensor]) -> bool:
    return any(k.startswith(DECODER_KEYS) for k in state)


def videomae_state_to_omnimask(state: dict[str, Tensor], hf_config: dict) -> dict[str, Tensor]:
    """Map a transformers VideoMAE state dict (hub or in-memory layout) to omnimask keys.

    Returns ``OmniMaskForPreTraining`` keys when ``state`` has a decoder, else ``OmniMaskModel`` keys.

    Raises:
        ConversionError: unknown tensors, duplicate or incomplete q/k/v, or a final encoder LayerNorm
            that disagrees with ``use_mean_pooling``.
    """
    _check_hf_config(hf_config)
    has_decoder = _hf_has_decoder(state)
    out = map_state(state, hf_rename, target_prefixes(has_decoder), qv_bias_only=True, unknown_hint=unknown_hint)
    has_norm = (ENC if has_decoder else "") + "encoder.norm.weight" in out
    if _hf_mean_pooling(hf_config) and has_norm:
        raise ConversionError(
            "the source has a final encoder LayerNorm (videomae.layernorm), but its config says use_mean_pooling: "
            "true (the VideoMAEConfig default when the key is absent), under which VideoMAE has none"
        )
    if not _hf_mean_pooling(hf_config) and not has_norm:
        raise ConversionError(
            "the source has no final encoder LayerNorm (videomae.layernorm.weight), but its config says "
            "use_mean_pooling: false, under which VideoMAE ends the encoder with one"
        )
    return out


def _read_processor(src: Path) -> dict | None:
    for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
        if (src / name).is_file():
            return _read_json(src / name)
    return None


@CONVERTERS.register("hf-videomae")
def convert_hf_videomae(src_dir: Path, dst_dir: Path) -> Path:
    """Convert a transformers VideoMAE checkpoint directory into an omnimask checkpoint in ``dst_dir``.

    ``VideoMAEForPreTraining`` becomes an ``OmniMaskForPreTraining`` checkpoint, an encoder-only
    ``VideoMAEModel`` an ``OmniMaskModel`` checkpoint (``final_norm: false`` with ``use_mean_pooling``),
    ``VideoMAEForVideoClassification`` (mean pooling) that encoder plus ``classifier_head.pt``.
    Returns ``dst_dir``.
    """
    src, dst = Path(src_dir), Path(dst_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"source checkpoint directory {src} does not exist")
    cfg_path = src / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: {src} is not a transformers checkpoint directory")
    hf_config = _read_json(cfg_path)
    if hf_config.get("model_type") != "videomae":
        raise ConversionError(
            f"{cfg_path}: model_type is {hf_config.get('model_type')!r}, but hf-videomae converts 'videomae' checkpoints"
        )
    try:
        config = videomae_config_to_omnimask(hf_config, _read_processor(src))
    except ConversionError as err:
        raise ConversionError(str(err).replace("config:", f"{cfg_path}:", 1)) from None
    state, head = split_classifier(load_hf_state_dict(src), TORCH_LAYERNORM_EPS, str(src))
    try:
        mapped = videomae_state_to_omnimask(state, hf_config)
    except ConversionError as err:
        raise ConversionError(f"{src}: {err}") from None
    if head is not None:
        head.check(config.encoder["dim"], str(src))
    write_checkpoint(config, mapped, _hf_has_decoder(state), src, dst, "config.json")
    if head is not None:
        write_classifier_head(dst, head)
    return dst


# ---------------------------------------------------------------------------------------------
# videomae (official)


def load_official_state_dict(path: Path) -> dict[str, Tensor]:
    """Read an official VideoMAE checkpoint file: unwrap ``model``/``module``, strip ``module.``."""
    return load_state_file(path, ("model", "module"), allowed=[argparse.Namespace])


def _image_size_option(value: Any) -> tuple[int, int]:
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*[x,]\s*\d+\s*", value):
        h, w = re.split(r"[x,]", value)
        return int(h), int(w)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return positive_int(value[0], "image_size"), positive_int(value[1], "image_size")
    size = positive_int(value, "image_size (an int, or HxW)")
    return size, size


def _check_pos_table(table: Tensor, dim: int, length: int, where: str, hint: str) -> None:
    """Raise unless ``table`` is VideoMAE's fixed sin-cos table for ``length`` tokens."""
    shape = tuple(table.shape)
    if shape not in ((1, length, dim), (length, dim)):
        raise ConversionError(
            f"{where} is a stored position table of shape {shape}; expected (1, {length}, {dim}) for {hint} "
            "(set the num_frames/image_size options to the model's), and it must equal VideoMAE's fixed sin-cos table"
        )
    diff = float((table.reshape(length, dim).float() - sincos_1d_interleaved(dim, length)).abs().max())
    if diff >= POS_TOLERANCE:
        raise ConversionError(
            f"{where} is a learned position table (use_learnable_pos_emb) that differs from VideoMAE's fixed 1-D "
            f"sin-cos table (max abs diff {diff:.3g}); omnimask generates its tables and cannot carry learned ones"
        )


def _official_tube_embed(state: dict[str, Tensor], enc_prefix: str, where: str) -> tuple[int, int, int, int, int]:
    """(dim, channels, tubelet, p, q) of the tube embedding; raises for a file that is no official VideoMAE."""
    proj = state.get(f"{enc_prefix}patch_embed.proj.weight")
    if proj is None:
        raise ConversionError(
            f"{where}: no {enc_prefix}patch_embed.proj.weight, so this is not an official VideoMAE checkpoint "
            f"(first keys: {sorted(state)[:8]})"
        )
    if proj.ndim != 5:
        raise ConversionError(
            f"{where}: {enc_prefix}patch_embed.proj.weight has shape {tuple(proj.shape)}; a video tube embedding is 5-D (dim, C, t, p, q)"
        )
    return tuple(int(n) for n in proj.shape)  # type: ignore[return-value]


def _official_decoder(
    state: dict[str, Tensor], encoder: dict, has_decoder: bool, decoder_num_heads: Any, tube: tuple, where: str
) -> dict:
    """The decoder config of an official state dict; ``tube`` is (tubelet, p, q, channels)."""
    if not has_decoder:  # encoder-only: a decoder entry is still part of the config; the size table's (unused) one
        ddim = {384: 192, 768: 384, 1024: 512, 1280: 640}.get(encoder["dim"], 384)
        return dict(
            dim=ddim, depth=4, num_heads=DECODER_HEADS[ddim], qkv_bias=encoder["qkv_bias"], norm_eps=OFFICIAL_EPS
        )
    e2d = state.get("encoder_to_decoder.weight")
    if e2d is None:
        raise ConversionError(f"{where}: the checkpoint has decoder tensors but no encoder_to_decoder.weight")
    ddim = int(e2d.shape[0])
    dfc1 = state.get("decoder.blocks.0.mlp.fc1.weight")
    head = state.get("decoder.head.weight")
    tubelet, ph, pw, channels = tube
    patch_dim = tubelet * ph * pw * channels
    if head is not None and int(head.shape[0]) != patch_dim:
        raise ConversionError(
            f"{where}: decoder.head.weight predicts {int(head.shape[0])} values per token, but a {tubelet}x{ph}x{pw} tube "
            f"of {channels} channel(s) has {patch_dim}; omnimask's decoder predicts whole tubes"
        )
    return dict(
        dim=ddim,
        depth=block_count(state, "decoder."),
        num_heads=attention_heads(
            ddim,
            decoder_num_heads,
            DECODER_HEADS,
            "decoder_num_heads",
            "decoder",
            f"one of VideoMAE's model sizes {sorted(DECODER_HEADS)}",
        ),
        mlp_ratio=_mlp_ratio(ddim, int(dfc1.shape[0]), "decoder.blocks.0.mlp.fc1.weight")
        if dfc1 is not None
        else encoder["mlp_ratio"],
        qkv_bias=encoder["qkv_bias"],
        norm_eps=OFFICIAL_EPS,
    )


def official_videomae_state_to_omnimask(
    state: dict[str, Tensor],
    *,
    num_frames: int = 16,
    image_size: int | tuple[int, int] | str = 224,
    norm_pix: bool = True,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
    mask_ratio: float = 0.9,
    where: str = "checkpoint",
    final_norm: bool = True,
) -> tuple[OmniMaskConfig, dict[str, Tensor], bool]:
    """Infer the config of an official VideoMAE state dict and map its tensors.

    ``final_norm=False``: the encoder has no final ``norm`` (a fine-tuned classifier's, whose head
    has been taken out with :func:`split_classifier`).

    Returns:
        (config, omnimask state dict, has_decoder).
    """
    num_frames = positive_int(num_frames, "num_frames")
    size = _image_size_option(image_size)
    if not isinstance(norm_pix, bool):
        raise ConversionError(f"option norm_pix must be true or false, got {norm_pix!r}")
    if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, (int, float)) or not 0 <= mask_ratio < 1:
        raise ConversionError(f"option mask_ratio must be a number in [0, 1), got {mask_ratio!r}")
    enc_prefix = "encoder." if any(k.startswith("encoder.") for k in state) else ""
    dim, channels, tubelet, ph, pw = _official_tube_embed(state, enc_prefix, where)
    depth = block_count(state, enc_prefix)
    if depth == 0:
        raise ConversionError(f"{where}: no encoder blocks ({enc_prefix}blocks.N.*)")
    fc1 = state.get(f"{enc_prefix}blocks.0.mlp.fc1.weight")
    if fc1 is None:
        raise ConversionError(f"{where}: {enc_prefix}blocks.0.mlp.fc1.weight is missing")
    qkv_bias = f"{enc_prefix}blocks.0.attn.q_bias" in state or f"{enc_prefix}blocks.0.attn.v_bias" in state
    encoder = dict(
        dim=dim,
        depth=depth,
        num_heads=attention_heads(
            dim,
            num_heads,
            ENCODER_HEADS,
            "num_heads",
            "encoder",
            f"one of VideoMAE's model sizes {sorted(ENCODER_HEADS)}",
        ),
        mlp_ratio=_mlp_ratio(dim, int(fc1.shape[0]), f"{enc_prefix}blocks.0.mlp.fc1.weight"),
        qkv_bias=qkv_bias,
        norm_eps=OFFICIAL_EPS,
        final_norm=final_norm,
    )
    has_decoder = any(k.startswith(DECODER_KEYS) for k in state)
    decoder = _official_decoder(state, encoder, has_decoder, decoder_num_heads, (tubelet, ph, pw, channels), where)
    tokenizer = dict(
        num_frames=num_frames, image_size=list(size), patch_size=[ph, pw], tubelet_size=tubelet, in_chans=channels
    )
    config = _build_config(
        encoder=encoder,
        decoder=decoder,
        tokenizer=tokenizer,
        norm_pix=norm_pix,
        mean=list(IMAGENET_MEAN) if channels == 3 else [0.0] * channels,
        std=list(IMAGENET_STD) if channels == 3 else [1.0] * channels,
        mask_ratio=float(mask_ratio),
        where=where,
    )
    out = map_state(
        state, official_renamer(enc_prefix), target_prefixes(has_decoder), qv_bias_only=True, unknown_hint=unknown_hint
    )
    table = out.pop("enc@pos", None)
    if table is not None:
        length = (num_frames // tubelet) * (size[0] // ph) * (size[1] // pw)
        _check_pos_table(
            table,
            dim,
            length,
            f"{where}: {enc_prefix}pos_embed",
            f"num_frames={num_frames}, image_size={size[0]}x{size[1]}",
        )
    return config, out, has_decoder


@CONVERTERS.register("videomae")
def convert_videomae(
    src: Path,
    dst_dir: Path,
    *,
    num_frames: int = 16,
    image_size: int | tuple[int, int] | str = 224,
    norm_pix: bool = True,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
    mask_ratio: float = 0.9,
) -> Path:
    """Convert an official MCG-NJU VideoMAE checkpoint (``.pth`` file or a directory holding one):
    pretraining (with or without the decoder) or a fine-tuned classifier (encoder + ``classifier_head.pt``).

    Options (the file holds no config): ``num_frames`` (16) and ``image_size`` (224, or ``HxW``) the
    model was trained for; ``norm_pix`` (true: per-patch, per-channel normalised targets, VideoMAE's
    ``--normlize_target``); ``num_heads`` / ``decoder_num_heads`` when the widths are not one of
    VideoMAE's S/B/L/H sizes; ``mask_ratio`` of the tube masking (0.9). Returns ``dst_dir``.
    """
    path = official_file(Path(src))
    source, head = split_classifier(load_official_state_dict(path), OFFICIAL_EPS, str(path))
    config, state, has_decoder = official_videomae_state_to_omnimask(
        source,
        num_frames=num_frames,
        image_size=image_size,
        norm_pix=norm_pix,
        num_heads=num_heads,
        decoder_num_heads=decoder_num_heads,
        mask_ratio=mask_ratio,
        where=str(path),
        final_norm=head is None,
    )
    if head is not None:
        head.check(config.encoder["dim"], str(path))
    dst = write_checkpoint(config, state, has_decoder, path, Path(dst_dir), "the shapes and options")
    if head is not None:
        write_classifier_head(dst, head)
    return dst
