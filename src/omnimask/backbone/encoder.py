"""The shared transformer encoder. It sees (B, N, D) tokens and knows nothing about modalities."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..registry import check_keys
from .blocks import Block, key_padding_to_attn_mask

__all__ = ["EncoderConfig", "TransformerEncoder"]


@dataclass
class EncoderConfig:
    """Shape of the shared encoder (defaults: ViT-B)."""

    dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    drop_path: float = 0.0
    attn_drop: float = 0.0
    proj_drop: float = 0.0
    cls_token: bool = True
    #: "auto": learned per-modality embeddings only when the model has more than one modality.
    modality_embed: str | bool = "auto"
    #: Add per-sample positions (point-group centres) before every block, as Point-MAE does,
    #: instead of once at the input. Fixed position tables (image, video) are part of their tokens
    #: and are added once either way.
    pos_every_block: bool = False
    #: End with a LayerNorm (ViT, MAE pretraining). ``false``: the blocks' output as is, for models
    #: whose norm comes after pooling (MAE/VideoMAE fine-tuning's ``fc_norm``, transformers'
    #: VideoMAE with ``use_mean_pooling``); the encoder then has no ``norm`` weights.
    final_norm: bool = True

    @classmethod
    def from_dict(cls, d: dict, where: str = "encoder") -> EncoderConfig:
        check_keys(d, cls.__dataclass_fields__, where)
        cfg = cls(**d)
        if cfg.modality_embed not in ("auto", True, False):
            raise ValueError(f"{where}.modality_embed must be 'auto', true or false, got {cfg.modality_embed!r}")
        if not isinstance(cfg.final_norm, bool):
            raise ValueError(f"{where}.final_norm must be true or false, got {cfg.final_norm!r}")
        if cfg.dim % cfg.num_heads:
            raise ValueError(f"{where}: dim {cfg.dim} is not divisible by num_heads {cfg.num_heads}")
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)


class TransformerEncoder(nn.Module):
    """A stack of pre-norm blocks with stochastic depth rising linearly to ``drop_path``, then a norm
    (an identity with ``final_norm: false``)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist() if cfg.depth > 1 else [cfg.drop_path]
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps, rate, cfg.attn_drop, cfg.proj_drop)
            for rate in rates[: cfg.depth]
        )
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps) if cfg.final_norm else nn.Identity()

    def forward(
        self, x: Tensor, valid: Tensor | None = None, return_layers: bool = False, pos: Tensor | None = None
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Args:
            x: (B, N, D) tokens.
            valid: optional (B, N) bool, False marks padding that no token attends to.
            return_layers: also return the (un-normed) output of every block.
            pos: optional (B, N, D) positions added to the input of every block (``x = block(x + pos)``).
        Returns:
            (B, N, D) normed output, un-normed with ``final_norm: false`` (and the per-block outputs).
        """
        attn_mask = key_padding_to_attn_mask(valid)
        layers = []
        for blk in self.blocks:
            x = blk(x if pos is None else x + pos, attn_mask)
            if return_layers:
                layers.append(x)
        x = self.norm(x)
        return (x, layers) if return_layers else x
