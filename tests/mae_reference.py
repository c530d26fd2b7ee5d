"""A small stand-alone MAE (pretraining model and fine-tuned ViT classifiers) for parity tests.

Written from the published description (``shared/reference``, MAE section), not from omnimask:
timm-0.3.2-style pre-norm blocks (LayerNorm eps 1e-6, fused qkv with bias, exact-GELU MLP) with an
explicit softmax attention, a Conv2d patch embedding, a ``[CLS]`` token, fixed 2-D sin-cos tables
built here with NumPy (cls row zero, first half of the channels from the column index), MAE's
random masking by argsort of the noise, a decoder that appends mask tokens and unshuffles, and the
loss on hidden patches with optional per-patch normalisation (unbiased variance, eps 1e-6 inside
the root). Module names follow the official checkpoints' keys, so ``state_dict()`` is the layout
the converter reads.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

Norm = partial(nn.LayerNorm, eps=1e-6)


def sincos_table(dim: int, side: int, cls_row: bool = True) -> Tensor:
    """(1, [1 +] side^2, dim) fixed table; half the channels per axis, ``[sin | cos]`` within each half."""

    def one_axis(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        angles = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    ww, hh = np.meshgrid(np.arange(side, dtype=np.float64), np.arange(side, dtype=np.float64))  # w varies fastest
    table = np.concatenate([one_axis(dim // 2, ww), one_axis(dim // 2, hh)], axis=1)
    if cls_row:
        table = np.concatenate([np.zeros((1, dim)), table], axis=0)
    return torch.from_numpy(table).float()[None]


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (c // self.num_heads) ** -0.5).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.attn = Norm(dim), Attention(dim, num_heads)
        self.norm2, self.mlp = Norm(dim), Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MaskedAutoencoderViT(nn.Module):
    """``forward(imgs, noise, mask_ratio) -> (loss, pred (B, L, p*p*3), mask (B, L) with 1 = hidden)``."""

    def __init__(
        self,
        img_size: int = 32,
        patch_size: int = 4,
        in_chans: int = 3,
        dim: int = 64,
        depth: int = 3,
        num_heads: int = 4,
        decoder_dim: int = 48,
        decoder_depth: int = 2,
        decoder_num_heads: int = 3,
        mlp_ratio: float = 4.0,
        norm_pix_loss: bool = False,
    ) -> None:
        super().__init__()
        self.patch, self.side, self.norm_pix_loss = patch_size, img_size // patch_size, norm_pix_loss
        self.patch_embed = PatchEmbed(patch_size, in_chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(sincos_table(dim, self.side), requires_grad=False)
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = Norm(dim)
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos_embed = nn.Parameter(sincos_table(decoder_dim, self.side), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_dim, decoder_num_heads, mlp_ratio) for _ in range(decoder_depth)
        )
        self.decoder_norm = Norm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, patch_size**2 * in_chans)

    def patchify(self, imgs: Tensor) -> Tensor:
        n, c, p, h = imgs.shape[0], imgs.shape[1], self.patch, self.side
        x = imgs.reshape(n, c, h, p, h, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(n, h * h, p * p * c)

    @staticmethod
    def random_masking(x: Tensor, mask_ratio: float, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n, length, d = x.shape
        keep = int(length * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)  # small noise is kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        x_kept = torch.gather(x, 1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
        mask = torch.ones(n, length)
        mask[:, :keep] = 0
        return x_kept, torch.gather(mask, 1, ids_restore), ids_restore

    def forward_encoder(self, imgs: Tensor, mask_ratio: float, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x: Tensor, ids_restore: Tensor) -> Tensor:
        x = self.decoder_embed(x)
        n, length = ids_restore.shape
        tokens = torch.cat([x[:, 1:], self.mask_token.expand(n, length + 1 - x.shape[1], -1)], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore[..., None].expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], tokens], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward_loss(self, imgs: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs: Tensor, noise: Tensor, mask_ratio: float = 0.75) -> tuple[Tensor, Tensor, Tensor]:
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask


class VisionTransformer(nn.Module):
    """The fine-tuned classifier: ``global_pool`` (mean of patch tokens -> fc_norm, no ``norm``) or
    ``[CLS]`` (``norm`` -> first token); ``probe`` adds the linear probe's affine-free BatchNorm."""

    def __init__(
        self,
        img_size: int = 32,
        patch_size: int = 4,
        in_chans: int = 3,
        dim: int = 64,
        depth: int = 3,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        num_classes: int = 7,
        global_pool: bool = True,
        probe: bool = False,
    ) -> None:
        super().__init__()
        self.global_pool = global_pool
        self.patch_embed = PatchEmbed(patch_size, in_chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(sincos_table(dim, img_size // patch_size))
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio) for _ in range(depth))
        if global_pool:
            self.fc_norm = Norm(dim)
        else:
            self.norm = Norm(dim)
        linear = nn.Linear(dim, num_classes)
        self.head = nn.Sequential(nn.BatchNorm1d(dim, affine=False, eps=1e-6), linear) if probe else linear

    def forward(self, imgs: Tensor) -> Tensor:
        x = self.patch_embed(imgs)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        feature = self.fc_norm(x[:, 1:].mean(dim=1)) if self.global_pool else self.norm(x)[:, 0]
        return self.head(feature)


def randomize_(model: nn.Module, seed: int = 0, std: float = 0.1) -> nn.Module:
    """Every weight random (LayerNorms around 1, biases and tokens around 0), fixed tables kept
    except the encoder table's cls row (fine-tuning trains it; the converter folds it into cls_token).
    BatchNorm statistics random too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            noise = torch.randn(t.shape, generator=g)
            if name in ("pos_embed", "decoder_pos_embed"):
                if name == "pos_embed" and isinstance(model, VisionTransformer):
                    t[:, 0] = noise[:, 0] * std
            elif name.endswith("running_var"):
                t.copy_(noise.abs() + 0.5)
            elif "norm" in name and name.endswith("weight"):
                t.copy_(1.0 + noise * std)
            else:
                t.copy_(noise * std)
    return model.eval()
