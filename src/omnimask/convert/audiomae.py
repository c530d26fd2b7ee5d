"""``audiomae``: official facebookresearch/AudioMAE checkpoints -> omnimask.

The source is the ``.pth`` the training script saves (a file, or a directory holding one):
``{"model": state_dict, "args": Namespace, ...}`` (or the bare state dict; a DDP ``module.``
prefix is stripped). Keys are timm-0.3.2 style and map one to one::

    patch_embed.proj                  -> omnimask.tokenizers.audio.proj
    cls_token (+ pos_embed[:, 0])     -> omnimask.cls_token
    blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}
                                      -> omnimask.encoder.blocks.N.<same>
    norm                              -> omnimask.encoder.norm
    decoder_embed / mask_token        -> decoders.audio.embed / mask_token
    decoder_blocks.N.<...>            -> decoders.audio.blocks.N.<same>
    decoder_norm / decoder_pred       -> decoders.audio.norm / pred

``decoder_blocks`` are AudioMAE's Swin-V2-CR blocks (``decoder_mode=1``, recognised by their
``attn.tau`` and ``attn.meta_mlp``) -> the ``local_window`` decoder, or timm ViT blocks
(``decoder_mode=0``) -> the global ``transformer`` decoder. A file without decoder tensors becomes
an encoder-only ``OmniMaskModel`` checkpoint.

Position tables are not weights in omnimask: ``pos_embed`` / ``decoder_pos_embed`` are *checked*
against the generated tables -- AudioMAE's swapped-grid layout (``pos_embed: audiomae``) or MAE's
table on the true (time, frequency) grid (``sincos_2d``) -- and their token count gives the clip
length. A learned table (``--pos_trainable``) is refused.

What the weights cannot tell comes from the ``args`` stored in the file when present, else from
options (an explicit option wins): ``norm_pix`` (``norm_pix_loss``), ``mask_ratio``, ``mask_2d`` /
``mask_t_prob`` / ``mask_f_prob`` (``time_freq`` masking), ``no_shift``, ``dataset`` (the fbank
normalisation preset), ``target_length`` (only needed without a position table) and
``num_mel_bins`` (128), ``num_heads`` / ``decoder_num_heads`` (the global decoder's heads; the
local decoder's come from ``tau``).

Refused, with the reason: fine-tuned classifiers (``fc_norm`` / ``head``, and no final ``norm``:
AudioMAE's fine-tuning deletes it and pools before ``fc_norm``, while omnimask's encoder always ends
with a LayerNorm), overlapping patches (``--use_custom_patch``), learned position tables.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

from torch import Tensor

from ..backbone.pos_embed import sincos_2d_audiomae, sincos_2d_mae
from ..modalities.audio.features import NORM_PRESETS
from ..modalities.audio.tokenizer import norm_preset
from ..model_config import OmniMaskConfig
from . import CONVERTERS, ConversionError
from ._common import (
    Target,
    attention_heads,
    block_count,
    map_state,
    official_file,
    positive_int,
    read_checkpoint_file,
    unwrap_state,
    write_checkpoint,
)
from .hf_vitmae import _mlp_ratio

__all__ = ["convert_audiomae", "audiomae_state_to_omnimask", "load_audiomae_checkpoint", "ENCODER_HEADS"]

log = logging.getLogger(__name__)

ENC = "omnimask."  # encoder prefix inside OmniMaskForPreTraining (empty for OmniMaskModel)
DEC = "decoders.audio."
POS_TOLERANCE = 1e-4
EPS = 1e-6  # partial(nn.LayerNorm, eps=1e-6) everywhere in AudioMAE
#: AudioMAE's ViT sizes (S, B, L, H): width -> heads. Its decoders always have 16 heads.
ENCODER_HEADS = {384: 6, 768: 12, 1024: 16, 1280: 16}
DECODER_HEADS = 16
_SIZES = f"one of AudioMAE's model sizes {sorted(ENCODER_HEADS)}"
#: main_pretrain.py's ``audio_conf`` target lengths per ``--dataset``.
TARGET_LENGTHS = {"audioset": 1024, "esc50": 512, "speechcommands": 128}

_VIT_PARTS = {
    f"{m}.{p}" for m in ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2") for p in ("weight", "bias")
}
_SWIN_PARTS = _VIT_PARTS | {"attn.tau"} | {f"attn.meta_mlp.{m}.{p}" for m in ("fc1", "fc2") for p in ("weight", "bias")}
_BLOCK = re.compile(r"^(blocks|decoder_blocks)\.(\d+)\.(.+)$")
_TOP: dict[str, tuple[str, str]] = {
    "patch_embed.proj.weight": ("enc", "tokenizers.audio.proj.weight"),
    "patch_embed.proj.bias": ("enc", "tokenizers.audio.proj.bias"),
    "cls_token": ("enc", "@cls"),
    "pos_embed": ("enc", "@pos"),
    "norm.weight": ("enc", "encoder.norm.weight"),
    "norm.bias": ("enc", "encoder.norm.bias"),
    "mask_token": ("dec", "mask_token"),
    "decoder_pos_embed": ("dec", "@pos"),
    **{
        f"decoder_{m}.{p}": ("dec", f"{n}.{p}")
        for m, n in (("embed", "embed"), ("norm", "norm"), ("pred", "pred"))
        for p in ("weight", "bias")
    },
}


def _rename(key: str) -> Target | None:
    if key in _TOP:
        return (*_TOP[key], None)
    m = _BLOCK.match(key)
    if m and m.group(3) in (_VIT_PARTS if m.group(1) == "blocks" else _SWIN_PARTS):
        section, base = ("enc", "encoder.blocks") if m.group(1) == "blocks" else ("dec", "blocks")
        return section, f"{base}.{m.group(2)}.{m.group(3)}", None
    return None


def _unknown_hint(keys: list[str]) -> str:
    if any(k.startswith("decoder_blocks.") for k in keys):
        return " (decoder blocks of neither AudioMAE decoder_mode 0 (ViT) nor 1 (Swin local attention))"
    return ""


def load_audiomae_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read an AudioMAE checkpoint file: ``(state dict, training args as a dict or {})``.

    ``.pth`` files are read with ``torch.load(weights_only=True)`` (nothing in the file can run
    code), allowing the ``argparse.Namespace`` the training script stores.
    """
    args: dict[str, Any] = {}
    obj = read_checkpoint_file(path, "model", [argparse.Namespace])
    if isinstance(obj, dict):
        raw_args = obj.get("args")
        if isinstance(raw_args, argparse.Namespace):
            args = vars(raw_args)
        elif isinstance(raw_args, dict):
            args = dict(raw_args)
    state = unwrap_state(obj, path, ("model", "module"))
    return state, args


