"""M3AE's language head: an MLP from each encoded token to vocabulary logits (BERT's MLM head).

It predicts a position from the encoder's output *at that position*, so the encoder must have
seen every position: use it with ``encoder_mask: replace`` (hidden tokens enter the encoder as
the mask symbol), as M3AE's medical variant does.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..masking.base import MaskSpec, gather_tokens
from .base import DECODERS, Decoder

__all__ = ["MLPDecoder"]


@DECODERS.register("mlp")
class MLPDecoder(Decoder):
    """``Linear(in_dim, dim) -> GELU -> LayerNorm -> Linear(dim, out_dim)`` per token.

    Args:
        in_dim, out_dim: encoder width and values per token (the vocabulary size for text).
        dim: hidden width (``null``: the encoder's).
        norm_eps: LayerNorm epsilon (BERT: 1e-12; 1e-6 here like the other decoders).
    """

    def __init__(self, in_dim: int, out_dim: int, dim: int | None = None, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = in_dim if dim is None else dim
        self.dense = nn.Linear(in_dim, self.dim)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(self.dim, eps=norm_eps)
        self.pred = nn.Linear(self.dim, out_dim)

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
        """``visible`` must hold every position (``encoder_mask: replace``); returns (B, N, out_dim)
        in grid order, or (B, Q, out_dim) at ``spec.ids_decode``."""
        b, n = spec.ids_restore.shape
        if visible.shape[1] != n:
            raise ValueError(
                f"the mlp decoder predicts each position from the encoder's output there, but the encoder saw "
                f"{visible.shape[1]} of {n} positions; set the modality's encoder_mask: replace"
            )
        x = gather_tokens(visible, spec.ids_restore)  # grid order
        if spec.ids_decode is not None:
            x = gather_tokens(x, spec.ids_decode)
        return self.pred(self.norm(self.act(self.dense(x))))
