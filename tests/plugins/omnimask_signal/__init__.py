"""A third-party modality, installed as a plugin: 1-D signals cut into fixed-length chunks.

It lives outside the omnimask package and is found through the ``omnimask.modalities`` entry point
declared by ``omnimask_signal-0.1.dist-info/entry_points.txt`` beside it (the test suite puts this
folder on ``sys.path``, which is what installing the distribution does). Nothing in omnimask names
it, yet it trains beside ``image`` in one model, appears in ``omnimask list`` and loads with
``from_pretrained`` in a fresh process.

Axis legend: B batch, C channels, L samples, n chunks, c samples per chunk.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from omnimask.backbone.pos_embed import sincos_1d
from omnimask.modalities import ModalitySpec, Tokenizer, register_modality


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
        return rearrange(x, "b C (n c) -> b n (c C)", c=self.chunk)

    def unpatchify(self, patches, grid):
        return rearrange(patches, "b n (c C) -> b C (n c)", c=self.chunk, n=grid[0])


def _example(cfg: dict, batch_size: int) -> Tensor:
    return torch.randn(batch_size, cfg["channels"], cfg["length"])


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
