"""MAE's transformer decoder: visible tokens + mask tokens, unshuffled to grid order, self-attention.

With a decoder selection (VideoMAE V2's dual masking) it runs VideoMAE's arrangement instead:
``[visible tokens, mask tokens at the selected positions]`` and predicts only the selected ones.

Axis legend: B batch, N grid positions, K visible tokens, Q selected decoder targets, d width.
"""

from __future__ import annotations

import torch
from einops import repeat
from torch import Tensor, nn

from ..backbone.blocks import Block, key_padding_to_attn_mask
from ..masking.base import MaskSpec, gather_tokens
from .base import DECODERS, Decoder, check_decode_ratio

__all__ = ["TransformerDecoder"]

_CONTEXTS = ("all", "global", "none")


@DECODERS.register("transformer")
class TransformerDecoder(Decoder):
    """Lightweight decoder of MAE (512 wide, 8 blocks by default).

    Args:
        in_dim: encoder width (supplied by the model).
        out_dim: values predicted per token, e.g. ``p*p*C`` (supplied by the modality).
        dim, depth, num_heads, mlp_ratio, qkv_bias, norm_eps: decoder shape (``dim: null`` = the
            encoder's width).
        context: which other encoded tokens join the decoder's self-attention: ``"all"`` (global
            tokens and other modalities' visible tokens; for a single modality this is exactly
            MAE's ``[CLS] + grid``), ``"global"`` (only ``[CLS]``-like tokens) or ``"none"``.
        embed_bias: bias in the encoder-to-decoder projection (MAE: yes; VideoMAE: no).
        final_norm_eps: eps of the norm before the prediction head (default ``norm_eps``;
            transformers' VideoMAE uses PyTorch's 1e-5 there).
        project: ``False`` feeds the encoder output in as is, without the encoder-to-decoder
            linear (Point-MAE: the decoder has the encoder's width); requires ``dim == in_dim``.
        pos_every_block: add the positions before every block (Point-MAE) instead of once.
        drop_path: stochastic depth rising linearly from 0 to this over the blocks (Point-MAE: 0.1).
        predict: ``"all"`` grid positions (MAE) or only the ``"hidden"`` ones (Point-MAE: the model
            then selects the hidden positions as the decoder's targets, VideoMAE's arrangement).
        decode_ratio: fraction of the hidden positions reconstructed, in (0, 1]: below 1 the model
            draws that many per sample (decoder-side masking) and the decoder runs VideoMAE's
            arrangement on them, ``[visible, mask tokens at the chosen positions]``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        dim: int | None = 512,
        depth: int = 8,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        context: str = "all",
        embed_bias: bool = True,
        final_norm_eps: float | None = None,
        project: bool = True,
        pos_every_block: bool = False,
        drop_path: float = 0.0,
        predict: str = "all",
        decode_ratio: float = 1.0,
    ) -> None:
        super().__init__()
        dim = in_dim if dim is None else dim
        if context not in _CONTEXTS:
            raise ValueError(f"decoder context must be one of {_CONTEXTS}, got {context!r}")
        if predict not in self.PREDICT:
            raise ValueError(f"decoder predict must be one of {self.PREDICT}, got {predict!r}")
        if not project and dim != in_dim:
            raise ValueError(f"decoder project=false needs the encoder's width: dim {dim} != encoder dim {in_dim}")
        self.dim = dim
        self.context = context
        self.predict = predict
        self.decode_ratio = check_decode_ratio(decode_ratio)
        self.pos_every_block = bool(pos_every_block)
        self.embed = nn.Linear(in_dim, dim, bias=embed_bias) if project else nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        rates = torch.linspace(0, drop_path, depth).tolist() if depth > 1 else [drop_path] * depth
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, qkv_bias, norm_eps, rate) for rate in rates)
        self.norm = nn.LayerNorm(dim, eps=norm_eps if final_norm_eps is None else final_norm_eps)
        self.pred = nn.Linear(dim, out_dim)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(
        self,
        visible: Tensor,
        spec: MaskSpec,
        pos: Tensor,
        global_tokens: Tensor | None = None,
        other_tokens: Tensor | None = None,
        grid: tuple[int, ...] | None = None,
        valid: Tensor | None = None,
    ) -> Tensor:
        """Args:
            visible: (B, K, in_dim) encoded visible tokens of this modality, in ``spec.ids_keep`` order.
            spec: the modality's mask.
            pos: (N, dim) or (B, N, dim) decoder position table in grid order.
            global_tokens: (B, G, in_dim) e.g. the encoded ``[CLS]``.
            other_tokens: (B, M, in_dim) other modalities' encoded visible tokens.
            grid: the modality's token grid (unused here: attention is global; windowed decoders need it).
            valid: optional (B, N) bool over the grid, False = padding that no position attends to.
        Returns:
            (B, N, out_dim) predictions for every grid position, or (B, Q, out_dim) for the
            positions ``spec.ids_decode`` when the spec selects decoder targets.
        """
        b, n = spec.ids_restore.shape
        x = self.embed(visible)
        pos = repeat(pos.to(x.dtype), "n d -> b n d", b=b) if pos.ndim == 2 else pos.to(x.dtype)
        if spec.ids_decode is None:
            x = torch.cat([x, repeat(self.mask_token, "1 1 d -> b l d", b=b, l=n - x.shape[1]).to(x.dtype)], dim=1)
            x = gather_tokens(x, spec.ids_restore)
            num_out = n
            keys = valid
        else:
            queries = repeat(self.mask_token.to(x.dtype), "1 1 d -> b q d", b=b, q=spec.ids_decode.shape[1])
            x = torch.cat([x, queries], dim=1)
            pos = torch.cat([gather_tokens(pos, spec.ids_keep), gather_tokens(pos, spec.ids_decode)], dim=1)
            num_out = queries.shape[1]
            keys = (
                None
                if valid is None
                else torch.cat([torch.gather(valid, 1, spec.ids_keep), torch.gather(valid, 1, spec.ids_decode)], 1)
            )
        ctx = []
        if self.context in ("all", "global") and global_tokens is not None:
            ctx.append(global_tokens)
        if self.context == "all" and other_tokens is not None:
            ctx.append(other_tokens)
        if ctx:
            ctx_tokens = self.embed(torch.cat(ctx, dim=1))
            x = torch.cat([ctx_tokens, x], dim=1)
            pos = torch.cat([pos.new_zeros(b, ctx_tokens.shape[1], pos.shape[-1]), pos], dim=1)
            if keys is not None:
                keys = torch.cat([keys.new_ones(b, ctx_tokens.shape[1]), keys], dim=1)
        attn_mask = key_padding_to_attn_mask(keys)
        if not self.pos_every_block:
            x = x + pos
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            # The last block updates only the rows the head reads (the others still serve as keys
            # and values): the visible and [CLS] rows skip its query, projection and MLP.
            x = blk(x + pos if self.pos_every_block else x, attn_mask, queries=num_out if i == last else None)
        return self.pred(self.norm(x[:, -num_out:]))
