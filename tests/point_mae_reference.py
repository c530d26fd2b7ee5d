"""A small stand-alone Point-MAE (pretraining and fine-tuning encoder) for parity tests.

Written from the published description (``shared/reference``, Point-MAE section): kernel-1 Conv1d
mini-PointNet with BatchNorm, centre-position MLP added before every block, timm-style blocks
without q/k/v bias, decoder fed ``[visible, mask tokens]`` returning the last M outputs, a Conv1d
head, Chamfer L2 on the hidden groups. Module names follow the official checkpoints' keys, so its
``state_dict()`` is the layout the converter reads. Point-MAE itself cannot be installed here
(CUDA-only extensions), so this file stands in for it; its FPS and kNN are the obvious loops.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def fps_reference(xyz: Tensor, num: int) -> Tensor:
    """pointnet2's rule, one cloud at a time: start at index 0, never pick |p|^2 <= 1e-3."""
    out = []
    for cloud in xyz:
        allowed = (cloud * cloud).sum(-1) > 1e-3
        chosen = [0]
        dist = torch.full((cloud.shape[0],), float("inf"))
        for _ in range(num - 1):
            dist = torch.minimum(dist, ((cloud - cloud[chosen[-1]]) ** 2).sum(-1))
            chosen.append(int(torch.where(allowed, dist, torch.tensor(-1.0)).argmax()))
        out.append(torch.tensor(chosen))
    return torch.stack(out)


class Group(nn.Module):
    def __init__(self, num_group: int, group_size: int) -> None:
        super().__init__()
        self.num_group, self.group_size = num_group, group_size

    def forward(self, xyz: Tensor) -> tuple[Tensor, Tensor]:
        idx = fps_reference(xyz, self.num_group)
        center = torch.stack([c[i] for c, i in zip(xyz, idx)])
        knn = torch.cdist(center, xyz).topk(self.group_size, largest=False).indices  # (B, G, k)
        neighborhood = torch.stack([c[i] for c, i in zip(xyz, knn)])
        return neighborhood - center.unsqueeze(2), center


class Encoder(nn.Module):
    def __init__(self, encoder_channel: int) -> None:
        super().__init__()
        self.first_conv = nn.Sequential(nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(), nn.Conv1d(128, 256, 1))
        self.second_conv = nn.Sequential(
            nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(), nn.Conv1d(512, encoder_channel, 1)
        )

    def forward(self, groups: Tensor) -> Tensor:
        b, g, n, _ = groups.shape
        f = self.first_conv(groups.reshape(b * g, n, 3).transpose(2, 1))
        f = torch.cat([f.max(dim=2, keepdim=True)[0].expand(-1, -1, n), f], dim=1)
        return self.second_conv(f).max(dim=2)[0].reshape(b, g, -1)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (c // self.num_heads) ** -0.5).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, num_heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, 4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Blocks(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, num_heads) for _ in range(depth))

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x + pos)
        return x


def pos_mlp(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))


class MaskTransformer(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.encoder = Encoder(dim)
        self.pos_embed = pos_mlp(dim)
        self.blocks = Blocks(dim, depth, num_heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, neighborhood: Tensor, center: Tensor, mask: Tensor) -> Tensor:
        tokens = self.encoder(neighborhood)
        b, _, c = tokens.shape
        x_vis = tokens[~mask].reshape(b, -1, c)
        pos = self.pos_embed(center[~mask].reshape(b, -1, 3))
        return self.norm(self.blocks(x_vis, pos))


class Decoder(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, pos: Tensor, m: int) -> Tensor:
        for blk in self.blocks:
            x = blk(x + pos)
        return self.norm(x[:, -m:])


def chamfer_l2(a: Tensor, b: Tensor) -> Tensor:
    d = ((a.unsqueeze(2) - b.unsqueeze(1)) ** 2).sum(-1)
    return d.min(2)[0].mean() + d.min(1)[0].mean()


class PointMAE(nn.Module):
    """Pretraining model: ``forward(pts, mask) -> (loss, rebuilt (B, M, k, 3))``."""

    def __init__(
        self,
        dim: int = 48,
        depth: int = 2,
        num_heads: int = 4,
        decoder_depth: int = 2,
        num_group: int = 16,
        group_size: int = 8,
    ):
        super().__init__()
        self.MAE_encoder = MaskTransformer(dim, depth, num_heads)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_pos_embed = pos_mlp(dim)
        self.MAE_decoder = Decoder(dim, decoder_depth, num_heads)
        self.group_divider = Group(num_group, group_size)
        self.increase_dim = nn.Sequential(nn.Conv1d(dim, 3 * group_size, 1))

    def forward(self, pts: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        neighborhood, center = self.group_divider(pts)
        x_vis = self.MAE_encoder(neighborhood, center, mask)
        b, _, c = x_vis.shape
        pos_vis = self.decoder_pos_embed(center[~mask]).reshape(b, -1, c)
        pos_mask = self.decoder_pos_embed(center[mask]).reshape(b, -1, c)
        m = pos_mask.shape[1]
        x = self.MAE_decoder(
            torch.cat([x_vis, self.mask_token.expand(b, m, -1)], 1), torch.cat([pos_vis, pos_mask], 1), m
        )
        rebuilt = self.increase_dim(x.transpose(1, 2)).transpose(1, 2).reshape(b, m, -1, 3)
        gt = neighborhood[mask].reshape(b, m, -1, 3)
        return chamfer_l2(rebuilt.reshape(b * m, -1, 3), gt.reshape(b * m, -1, 3)), rebuilt


class PointTransformer(nn.Module):
    """Fine-tuning encoder (head omitted here): ``forward(pts) -> normed tokens [CLS, groups]``."""

    def __init__(
        self,
        dim: int = 48,
        depth: int = 2,
        num_heads: int = 4,
        num_group: int = 16,
        group_size: int = 8,
        num_classes: int = 5,
    ):
        super().__init__()
        self.group_divider = Group(num_group, group_size)
        self.encoder = Encoder(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = pos_mlp(dim)
        self.blocks = Blocks(dim, depth, num_heads)
        self.norm = nn.LayerNorm(dim)
        self.cls_head_finetune = nn.Sequential(nn.Linear(2 * dim, num_classes))

    def forward(self, pts: Tensor) -> Tensor:
        neighborhood, center = self.group_divider(pts)
        tokens = self.encoder(neighborhood)
        b = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], 1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), self.pos_embed(center)], 1)
        return self.norm(self.blocks(x, pos))


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter and BatchNorm statistic random (a fresh init hides layout mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                v = torch.randn(t.shape, generator=g) * 0.2
                if name.endswith("running_var"):
                    v = v.abs() + 0.5
                t.copy_(v)
    return model
