"""A second, test-only modality: 1-D signals cut into fixed-length chunks.

It exists to prove the core is modality-agnostic: nothing in omnimask knows about it, yet it
trains beside ``image`` in one model through the same registries.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omnimask.backbone.pos_embed import sincos_1d
from omnimask.modalities import MODALITIES, ModalitySpec, Tokenizer, register_modality


class SignalTokenizer(Tokenizer):
    def __init__(self, dim: int, length: int = 64, chunk: int = 8, channels: int = 2) -> None:
        super().__init__()
        if length % chunk:
            raise ValueError(f"signal: chunk {chunk} does not divide length {length}")
        self.length, self.chunk, self.channels = length, chunk, channels
        self.patch_dim = chunk * channels
        self.base_grid = (length // chunk,)
        self.proj = nn.Linear(self.patch_dim, dim)
        self.register_buffer("pos", self.positions(self.base_grid, dim), persistent=False)

    def grid(self, x: Tensor, interpolate_pos: bool = False) -> tuple[int]:
        if x.ndim != 3 or x.shape[1] != self.channels or x.shape[2] != self.length:
            raise ValueError(f"signal: expected (B, {self.channels}, {self.length}), got {tuple(x.shape)}")
        return self.base_grid

    def positions(self, grid, dim):
        return sincos_1d(dim, torch.arange(grid[0])).float()

    def forward(self, x, interpolate_pos=False):
        grid = self.grid(x)
        return self.proj(self.patchify(x)) + self.pos, grid

    def patchify(self, x):
        b = x.shape[0]
        return x.reshape(b, self.channels, -1, self.chunk).permute(0, 2, 3, 1).reshape(b, -1, self.patch_dim)

    def unpatchify(self, patches, grid):
        b = patches.shape[0]
        return patches.reshape(b, grid[0], self.chunk, self.channels).permute(0, 3, 1, 2).reshape(b, self.channels, -1)


def _example(cfg: dict, batch_size: int) -> Tensor:
    return torch.randn(batch_size, cfg.get("channels", 2), cfg.get("length", 64))


if "signal" not in MODALITIES:
    register_modality(
        ModalitySpec(
            name="signal",
            tokenizer=SignalTokenizer,
            example_input=_example,
            masking={"name": "random", "ratio": 0.5},
            decoder={"name": "transformer", "dim": 16, "depth": 1, "num_heads": 2},
            objective={"name": "mse", "norm": "none"},
            description="test-only 1-D signal modality",
        )
    )
