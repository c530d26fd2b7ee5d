"""CrossMAE's decoder (Fu et al., "Rethinking Patch Dependence for Masked Autoencoders").

The queries are mask tokens (+ their decoder positions) at the positions to reconstruct only; every
block lets them read the encoded visible tokens by cross-attention (no self-attention among the
queries, so each prediction depends on the visible tokens alone and any subset of the hidden
positions can be decoded), then an MLP; pre-norm residuals, a final norm and a linear head.

Because queries do not see each other, decoding a fraction of the hidden positions
(``decode_ratio``, the loss counts only those) gives the same predictions for them as decoding all,
at a fraction of the decoder's cost. With ``layer_mix: n`` each block reads its own learned
weighted sum of the last ``n`` encoder blocks' outputs instead of the last one only (the paper's
feature fusion).

Axis legend: B batch, N grid positions, K visible tokens, Q queries (decoded positions),
M keys (context + visible tokens), L mixed encoder layers, h heads, c head width, d decoder width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from ..backbone.blocks import Attention, Mlp, key_padding_to_attn_mask
from ..masking.base import MaskSpec, gather_tokens
from .base import DECODERS, Decoder, check_decode_ratio

__all__ = ["CrossAttentionDecoder", "CrossBlock"]

_CONTEXTS = ("all", "global", "none")


class CrossBlock(nn.Module):
    """``x + proj(attn(q(norm_q(x)), k, v(norm_kv(ctx))))`` then ``x + mlp(norm2(x))``.

    With ``self_attn`` a pre-norm self-attention among the queries runs first (the paper's ablation).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        self_attn: bool = False,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"decoder width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        if self_attn:
            self.norm_self = nn.LayerNorm(dim, eps=norm_eps)
            self.self_attn = Attention(dim, num_heads, qkv_bias)
        self.norm_q = nn.LayerNorm(dim, eps=norm_eps)
        self.norm_kv = nn.LayerNorm(dim, eps=norm_eps)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, ctx: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """x: (B, Q, d) queries; ctx: (B, M, d) keys/values; attn_mask: (B, 1, 1, M) bool, True = may attend."""
        if hasattr(self, "self_attn"):
            x = x + self.self_attn(self.norm_self(x))
        q = rearrange(self.q(self.norm_q(x)), "b q (h c) -> b h q c", h=self.num_heads)
        k, v = rearrange(self.kv(self.norm_kv(ctx)), "b m (two h c) -> two b h m c", two=2, h=self.num_heads)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        x = x + self.proj(rearrange(y, "b h q c -> b q (h c)"))
        return x + self.mlp(self.norm2(x))


@DECODERS.register("cross")
class CrossAttentionDecoder(Decoder):
    """CrossMAE's cross-attention decoder (512 wide, 8 blocks by default, as MAE's decoder).

    Args:
        in_dim: encoder width (supplied by the model).
        out_dim: values predicted per token, e.g. ``p*p*C`` (supplied by the modality).
        dim, depth, num_heads, mlp_ratio, qkv_bias, norm_eps: decoder shape.
        decode_ratio: fraction of the hidden positions reconstructed per sample, in (0, 1] (the
            model draws them; CrossMAE trains with 0.25-0.75 of them at 75 % masking).
        layer_mix: 0 = every block reads the encoder's output; ``n`` >= 1 = block ``j`` reads
            ``sum_l w[j, l] * layer_l`` over the outputs of the last ``n`` encoder blocks (the last
            one being the encoder's output), with learned ``w`` initialised to the last layer only.
            Set it to the encoder's depth for the paper's fusion of every block.
        context: which other encoded tokens join the keys/values: ``"all"`` (global tokens such as
            ``[CLS]`` and other modalities' visible tokens), ``"global"`` or ``"none"``.
        self_attn: a self-attention among the queries before each cross-attention (the paper's
            ablation; predictions then depend on which positions are decoded together).
    """

    predict = "hidden"

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        dim: int = 512,
        depth: int = 8,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        decode_ratio: float = 1.0,
        layer_mix: int = 0,
        context: str = "all",
        self_attn: bool = False,
    ) -> None:
        super().__init__()
        if context not in _CONTEXTS:
            raise ValueError(f"decoder context must be one of {_CONTEXTS}, got {context!r}")
        if isinstance(layer_mix, bool) or not isinstance(layer_mix, int) or layer_mix < 0:
            raise ValueError(
                f"layer_mix is a count of encoder blocks to mix (0 = the encoder's output only; the encoder's "
                f"depth = all of them), got {layer_mix!r}"
            )
        self.dim = dim
        self.context = context
        self.decode_ratio = check_decode_ratio(decode_ratio)
        self.layer_mix = layer_mix
        self.wants_layers = layer_mix > 0
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(
            CrossBlock(dim, num_heads, mlp_ratio, qkv_bias, norm_eps, self_attn) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.pred = nn.Linear(dim, out_dim)
        nn.init.normal_(self.mask_token, std=0.02)
        if layer_mix:
            weights = torch.zeros(depth, layer_mix)
            weights[:, -1] = 1.0  # start as the plain decoder
            self.layer_weights = nn.Parameter(weights)

    def _mixed(self, layers: list[Tensor] | None) -> Tensor | None:
        """(depth, B, K, in_dim) each block's mix of the last ``layer_mix`` layers, or None without mixing."""
        if not self.layer_mix:
            return None
        if layers is None:
            raise ValueError(
                "decoder layer_mix needs the encoder's per-block outputs (layers=); OmniMaskForPreTraining passes them"
            )
        if len(layers) < self.layer_mix:
            raise ValueError(f"decoder layer_mix {self.layer_mix} exceeds the encoder's {len(layers)} blocks")
        stacked = torch.stack(list(layers[-self.layer_mix :]))  # (L, B, K, in_dim)
        return torch.einsum("jl,lbkd->jbkd", self.layer_weights.to(stacked.dtype), stacked)

    def forward(
        self,
        visible: Tensor,
        spec: MaskSpec,
        pos: Tensor,
        global_tokens: Tensor | None = None,
        other_tokens: Tensor | None = None,
        grid: tuple[int, ...] | None = None,
        valid: Tensor | None = None,
        layers: list[Tensor] | None = None,
    ) -> Tensor:
        """Args:
            visible: (B, K, in_dim) encoded visible tokens of this modality, in ``spec.ids_keep`` order.
            spec: the modality's mask; ``ids_decode`` (B, Q) are the positions to predict (None: all N).
            pos: (N, d) or (B, N, d) decoder positions in grid order.
            global_tokens: (B, G, in_dim) e.g. the encoded ``[CLS]``.
            other_tokens: (B, M', in_dim) other modalities' encoded visible tokens.
            grid: unused (attention is global).
            valid: (B, N) bool, False = padding no query attends to.
            layers: with ``layer_mix``, the modality's (B, K, in_dim) tokens after every encoder block.
        Returns:
            (B, Q, out_dim) at ``spec.ids_decode``, or (B, N, out_dim) in grid order without it.
        """
        b, n = spec.ids_restore.shape
        pos = repeat(pos, "n d -> b n d", b=b) if pos.ndim == 2 else pos
        pos = pos.to(visible.dtype)
        ids = spec.ids_decode if spec.ids_decode is not None else torch.arange(n, device=pos.device).expand(b, n)
        x = self.mask_token.to(pos.dtype) + gather_tokens(pos, ids)  # (B, Q, d)
        keys_pos = gather_tokens(pos, spec.ids_keep)
        ctx = []
        if self.context in ("all", "global") and global_tokens is not None:
            ctx.append(global_tokens)
        if self.context == "all" and other_tokens is not None:
            ctx.append(other_tokens)
        ctx_tokens = self.embed(torch.cat(ctx, dim=1)) if ctx else None
        keys = None if valid is None else torch.gather(valid, 1, spec.ids_keep)
        if keys is not None and ctx_tokens is not None:
            keys = torch.cat([keys.new_ones(b, ctx_tokens.shape[1]), keys], dim=1)
        attn_mask = key_padding_to_attn_mask(keys)
        mixed = self._mixed(layers)
        plain = self.embed(visible) + keys_pos if mixed is None else None
        for j, blk in enumerate(self.blocks):
            kv = plain if mixed is None else self.embed(mixed[j]) + keys_pos
            if ctx_tokens is not None:
                kv = torch.cat([ctx_tokens, kv], dim=1)
            x = blk(x, kv, attn_mask)
        return self.pred(self.norm(x))