def _resolve(option: Any, args: dict, key: str, default: Any, kind: type, name: str) -> Any:
    """An explicit option, else the checkpoint's training arg, else the default; type-checked."""
    value = option if option is not None else args.get(key, default)
    if kind is bool and not isinstance(value, bool):
        raise ConversionError(f"option {name} must be true or false, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1):
        raise ConversionError(f"option {name} must be a number in [0, 1), got {value!r}")
    return float(value) if kind is float else value


def _table_layout(table: Tensor, dim: int, grid: tuple[int, int], what: str) -> str:
    """Which generated table the (N, dim) ``table`` equals: ``audiomae`` or ``sincos_2d``; raises otherwise."""
    diffs = {}
    for name, make in (("audiomae", sincos_2d_audiomae), ("sincos_2d", sincos_2d_mae)):
        diffs[name] = float((table.float() - make(dim, grid)).abs().max())
        if diffs[name] < POS_TOLERANCE:
            return name
    raise ConversionError(
        f"{what} is neither AudioMAE's fixed sin-cos table nor MAE's on the true {grid[0]}x{grid[1]} grid (max abs "
        f"diffs {diffs['audiomae']:.3g} / {diffs['sincos_2d']:.3g}): a learned table (--pos_trainable) or another clip "
        "length; omnimask generates its tables and cannot carry learned ones"
    )


def audiomae_state_to_omnimask(
    state: dict[str, Tensor],
    args: dict[str, Any] | None = None,
    *,
    target_length: int | None = None,
    num_mel_bins: int = 128,
    dataset: str | None = None,
    norm_pix: bool | None = None,
    mask_ratio: float | None = None,
    mask_2d: bool | None = None,
    mask_t_prob: float | None = None,
    mask_f_prob: float | None = None,
    no_shift: bool | None = None,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
    where: str = "checkpoint",
) -> tuple[OmniMaskConfig, dict[str, Tensor], bool]:
    """Infer the config of an official AudioMAE state dict (plus its training ``args``) and map its tensors.

    Returns:
        (config, omnimask state dict, has_decoder).
    """
    args = dict(args or {})
    proj = state.get("patch_embed.proj.weight")
    if proj is None or proj.ndim != 4:
        found = "missing" if proj is None else f"of shape {tuple(proj.shape)}"
        raise ConversionError(
            f"{where}: patch_embed.proj.weight is {found}; an AudioMAE checkpoint has a 4-D (dim, 1, p, p) patch "
            f"embedding (first keys: {sorted(state)[:8]})"
        )
    if any(k in state for k in ("fc_norm.weight", "head.weight")):
        present = [k for k in ("fc_norm.weight", "head.weight", "norm.weight") if k in state]
        raise ConversionError(
            f"{where}: a fine-tuned AudioMAE classifier (has {present}): AudioMAE's fine-tuning deletes the encoder's "
            "final LayerNorm and mean-pools before fc_norm, while omnimask's encoder always ends with a LayerNorm, so "
            "this encoder cannot be represented faithfully; convert the pretraining checkpoint"
        )
    if "norm.weight" not in state:
        raise ConversionError(
            f"{where}: the encoder's final LayerNorm (norm.weight) is missing; omnimask's encoder always ends with one"
        )
    dim, channels, p, q = (int(s) for s in proj.shape)
    num_mel_bins = positive_int(num_mel_bins, "num_mel_bins")
    if num_mel_bins % q:
        raise ConversionError(f"option num_mel_bins={num_mel_bins} is not divisible by the patch width {q}")
    freq = num_mel_bins // q
    if dataset is None:
        dataset = args.get("dataset", "audioset")
        if dataset not in NORM_PRESETS:
            log.warning(
                "%s: the training args name dataset %r, which has no fbank statistics here; using AudioSet's",
                where,
                dataset,
            )
            dataset = "audioset"
    elif dataset not in NORM_PRESETS:
        raise ConversionError(f"option dataset must be one of {sorted(NORM_PRESETS)}, got {dataset!r}")

    # clip length: from the encoder table's token count, else the option, else the dataset's
    table = state.get("pos_embed")
    if table is not None:
        n = table.shape[1] - 1 if table.ndim == 3 else -1
        if table.ndim != 3 or table.shape[0] != 1 or table.shape[2] != dim or n < 1 or n % freq:
            raise ConversionError(
                f"{where}: pos_embed has shape {tuple(table.shape)}; expected (1, 1 + T' * {freq}, {dim}) for {num_mel_bins} mel bins "
                "and non-overlapping patches (checkpoints trained with --use_custom_patch are not supported)"
            )
        time = n // freq
        if target_length is not None and positive_int(target_length, "target_length") != time * p:
            raise ConversionError(
                f"option target_length={target_length} disagrees with pos_embed, which holds {time} time rows of {p} frames ({time * p} frames)"
            )
    else:
        length = positive_int(target_length if target_length is not None else TARGET_LENGTHS[dataset], "target_length")
        if length % p:
            raise ConversionError(f"option target_length={length} is not divisible by the patch height {p}")
        time = length // p
    grid = (time, freq)

    depth = block_count(state, "")
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    if depth == 0 or fc1 is None:
        raise ConversionError(f"{where}: no encoder blocks (blocks.N.*, first keys: {sorted(state)[:8]})")
    encoder = dict(
        dim=dim,
        depth=depth,
        num_heads=attention_heads(dim, num_heads, ENCODER_HEADS, "num_heads", "encoder", _SIZES),
        mlp_ratio=_mlp_ratio(dim, int(fc1.shape[0]), "blocks.0.mlp.fc1.weight"),
        qkv_bias="blocks.0.attn.qkv.bias" in state,
        norm_eps=EPS,
        cls_token=True,
        modality_embed=False,
    )

    has_decoder = any(k.startswith(("decoder_", "mask_token")) for k in state)
    audio: dict[str, Any] = {}
    local = "decoder_blocks.0.attn.tau" in state
    if has_decoder:
        embed = state.get("decoder_embed.weight")
        dfc1 = state.get("decoder_blocks.0.mlp.fc1.weight")
        if embed is None or dfc1 is None:
            raise ConversionError(
                f"{where}: the checkpoint has decoder tensors but lacks decoder_embed.weight or decoder_blocks.0.*"
            )
        ddim, ddepth = int(embed.shape[0]), block_count(state, "decoder_")
        pred = state.get("decoder_pred.weight")
        if pred is not None and int(pred.shape[0]) != p * q * channels:
            raise ConversionError(
                f"{where}: decoder_pred.weight predicts {int(pred.shape[0])} values per token; a {p}x{q} patch of {channels} channel(s) has {p * q * channels}"
            )
        ratio = _mlp_ratio(ddim, int(dfc1.shape[0]), "decoder_blocks.0.mlp.fc1.weight")
        if local:
            heads = int(state["decoder_blocks.0.attn.tau"].shape[0])
            if decoder_num_heads is not None and decoder_num_heads != heads:
                raise ConversionError(
                    f"option decoder_num_heads={decoder_num_heads} disagrees with the checkpoint's {heads} heads (decoder_blocks.0.attn.tau)"
                )
            hidden = state.get("decoder_blocks.0.attn.meta_mlp.fc1.weight")
            audio["decoder"] = dict(
                name="local_window",
                dim=ddim,
                depth=ddepth,
                num_heads=heads,
                mlp_ratio=ratio,
                window_size=[4, 4],
                shift_size=[2, 0],
                no_shift=_resolve(no_shift, args, "no_shift", False, bool, "no_shift"),
                norm_eps=EPS,
                bias_hidden=int(hidden.shape[0]) if hidden is not None else 384,
            )
        else:
            known = {ddim: DECODER_HEADS} if ddim % DECODER_HEADS == 0 else {}
            heads = attention_heads(ddim, decoder_num_heads, known, "decoder_num_heads", "decoder", _SIZES)
            audio["decoder"] = dict(
                name="transformer",
                dim=ddim,
                depth=ddepth,
                num_heads=heads,
                mlp_ratio=ratio,
                qkv_bias="decoder_blocks.0.attn.qkv.bias" in state,
                norm_eps=EPS,
                context="all",
                embed_bias=True,
            )

    out = map_state(state, _rename, {"enc": ENC if has_decoder else "", "dec": DEC}, unknown_hint=_unknown_hint)
    layout = "audiomae"
    enc_table = out.pop("enc@pos", None)
    if enc_table is not None:
        layout = _table_layout(enc_table[0, 1:], dim, grid, f"{where}: pos_embed")
        if "enc@cls" in out:  # AudioMAE adds pos_embed[:, :1] to the cls token
            out["enc@cls"] = (out["enc@cls"].float() + enc_table[:, :1].float()).to(out["enc@cls"].dtype)
    else:
        log.warning("%s: no pos_embed in the checkpoint; assuming AudioMAE's fixed table layout", where)
    dec_table = out.pop("dec@pos", None)
    if dec_table is not None:
        ddim = int(audio["decoder"]["dim"]) if "decoder" in audio else dec_table.shape[-1]
        if tuple(dec_table.shape) != (1, 1 + time * freq, ddim):
            raise ConversionError(
                f"{where}: decoder_pos_embed has shape {tuple(dec_table.shape)}, expected (1, {1 + time * freq}, {ddim}) like pos_embed"
            )
        dec_layout = _table_layout(dec_table[0, 1:], ddim, grid, f"{where}: decoder_pos_embed")
        if dec_layout != layout:
            raise ConversionError(
                f"{where}: pos_embed uses the {layout!r} layout but decoder_pos_embed the {dec_layout!r} one; omnimask shares one layout"
            )
        # The global decoder puts no position on its cls token, so the table's cls row must be zero
        # (AudioMAE's is); the local decoder drops the cls token, so its row never matters.
        if not local and float(dec_table[0, 0].abs().max()) >= POS_TOLERANCE:
            raise ConversionError(
                f"{where}: decoder_pos_embed has a non-zero cls row; AudioMAE's fixed table has zeros there"
            )
    if "enc@cls" not in out:
        raise ConversionError(f"{where}: cls_token is missing; AudioMAE encoders have one")
    out[(ENC if has_decoder else "") + "cls_token"] = out.pop("enc@cls")

    if _resolve(mask_2d, args, "mask_2d", False, bool, "mask_2d"):
        masking = {
            "name": "time_freq",
            "time_ratio": _resolve(mask_t_prob, args, "mask_t_prob", 0.7, float, "mask_t_prob"),
            "freq_ratio": _resolve(mask_f_prob, args, "mask_f_prob", 0.3, float, "mask_f_prob"),
        }
    else:
        masking = {"name": "random", "ratio": _resolve(mask_ratio, args, "mask_ratio", 0.8, float, "mask_ratio")}
    audio.update(
        tokenizer=dict(
            target_length=time * p, num_mel_bins=num_mel_bins, patch_size=[p, q], in_chans=channels, pos_embed=layout
        ),
        masking=masking,
        objective={
            "name": "mse",
            "norm": "patch" if _resolve(norm_pix, args, "norm_pix_loss", True, bool, "norm_pix") else "none",
        },
        processor=norm_preset(dataset),
    )
    return OmniMaskConfig(encoder=encoder, modalities={"audio": audio}), out, has_decoder


@CONVERTERS.register("audiomae")
def convert_audiomae(
    src: Path,
    dst_dir: Path,
    *,
    target_length: int | None = None,
    num_mel_bins: int = 128,
    dataset: str | None = None,
    norm_pix: bool | None = None,
    mask_ratio: float | None = None,
    mask_2d: bool | None = None,
    mask_t_prob: float | None = None,
    mask_f_prob: float | None = None,
    no_shift: bool | None = None,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
) -> Path:
    """Convert an official AudioMAE checkpoint (``.pth`` file or a directory holding one).

    A pretraining checkpoint with its decoder becomes an ``OmniMaskForPreTraining`` checkpoint,
    one without decoder tensors an encoder-only ``OmniMaskModel`` checkpoint. Options override the
    training ``args`` stored in the file (see the module docstring). Returns ``dst_dir``.
    """
    path = official_file(Path(src))
    state, args = load_audiomae_checkpoint(path)
    config, mapped, has_decoder = audiomae_state_to_omnimask(
        state,
        args,
        target_length=target_length,
        num_mel_bins=num_mel_bins,
        dataset=dataset,
        norm_pix=norm_pix,
        mask_ratio=mask_ratio,
        mask_2d=mask_2d,
        mask_t_prob=mask_t_prob,
        mask_f_prob=mask_f_prob,
        no_shift=no_shift,
        num_heads=num_heads,
        decoder_num_heads=decoder_num_heads,
        where=str(path),
    )
    return write_checkpoint(config, mapped, has_decoder, path, Path(dst_dir), "the shapes and options")
