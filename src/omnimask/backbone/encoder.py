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
    #: The first ``modality_specific_depth`` of the ``depth`` blocks run per modality, each with
    #: its own weights (CAV-MAE: 11 of 12); the rest are shared. 0: every block is shared.
    modality_specific_depth: int = 0
    #: The modalities that get their own first blocks (default: every modality of the model); the
    #: others enter the shared blocks directly.
    modality_specific: list[str] | None = None
    #: The shared blocks keep one LayerNorm pair for the joint pass and one per modality for that
    #: modality alone, plus a final norm per modality (CAV-MAE's three passes).
    modality_norms: bool = False
    #: How the fused q/k/v projection is initialised. ``fused``: one xavier-uniform over the
    #: (3 dim, dim) matrix, as MAE's code does (timm's fused ``qkv`` under its ``_init_weights``).
    #: ``split``: q, k and v each as its own (dim, dim) xavier block, as JAX ViT initialises its
    #: separate projections (and transformers' ViT layers under MAE's init): a sqrt(2) wider range.
    qkv_init: str = "fused"

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
        if not 0 <= cfg.modality_specific_depth <= cfg.depth:
            raise ValueError(
                f"{where}.modality_specific_depth must be in [0, depth={cfg.depth}], got {cfg.modality_specific_depth}"
            )
        if cfg.qkv_init not in ("fused", "split"):
            raise ValueError(f"{where}.qkv_init must be 'fused' or 'split', got {cfg.qkv_init!r}")
        if not isinstance(cfg.modality_norms, bool):
            raise ValueError(f"{where}.modality_norms must be true or false, got {cfg.modality_norms!r}")
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)


class TransformerEncoder(nn.Module):
    """A stack of pre-norm blocks with stochastic depth rising linearly to ``drop_path``, then a norm
    (an identity with ``final_norm: false``).

    With ``modality_specific_depth: N`` the first N blocks exist once per name in ``keys`` that is
    modality-specific (``specific_blocks[name]``, run by :meth:`forward_specific`) and ``blocks``
    holds the shared rest. With ``modality_norms`` every shared block and the final norm also keep
    a LayerNorm set per name, used when :meth:`forward` gets that ``norm_key`` (one modality
    alone). The encoder itself never looks at what a name means.
    """

    def __init__(self, cfg: EncoderConfig, keys: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__()
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist() if cfg.depth > 1 else [cfg.drop_path]
        n = cfg.modality_specific_depth
        specific = [] if n == 0 else list(keys if cfg.modality_specific is None else cfg.modality_specific)
        norm_keys = list(keys) if cfg.modality_norms else []

        def block(rate: float, norms: list[str]) -> Block:
            args = (cfg.dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps, rate, cfg.attn_drop)
            return Block(*args, cfg.proj_drop, norm_keys=norms)

        if specific:
            self.specific_blocks = nn.ModuleDict({k: nn.ModuleList(block(r, []) for r in rates[:n]) for k in specific})
        self.blocks = nn.ModuleList(block(rate, norm_keys) for rate in rates[n : cfg.depth])
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps) if cfg.final_norm else nn.Identity()
        if norm_keys and cfg.final_norm:
            self.modality_final_norms = nn.ModuleDict({k: nn.LayerNorm(cfg.dim, eps=cfg.norm_eps) for k in norm_keys})

    @property
    def specific_keys(self) -> list[str]:
        """The names that have blocks of their own."""
        return list(self.specific_blocks) if hasattr(self, "specific_blocks") else []

    def forward_specific(self, key: str, x: Tensor, valid: Tensor | None = None, pos: Tensor | None = None) -> Tensor:
        """``key``'s own first blocks over its (B, K, D) tokens alone (no final norm)."""
        attn_mask = key_padding_to_attn_mask(valid)
        for blk in self.specific_blocks[key]:
            x = blk(x if pos is None else x + pos, attn_mask)
        return x

    def forward(
        self,
        x: Tensor,
        valid: Tensor | None = None,
        return_layers: bool = False,
        pos: Tensor | None = None,
        norm_key: str | None = None,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Args:
            x: (B, N, D) tokens.
            valid: optional (B, N) bool, False marks padding that no token attends to.
            return_layers: also return the (un-normed) output of every block.
            pos: optional (B, N, D) positions added to the input of every block (``x = block(x + pos)``).
            norm_key: with ``modality_norms``, use this name's LayerNorms (one modality alone)
                instead of the joint ones.
        Returns:
            (B, N, D) normed output, un-normed with ``final_norm: false`` (and the per-block outputs).
        """
        attn_mask = key_padding_to_attn_mask(valid)
        layers = []
        for blk in self.blocks:
            x = blk(x if pos is None else x + pos, attn_mask, norm_key)
            if return_layers:
                layers.append(x)
        norms = getattr(self, "modality_final_norms", None)
        x = norms[norm_key](x) if norm_key is not None and norms is not None else self.norm(x)
        return (x, layers) if return_layers else x
