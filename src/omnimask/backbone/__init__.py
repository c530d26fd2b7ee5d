"""Modality-free transformer pieces: blocks, the shared encoder, fixed position tables."""

from .blocks import Attention, Block, DropPath, Mlp, init_qkv_split, init_vit_weights
from .encoder import EncoderConfig, TransformerEncoder
from .pos_embed import interpolate_table_2d, sincos_1d, sincos_1d_interleaved, sincos_2d_mae

__all__ = [
    "Attention",
    "Block",
    "DropPath",
    "Mlp",
    "init_vit_weights",
    "init_qkv_split",
    "EncoderConfig",
    "TransformerEncoder",
    "interpolate_table_2d",
    "sincos_1d",
    "sincos_1d_interleaved",
    "sincos_2d_mae",
]
