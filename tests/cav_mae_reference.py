"""A small stand-alone CAV-MAE (contrastive audio-visual MAE) for parity tests.

Written from the published description (``shared/reference/anchors_av_point_vl.md``, section 1),
not from omnimask and not from the original code:

* audio ``[B, T, F]`` is turned into ``[B, 1, F, T]`` (``unsqueeze(1).transpose(2, 3)``) and cut by
  a ``Conv2d(1, D, p, p)``: tokens frequency-major (``index = f * T' + t``); the visual frame by a
  ``Conv2d(3, D, p, p)``; no ``[CLS]`` token;
* fixed 2-D sin-cos tables built here with NumPy on the (rows, cols) grid, MAE's convention (the
  first half of the channels encodes the column index: time for audio), plus a learned
  modality-type embedding per modality (encoder and decoder);
* ``Block`` with one attention + MLP and three LayerNorm pairs (``norm1/norm2`` joint,
  ``norm1_a/norm2_a``, ``norm1_v/norm2_v``) picked by ``forward(x, modality)``; PyTorch's default
  LayerNorm eps (1e-5) everywhere; explicit softmax attention;
* MAE random masking from given noise (argsort, ``int(L * (1 - ratio))`` kept) per modality;
* the encoder's three passes: ``blocks_a`` / ``blocks_v``, then the joint pass through
  ``blocks_u`` + ``norm``, then each modality alone through ``blocks_u`` with its own norms +
  ``norm_a`` / ``norm_v``. As published, the alone passes do *not* chain when there is more than
  one shared block (each block re-reads the modality's input; ``chain_alone=True`` chains them,
  as CAV-MAE's retrieval and fine-tuning passes do);
* one shared decoder: ``decoder_embed``, the joint sequence split at ``n_a - n_masked_a`` (the
  visible audio count), mask tokens appended and each part unshuffled, ``[audio; visual]`` with
  decoder tables and decoder modality embeddings, blocks, ``decoder_norm``, per-modality heads;
* the MAE loss on MAE-``patchify``d targets (audio patchified in its ``[B, 1, F, T]`` layout, so
  a patch vector is (freq, time)-ordered), optionally norm-pix (unbiased variance, eps 1e-6);
* the contrastive loss exactly as section 1.6: ``total = a @ v.T / 0.05`` on L2-normalised
  mean-pooled alone-pass features, ``-mean(diag(log_softmax(total, dim=0)))``.

Module names follow the official checkpoints' keys, so ``state_dict()`` (with a ``module.``
prefix added, as DataParallel saves it) is the layout the converter reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

TEMPERATURE = 0.05


def sincos_table(dim: int, rows: int, cols: int) -> Tensor:
    """(1, rows * cols, dim) MAE table, tokens row-major; first half of the channels from the column."""

    def one_axis(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        angles = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    cc, rr = np.meshgrid(np.arange(cols, dtype=np.float64), np.arange(rows, dtype=np.float64))
    table = np.concatenate([one_axis(dim // 2, cc), one_axis(dim // 2, rr)], axis=1)
    return torch.from_numpy(table).float()[None]


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm block with three LayerNorm pairs; ``modality`` None / ``'a'`` / ``'v'`` picks one."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.norm1, self.norm1_a, self.norm1_v = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2, self.norm2_a, self.norm2_v = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, modality: str | None = None) -> Tensor:
        n1, n2 = {None: (self.norm1, self.norm2), "a": (self.norm1_a, self.norm2_a), "v": (self.norm1_v, self.norm2_v)}[
            modality
        ]
        x = x + self.attn(n1(x))
        return x + self.mlp(n2(x))


def random_masking(x: Tensor, ratio: float, noise: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """MAE's per-sample masking: ``(kept tokens, mask 1 = removed, ids_restore, ids_keep)``."""
    b, n, d = x.shape
    keep = int(n * (1 - ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, d))
    mask = torch.ones(b, n, device=x.device)
    mask[:, :keep] = 0
    return kept, torch.gather(mask, 1, ids_restore), ids_restore, ids_keep


def patchify(x: Tensor, p: int, q: int | None = None) -> Tensor:
    """MAE's patchify: (B, C, H, W) -> (B, (H/p)(W/q), p*q*C), patch vectors (p_h, q_w, C) (q = p)."""
    q = q or p
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // q, q)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // q), p * q * c)


