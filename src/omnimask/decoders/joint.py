"""One decoder over several modalities together (CAV-MAE's shared decoder).

The model-level ``joint_decoder`` section names the modalities it decodes; each of them gets a
:class:`JointHead` as its ``decoder`` (its width, its learned decoder-modality embedding and its
prediction head), and :class:`JointDecoder` holds what they share: the encoder-to-decoder
projection, one mask token, the blocks and the final norm. Per modality the visible tokens are
projected, completed with mask tokens and put back in grid order (MAE), its decoder positions and
modality embedding are added; the modalities' sequences are concatenated in the section's order
(``[CLS]`` first when the encoder has one) and decoded together; each head predicts its own part.

Axis legend: B batch, N_m grid positions of modality m, K_m its visible tokens, d width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import repeat
from torch import Tensor, nn

from ..backbone.blocks import Block, key_padding_to_attn_mask
from ..masking.base import MaskSpec, gather_tokens
from .base import DECODERS, Decoder

__all__ = ["JointDecoder", "JointDecoderConfig", "JointHead"]


@dataclass
class JointDecoderConfig:
    """The ``joint_decoder`` section (defaults: CAV-MAE's 512-wide, 8-block decoder)."""

    modalities: list[str] = field(default_factory=list)
    dim: int = 512
    depth: int = 8
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    #: Learned per-modality embeddings added to every decoder token (CAV-MAE's decoder_modality_*).
    modality_embed: bool = True


@DECODERS.register("joint")
class JointHead(Decoder):
    """A modality's part of the joint decoder: its width, modality embedding and prediction head.
    It predicts nothing alone; the model runs it inside :class:`JointDecoder`."""

    def __init__(self, in_dim: int, out_dim: int, dim: int = 512, modality_embed: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.pred = nn.Linear(dim, out_dim)
        self.modality_embed = nn.Parameter(torch.zeros(1, 1, dim)) if modality_embed else None
        if self.modality_embed is not None:
            nn.init.normal_(self.modality_embed, std=0.02)

    def forward(self, *args, **kwargs) -> Tensor:
        raise RuntimeError("a `joint` decoder head runs inside the model's joint_decoder (see its config section)")


class JointDecoder(nn.Module):
    """The shared trunk: projection, mask token, blocks, norm."""

    def __init__(self, cfg: JointDecoderConfig, in_dim: int) -> None:
        super().__init__()
        self.keys = list(cfg.modalities)
        self.embed = nn.Linear(in_dim, cfg.dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        nn.init.normal_(self.mask_token, std=0.02)

    def _restore(self, visible: Tensor, spec: MaskSpec) -> Tensor:
        """(B, K, in_dim) visible tokens -> (B, N, d) in grid order with mask tokens at the hidden."""
        if spec.ids_decode is not None:
            raise ValueError(
                "the joint decoder predicts every position; a decoder selection (dual masking) is not supported"
            )
        b, n = spec.ids_restore.shape
        x = self.embed(visible)
        x = torch.cat([x, repeat(self.mask_token, "1 1 d -> b l d", b=b, l=n - x.shape[1]).to(x.dtype)], dim=1)
        return gather_tokens(x, spec.ids_restore)

    def forward(
        self,
        parts: dict[str, Tensor],
        specs: dict[str, MaskSpec],
        pos: dict[str, Tensor],
        heads: dict[str, JointHead],
        global_tokens: Tensor | None = None,
        valid: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Predictions ``{m: (B, N_m, out_dim_m)}`` for the modalities of ``parts`` (in this order).

        Args:
            parts: per modality its encoded visible tokens (B, K_m, in_dim).
            specs: per modality its mask.
            pos: per modality (N_m, d) or (B, N_m, d) decoder positions in grid order.
            heads: per modality its :class:`JointHead`.
            global_tokens: (B, G, in_dim) encoded ``[CLS]``-like tokens, decoded first, or None.
            valid: per modality (B, N_m) bool, False = padding nothing attends to.
        """
        seqs, keys_valid = [], []
        for k, visible in parts.items():
            x = self._restore(visible, specs[k])
            p = pos[k].to(x.dtype)
            x = x + (p if p.ndim == 3 else p.unsqueeze(0))
            if heads[k].modality_embed is not None:
                x = x + heads[k].modality_embed.to(x.dtype)
            seqs.append(x)
            keys_valid.append((valid or {}).get(k))
        b = seqs[0].shape[0]
        g = 0
        if global_tokens is not None and global_tokens.shape[1]:
            seqs.insert(0, self.embed(global_tokens))
            keys_valid.insert(0, None)
            g = global_tokens.shape[1]
        x = torch.cat(seqs, dim=1)
        attn_mask = None
        if any(v is not None for v in keys_valid):
            flags = [v if v is not None else torch.ones(b, s.shape[1], dtype=torch.bool, device=x.device)
                     for v, s in zip(keys_valid, seqs)]  # fmt: skip
            attn_mask = key_padding_to_attn_mask(torch.cat(flags, dim=1))
        for blk in self.blocks:
            x = blk(x, attn_mask)
        x = self.norm(x[:, g:])
        sizes = [s.shape[1] for s in seqs[1 if g else 0 :]]
        return {k: heads[k].pred(y) for k, y in zip(parts, torch.split(x, sizes, dim=1))}
