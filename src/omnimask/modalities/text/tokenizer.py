"""Text modality: token ids -> embeddings with 1-D positions, padding-aware.

Input: ``(B, L)`` integer token ids from a :class:`omnimask.data.TextTokenizer` (the project's
sentencepiece model by default), padded with ``pad_id`` up to at most ``max_length``. Padding is
found from the ids: the tokenizer returns ``valid = ids != pad_id``, so padded positions are
attention-masked in the encoder and decoders, never reconstruction targets and never counted in
the loss; noise-driven masking keeps them visible so the ratio falls on real tokens.

The reconstruction target of a position is its token id (``patch_dim`` 1); the decoder predicts
``vocab_size`` logits per position (``output_dim``), scored by the ``cross_entropy`` objective.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...backbone.pos_embed import sincos_1d
from ..base import TokenizedInput, Tokenizer

__all__ = ["TextTokenEmbedding", "TEXT_POS_EMBEDS"]

TEXT_POS_EMBEDS = ("sincos", "learned")


class TextTokenEmbedding(Tokenizer):
    """(B, L) token ids -> (B, L, dim) embeddings plus 1-D positions.

    Args:
        dim: encoder width.
        vocab_size: embedding rows (the shipped sentencepiece model: 1000).
        max_length: longest sequence (position table size).
        pad_id, mask_id: the padding id and the mask symbol (``encoder_mask: replace``).
        pos_embed: ``sincos`` (fixed 1-D, as M3AE) or ``learned``.
    """

    def __init__(
        self,
        dim: int,
        vocab_size: int = 1000,
        max_length: int = 32,
        pad_id: int = 0,
        mask_id: int = 4,
        pos_embed: str = "sincos",
    ) -> None:
        super().__init__()
        for name, v in (("vocab_size", vocab_size), ("max_length", max_length)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"text tokenizer: {name} must be a positive int, got {v!r}")
        for name, v in (("pad_id", pad_id), ("mask_id", mask_id)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < vocab_size:
                raise ValueError(f"text tokenizer: {name} must be an id in 0..{vocab_size - 1}, got {v!r}")
        if pos_embed not in TEXT_POS_EMBEDS:
            raise ValueError(f"text tokenizer: pos_embed must be one of {TEXT_POS_EMBEDS}, got {pos_embed!r}")
        self.dim, self.vocab_size, self.max_length = dim, vocab_size, max_length
        self.pad_id, self.mask_id = pad_id, mask_id
        self.channels, self.patch_dim = 1, 1
        self.base_grid = (max_length,)
        self.embed = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.embed.weight, std=0.02)
        if pos_embed == "learned":
            self.pos_table = nn.Parameter(torch.zeros(1, max_length, dim))
            nn.init.trunc_normal_(self.pos_table, std=0.02)
        else:
            self.register_buffer("pos_table", self.positions(self.base_grid, dim).unsqueeze(0), persistent=False)

    @property
    def output_dim(self) -> int:
        return self.vocab_size

    def grid(self, x: Tensor, interpolate_pos: bool = False) -> tuple[int]:
        if x.ndim != 2:
            raise ValueError(f"text: expected (batch, length) token ids, got shape {tuple(x.shape)}")
        if x.is_floating_point() or x.dtype == torch.bool:
            raise ValueError(f"text: expected integer token ids, got {x.dtype} (tokenize the captions first)")
        if not 1 <= x.shape[1] <= self.max_length:
            raise ValueError(
                f"text: sequences of {x.shape[1]} tokens; the model takes 1..{self.max_length} (truncate when tokenizing)"
            )
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
            raise ValueError(f"text: token ids must be in 0..{self.vocab_size - 1}, got {int(x.min())}..{int(x.max())}")
        return (x.shape[1],)

    def positions(self, grid: tuple[int, ...], dim: int) -> Tensor:
        return sincos_1d(dim, torch.arange(grid[0])).float()

    def tokenize(self, x: Tensor, interpolate_pos: bool = False) -> TokenizedInput:
        grid = self.grid(x)
        tokens = self.embed(x) + self.pos_table[:, : grid[0]].to(self.embed.weight.dtype)
        return TokenizedInput(tokens, grid, valid=x != self.pad_id)

    def forward(self, x: Tensor, interpolate_pos: bool = False) -> tuple[Tensor, tuple[int]]:
        t = self.tokenize(x)
        return t.tokens, t.grid

    def patchify(self, x: Tensor) -> Tensor:
        """(B, L) ids -> (B, L, 1): the target of each position is its id."""
        return x.unsqueeze(-1)

    def unpatchify(self, patches: Tensor, grid: tuple[int, ...]) -> Tensor:
        return patches.squeeze(-1)

    def replace_hidden(self, x: Tensor, mask: Tensor) -> Tensor:
        """Hidden real tokens become ``mask_id`` (padding stays padding)."""
        return torch.where(mask & (x != self.pad_id), torch.full_like(x, self.mask_id), x)