@dataclass
class RefOutput:
    loss: Tensor
    loss_mae_a: Tensor
    loss_mae_v: Tensor
    nce: Tensor  # unweighted
    total: Tensor  # (B_a, B_v) contrastive logits a @ v.T / temperature
    pred_a: Tensor
    pred_v: Tensor
    mask_a: Tensor  # (B, N_a) 1 = removed, CAV-MAE's (freq-major) token order
    mask_v: Tensor
    ids_keep_a: Tensor
    ids_keep_v: Tensor
    latent: Tensor  # joint pass, normed: [visible audio; visible visual] in ids_keep order
    latent_c_a: Tensor  # audio alone, normed by norm_a
    latent_c_v: Tensor


class CAVMAE(nn.Module):
    """The pretraining model. ``modality_specific_depth`` of ``depth`` blocks per modality."""

    def __init__(
        self,
        audio_length: int = 1024,
        mel_bins: int = 128,
        img_size: int = 224,
        patch: int = 16,
        img_patch: int | None = None,
        dim: int = 768,
        depth: int = 12,
        modality_specific_depth: int = 11,
        heads: int = 12,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_heads: int = 16,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_pix_loss: bool = True,
        chain_alone: bool = False,
    ) -> None:
        super().__init__()
        img_patch = img_patch or patch
        self.patch, self.img_patch, self.norm_pix_loss, self.chain_alone = patch, img_patch, norm_pix_loss, chain_alone
        fa, ta, sv = mel_bins // patch, audio_length // patch, img_size // img_patch
        self.num_patches_a, self.num_patches_v = fa * ta, sv * sv
        self.patch_embed_a = PatchEmbed(1, dim, patch)
        self.patch_embed_v = PatchEmbed(3, dim, img_patch)
        self.modality_a = nn.Parameter(torch.zeros(1, 1, dim))
        self.modality_v = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed_a = nn.Parameter(sincos_table(dim, fa, ta), requires_grad=False)
        self.pos_embed_v = nn.Parameter(sincos_table(dim, sv, sv), requires_grad=False)
        make = lambda n, w, h: nn.ModuleList(Block(w, h, mlp_ratio, qkv_bias) for _ in range(n))  # noqa: E731
        self.blocks_a = make(modality_specific_depth, dim, heads)
        self.blocks_v = make(modality_specific_depth, dim, heads)
        self.blocks_u = make(depth - modality_specific_depth, dim, heads)
        self.norm_a, self.norm_v, self.norm = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_modality_a = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_modality_v = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos_embed_a = nn.Parameter(sincos_table(decoder_dim, fa, ta), requires_grad=False)
        self.decoder_pos_embed_v = nn.Parameter(sincos_table(decoder_dim, sv, sv), requires_grad=False)
        self.decoder_blocks = make(decoder_depth, decoder_dim, decoder_heads)
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred_a = nn.Linear(decoder_dim, patch * patch)
        self.decoder_pred_v = nn.Linear(decoder_dim, img_patch * img_patch * 3)

    def _alone(self, x: Tensor, modality: str, norm: nn.LayerNorm) -> Tensor:
        out = x
        for blk in self.blocks_u:
            out = blk(out if self.chain_alone else x, modality)
        return norm(out)

    def forward_encoder(self, a: Tensor, v: Tensor, noise_a: Tensor, noise_v: Tensor, ratio_a: float, ratio_v: float):
        a = self.patch_embed_a(a.unsqueeze(1).transpose(2, 3)) + self.pos_embed_a + self.modality_a
        v = self.patch_embed_v(v) + self.pos_embed_v + self.modality_v
        a, mask_a, restore_a, keep_a = random_masking(a, ratio_a, noise_a)
        v, mask_v, restore_v, keep_v = random_masking(v, ratio_v, noise_v)
        for blk in self.blocks_a:
            a = blk(a)
        for blk in self.blocks_v:
            v = blk(v)
        x = torch.cat((a, v), dim=1)
        for blk in self.blocks_u:
            x = blk(x)
        x = self.norm(x)
        ca, cv = self._alone(a, "a", self.norm_a), self._alone(v, "v", self.norm_v)
        return x, (mask_a, restore_a, keep_a), (mask_v, restore_v, keep_v), ca, cv

    def forward_decoder(self, x: Tensor, mask_a: Tensor, restore_a: Tensor, mask_v: Tensor, restore_v: Tensor):
        x = self.decoder_embed(x)
        b, d = x.shape[0], x.shape[2]
        n_a, n_v = self.num_patches_a, self.num_patches_v
        hidden_a, hidden_v = int(mask_a[0].sum()), int(mask_v[0].sum())
        a_ = torch.cat([x[:, : n_a - hidden_a], self.mask_token.repeat(b, hidden_a, 1)], dim=1)
        a_ = torch.gather(a_, 1, restore_a.unsqueeze(-1).repeat(1, 1, d))
        v_ = torch.cat([x[:, n_a - hidden_a :], self.mask_token.repeat(b, hidden_v, 1)], dim=1)
        v_ = torch.gather(v_, 1, restore_v.unsqueeze(-1).repeat(1, 1, d))
        x = torch.cat([a_, v_], dim=1)
        x = x + torch.cat([self.decoder_pos_embed_a, self.decoder_pos_embed_v], dim=1)
        x = x + torch.cat([self.decoder_modality_a.expand(b, n_a, d), self.decoder_modality_v.expand(b, n_v, d)], dim=1)
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        return self.decoder_pred_a(x[:, :n_a]), self.decoder_pred_v(x[:, n_a:])

    def forward_mae_loss(self, inputs: Tensor, pred: Tensor, mask: Tensor, modality: str) -> Tensor:
        if modality == "a":
            target = patchify(inputs.unsqueeze(1).transpose(2, 3), self.patch)
        else:
            target = patchify(inputs, self.img_patch)
        if self.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    @staticmethod
    def forward_contrastive(audio_rep: Tensor, video_rep: Tensor, bidirect: bool = False) -> tuple[Tensor, Tensor]:
        a, v = F.normalize(audio_rep, dim=-1), F.normalize(video_rep, dim=-1)
        total = torch.mm(a, torch.transpose(v, 0, 1)) / TEMPERATURE
        nce = -torch.mean(torch.diag(F.log_softmax(total, dim=0)))
        if bidirect:
            nce = (nce - torch.mean(torch.diag(F.log_softmax(total, dim=1)))) / 2
        return nce, total

    def forward(
        self,
        a: Tensor,
        v: Tensor,
        noise_a: Tensor,
        noise_v: Tensor,
        ratio_a: float = 0.75,
        ratio_v: float = 0.75,
        mae_loss_weight: float = 1.0,
        contrast_loss_weight: float = 0.01,
        bidirect: bool = False,
    ) -> RefOutput:
        """``a`` (B, T, F) fbank, ``v`` (B, 3, H, W); noise in CAV-MAE's token orders."""
        latent, (mask_a, restore_a, keep_a), (mask_v, restore_v, keep_v), ca, cv = self.forward_encoder(
            a, v, noise_a, noise_v, ratio_a, ratio_v
        )
        pred_a, pred_v = self.forward_decoder(latent, mask_a, restore_a, mask_v, restore_v)
        loss_a = self.forward_mae_loss(a, pred_a, mask_a, "a")
        loss_v = self.forward_mae_loss(v, pred_v, mask_v, "v")
        nce, total = self.forward_contrastive(ca.mean(dim=1), cv.mean(dim=1), bidirect)
        loss = mae_loss_weight * (loss_a + loss_v) + contrast_loss_weight * nce
        return RefOutput(
            loss, loss_a, loss_v, nce, total, pred_a, pred_v, mask_a, mask_v, keep_a, keep_v, latent, ca, cv
        )

    def forward_feat(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Retrieval features (no masking, each modality alone with its own norms, blocks chained)."""
        a = self.patch_embed_a(a.unsqueeze(1).transpose(2, 3)) + self.pos_embed_a + self.modality_a
        v = self.patch_embed_v(v) + self.pos_embed_v + self.modality_v
        for blk in self.blocks_a:
            a = blk(a)
        for blk in self.blocks_v:
            v = blk(v)
        for blk in self.blocks_u:
            a, v = blk(a, "a"), blk(v, "v")
        return self.norm_a(a), self.norm_v(v)


def randomize(model: nn.Module, std: float = 0.1, seed: int = 0) -> nn.Module:
    """Every trainable tensor random (LayerNorm weights around 1, everything else around 0);
    the fixed sin-cos tables (``requires_grad=False``) untouched."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            noise = torch.randn(p.shape, generator=gen)
            is_norm_weight = "norm" in name.split(".")[-2] if "." in name else False
            is_norm_weight = is_norm_weight and name.endswith(".weight")
            p.copy_(1.0 + 0.1 * noise if is_norm_weight else std * noise)
    return model.eval()


def official_state(model: nn.Module) -> dict[str, Tensor]:
    """The state dict as CAV-MAE's DataParallel training saves it: every key ``module.``-prefixed."""
    return {f"module.{k}": v.detach().clone() for k, v in model.state_dict().items()}
