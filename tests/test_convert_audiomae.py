"""Parity of ``omnimask convert --from audiomae`` with AudioMAE.

AudioMAE is not installable (it needs timm 0.3.2 plus a patched timm file), so this file holds a
small independent reference written from the facts (``/work/shared/reference``, section 4): a
timm-style ViT encoder with a cls token, MAE's random masking (and ``random_masking_2d``) driven
by given noise, the global decoder (``decoder_mode=0``) or the Swin-V2-CR local decoder
(``decoder_mode=1``, its shift mask built with the reference's slice recipe), patchify and the
norm-pix loss. Its state-dict keys are the official ones. Every weight is randomised (biases, norms,
``tau`` too), saved as the official ``{"model": ..., "args": Namespace}`` file, converted, and the
predictions and loss are compared for the same input and noise. Run with ``-s`` to see the diffs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from omnimask import OmniMaskForPreTraining, OmniMaskModel
from omnimask.cli import main as cli_main
from omnimask.convert import ConversionError, convert, format_options

TOL = 1e-5
OBSERVED: dict[str, tuple[float, float]] = {}


# ---- the reference ---------------------------------------------------------------------------
def flexible_table(dim: int, hw: tuple[int, int]) -> torch.Tensor:
    """AudioMAE's get_2d_sincos_pos_embed_flexible(dim, patch_hw, cls_token=True) in NumPy, (1, 1+N, dim)."""
    gh, gw = np.arange(hw[0], dtype=np.float32), np.arange(hw[1], dtype=np.float32)
    grid = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, *hw)

    def emb(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    table = np.concatenate([emb(dim // 2, grid[0]), emb(dim // 2, grid[1])], axis=1)
    return torch.from_numpy(np.concatenate([np.zeros([1, dim]), table], axis=0)).float()[None]


class RefMlp(nn.Module):
    def __init__(self, d_in, hidden, d_out, act=nn.GELU, drop=0.0):
        super().__init__()
        self.fc1, self.act, self.fc2, self.drop = (
            nn.Linear(d_in, hidden),
            act(),
            nn.Linear(hidden, d_out),
            nn.Dropout(drop),
        )

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class RefAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, c))


class RefBlock(nn.Module):
    """timm 0.3.2 ViT Block (pre-norm)."""

    def __init__(self, dim, heads, ratio=4.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), RefAttention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), RefMlp(dim, int(dim * ratio), dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RefWindowAttention(nn.Module):
    def __init__(self, dim, heads, window, meta_hidden):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.meta_mlp = RefMlp(2, meta_hidden, heads, act=nn.ReLU, drop=0.1)
        self.tau = nn.Parameter(torch.ones(heads))
        ys, xs = torch.meshgrid(torch.arange(window[0]), torch.arange(window[1]), indexing="ij")
        coords = torch.stack([ys, xs]).flatten(1)  # (2, L)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).reshape(-1, 2).float()
        self.register_buffer("rel_log", torch.sign(rel) * torch.log(1.0 + rel.abs()), persistent=False)

    def forward(self, x, mask=None):
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        denom = q.norm(dim=-1, keepdim=True) @ k.norm(dim=-1, keepdim=True).transpose(-2, -1)
        a = (q @ k.transpose(-2, -1)) / denom.clamp(min=1e-6) / self.tau.clamp(min=0.01).reshape(1, -1, 1, 1)
        a = a + self.meta_mlp(self.rel_log).transpose(1, 0).reshape(1, self.heads, n, n)
        if mask is not None:
            nw = mask.shape[0]
            a = (a.view(bw // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(-1, self.heads, n, n)
        return self.proj((a.softmax(-1) @ v).transpose(1, 2).reshape(bw, n, c))


def ref_partition(x, w):
    b, h, ww, c = x.shape
    return x.view(b, h // w[0], w[0], ww // w[1], w[1], c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w[0], w[1], c)


def ref_reverse(win, w, hw):
    b = int(win.shape[0] / (hw[0] * hw[1] / w[0] / w[1]))
    return (
        win.view(b, hw[0] // w[0], hw[1] // w[1], w[0], w[1], -1).permute(0, 1, 3, 2, 4, 5).reshape(b, hw[0], hw[1], -1)
    )


class RefSwinBlock(nn.Module):
    """The timm_patch Swin-V2-CR block as the facts describe it (post-norm, cosine attention)."""

    def __init__(self, dim, heads, feat, window, shift, ratio=4.0, meta_hidden=384):
        super().__init__()
        self.feat = feat
        self.window = tuple(f if f <= w else w for f, w in zip(feat, window))
        self.shift = tuple(0 if f <= w else s for f, w, s in zip(feat, self.window, shift))
        self.attn = RefWindowAttention(dim, heads, self.window, meta_hidden)
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.mlp = RefMlp(dim, int(dim * ratio), dim)
        mask = None
        if any(self.shift):  # the reference's recipe, slices with "-0" included
            img = torch.zeros(1, *feat, 1)
            cnt = 0
            (wh, ww), (sh, sw) = self.window, self.shift
            for hs in (slice(0, -wh), slice(-wh, -sh), slice(-sh, None)):
                for ws in (slice(0, -ww), slice(-ww, -sw), slice(-sw, None)):
                    img[:, hs, ws, :] = cnt
                    cnt += 1
            mw = ref_partition(img, self.window).view(-1, wh * ww)
            mask = mw.unsqueeze(1) - mw.unsqueeze(2)
            mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x):
        b, n, c = x.shape
        y = x.view(b, *self.feat, c)
        if any(self.shift):
            y = torch.roll(y, shifts=(-self.shift[0], -self.shift[1]), dims=(1, 2))
        w = self.attn(ref_partition(y, self.window).view(-1, self.window[0] * self.window[1], c), self.attn_mask)
        y = ref_reverse(w.view(-1, *self.window, c), self.window, self.feat)
        if any(self.shift):
            y = torch.roll(y, shifts=self.shift, dims=(1, 2))
        x = x + self.norm1(y.reshape(b, n, c))
        return x + self.norm2(self.mlp(x))


class RefAudioMAE(nn.Module):
    def __init__(
        self,
        length=256,
        bins=128,
        p=16,
        dim=32,
        depth=2,
        heads=4,
        ddim=32,
        ddepth=4,
        dheads=4,
        decoder_mode=1,
        no_shift=False,
        norm_pix=True,
        meta_hidden=24,
    ):
        super().__init__()
        self.p, self.grid, self.norm_pix, self.decoder_mode = p, (length // p, bins // p), norm_pix, decoder_mode
        n = self.grid[0] * self.grid[1]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(1, dim, p, p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(flexible_table(dim, self.grid[::-1]), requires_grad=False)
        self.blocks = nn.ModuleList(RefBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.decoder_embed = nn.Linear(dim, ddim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, ddim))
        self.decoder_pos_embed = nn.Parameter(flexible_table(ddim, self.grid[::-1]), requires_grad=False)
        if decoder_mode == 1:
            shifts = [(0, 0) if no_shift or i % 2 == 0 else (2, 0) for i in range(ddepth)]
            self.decoder_blocks = nn.ModuleList(
                RefSwinBlock(ddim, dheads, self.grid, (4, 4), s, meta_hidden=meta_hidden) for s in shifts
            )
        else:
            self.decoder_blocks = nn.ModuleList(RefBlock(ddim, dheads) for _ in range(ddepth))
        self.decoder_norm = nn.LayerNorm(ddim, eps=1e-6)
        self.decoder_pred = nn.Linear(ddim, p * p)
        assert n == self.pos_embed.shape[1] - 1

    def patchify(self, x):
        h, w = x.shape[2] // self.p, x.shape[3] // self.p
        x = torch.einsum("nchpwq->nhwpqc", x.reshape(x.shape[0], 1, h, self.p, w, self.p))
        return x.reshape(x.shape[0], h * w, self.p**2)

    def encode(self, x, noise=None, noise_2d=None, ratios=(0.8, 0.0, 0.0)):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2) + self.pos_embed[:, 1:]
        b, n, d = x.shape
        if noise_2d is not None:  # random_masking_2d (pretraining variant)
            t, f = self.grid
            kt, kf = int(t * (1 - ratios[1])), int(f * (1 - ratios[2]))
            parts = []
            for nz, k, _rep in ((noise_2d[:, :t], kt, f), (noise_2d[:, t:], kf, t)):
                m = torch.ones_like(nz)
                m[:, :k] = 0
                parts.append(torch.gather(m, 1, torch.argsort(torch.argsort(nz, 1), 1)))
            mask = 1 - (1 - parts[0][:, :, None]) * (1 - parts[1][:, None, :])
            order = torch.argsort(
                (torch.arange(b * n, dtype=torch.float32).reshape(b, t, f) + 999 * mask).flatten(1), 1
            )
            keep, restore, mask = order[:, : kt * kf], torch.argsort(order, 1), mask.flatten(1)
        elif noise is not None:
            k = int(n * (1 - ratios[0]))
            shuffle = torch.argsort(noise, 1)
            keep, restore = shuffle[:, :k], torch.argsort(shuffle, 1)
            mask = torch.ones(b, n)
            mask[:, :k] = 0
            mask = torch.gather(mask, 1, restore)
        else:
            keep, restore, mask = torch.arange(n).expand(b, n), torch.arange(n).expand(b, n), torch.zeros(b, n)
        x = torch.gather(x, 1, keep[..., None].repeat(1, 1, d))
        x = torch.cat([(self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1), x], 1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, restore

    def forward(self, imgs, **masking):
        x, mask, restore = self.encode(imgs, **masking)
        x = self.decoder_embed(x)
        tokens = torch.cat([x[:, 1:], self.mask_token.repeat(x.shape[0], restore.shape[1] + 1 - x.shape[1], 1)], 1)
        tokens = torch.gather(tokens, 1, restore[..., None].repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1], tokens], 1) + self.decoder_pos_embed
        if self.decoder_mode != 0:
            x = x[:, 1:]
        for blk in self.decoder_blocks:
            x = blk(x)
        pred = self.decoder_pred(self.decoder_norm(x))
        if self.decoder_mode == 0:
            pred = pred[:, 1:]
        target = self.patchify(imgs)
        if self.norm_pix:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
        loss = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
        return loss, pred, mask


def randomize(model: nn.Module, std: float = 0.1) -> nn.Module:
    """Every trainable tensor random (norm weights and tau around 1); fixed tables untouched."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if name.endswith("tau") or ("norm" in name and name.endswith("weight")):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, std)
    return model.eval()


def save_official(model: nn.Module, path: Path, **args) -> Path:
    torch.save({"model": model.state_dict(), "epoch": 32, "args": argparse.Namespace(**args)}, path)
    return path


def compare(ref: RefAudioMAE, converted: Path, case: str, x, **masking) -> None:
    om = OmniMaskForPreTraining.from_pretrained(converted).eval()
    with torch.no_grad():
        loss, pred, mask = ref(x, **masking)
        noise = masking.get("noise_2d", masking.get("noise"))
        out = om({"audio": x}, noise={"audio": noise})
    assert torch.equal(out.mask["audio"], mask.bool())
    diff, ldiff = float((out.pred["audio"] - pred).abs().max()), float((out.loss - loss).abs())
    OBSERVED[case] = (diff, ldiff)
    print(f"\n[{case}] max |pred diff| = {diff:.3g}, |loss diff| = {ldiff:.3g}")
    assert diff < TOL and ldiff < TOL


# ---- parity ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [1, 0])
def test_pretraining_parity(mode: int, tmp_path: Path) -> None:
    torch.manual_seed(1)
    ref = randomize(RefAudioMAE(decoder_mode=mode, dheads=4 if mode else 16))
    src = save_official(
        ref, tmp_path / "checkpoint-32.pth", norm_pix_loss=True, mask_ratio=0.8, decoder_mode=mode, dataset="audioset"
    )
    convert("audiomae", src, tmp_path / "om", num_heads=4)
    cfg = json.loads((tmp_path / "om" / "config.json").read_text())["modalities"]["audio"]
    assert cfg["tokenizer"] == {
        "target_length": 256,
        "num_mel_bins": 128,
        "patch_size": [16, 16],
        "in_chans": 1,
        "pos_embed": "audiomae",
    }
    assert cfg["decoder"]["name"] == ("local_window" if mode else "transformer")
    x, noise = torch.randn(3, 1, 256, 128), torch.rand(3, 128)
    compare(ref, tmp_path / "om", f"decoder_mode={mode}", x, noise=noise)


def test_parity_mask_2d_no_shift_raw_pixels(tmp_path: Path) -> None:
    torch.manual_seed(2)
    ref = randomize(RefAudioMAE(no_shift=True, norm_pix=False, ddepth=2))
    src = save_official(
        ref, tmp_path / "ckpt.pth", norm_pix_loss=False, mask_2d=True, mask_t_prob=0.5, mask_f_prob=0.25, no_shift=True
    )
    convert("audiomae", src, tmp_path / "om", num_heads=4)
    cfg = json.loads((tmp_path / "om" / "config.json").read_text())["modalities"]["audio"]
    assert cfg["masking"] == {"name": "time_freq", "time_ratio": 0.5, "freq_ratio": 0.25}
    assert cfg["objective"]["norm"] == "none" and cfg["decoder"]["no_shift"] is True
    x, noise = torch.randn(2, 1, 256, 128), torch.rand(2, 16 + 8)
    compare(ref, tmp_path / "om", "mask_2d+no_shift+raw", x, noise_2d=noise, ratios=(0.0, 0.5, 0.25))


def test_parity_options_override_args_and_grid_with_narrow_axis(tmp_path: Path) -> None:
    # 16x16 patches: an 8 x 4 grid, the window spans the whole frequency axis; time shifted by 2
    torch.manual_seed(3)
    ref = randomize(RefAudioMAE(length=128, bins=64, p=16, ddepth=2))
    src = save_official(ref, tmp_path / "ckpt.pth", norm_pix_loss=False)
    convert(
        "audiomae", src, tmp_path / "om", num_heads=4, num_mel_bins=64, norm_pix=True, mask_ratio=0.5
    )  # options win over the args
    cfg = json.loads((tmp_path / "om" / "config.json").read_text())["modalities"]["audio"]
    assert cfg["objective"]["norm"] == "patch" and cfg["masking"]["ratio"] == 0.5
    x, noise = torch.randn(2, 1, 128, 64), torch.rand(2, 32)
    compare(ref, tmp_path / "om", "p16-grid8x4-options", x, noise=noise, ratios=(0.5, 0, 0))


def test_encoder_only_parity(tmp_path: Path) -> None:
    torch.manual_seed(4)
    ref = randomize(RefAudioMAE())
    enc_keys = ("patch_embed.", "cls_token", "pos_embed", "blocks.", "norm.")
    sd = {k: v for k, v in ref.state_dict().items() if k.startswith(enc_keys)}
    torch.save({"model": sd}, tmp_path / "enc.pth")
    convert("audiomae", tmp_path / "enc.pth", tmp_path / "enc", num_heads=4)
    assert json.loads((tmp_path / "enc" / "config.json").read_text())["architectures"] == ["OmniMaskModel"]
    om = OmniMaskModel.from_pretrained(tmp_path / "enc").eval()
    x = torch.randn(2, 1, 256, 128)
    with torch.no_grad():
        expected, _, _ = ref.encode(x)
        got = om(audio=x).last_hidden_state
    diff = float((got - expected).abs().max())
    OBSERVED["encoder-only"] = (diff, 0.0)
    print(f"\n[encoder-only] max |hidden diff| = {diff:.3g}")
    assert diff < TOL


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(5)
    ref = randomize(RefAudioMAE(ddepth=2))
    src = save_official(ref, tmp_path / "ckpt.pth")
    argv = [
        "convert",
        "--from",
        "audiomae",
        str(src),
        str(tmp_path / "om"),
        "--option",
        "norm_pix=false",
        "--option",
        "dataset=esc50",
        "--option",
        "num_heads=4",
    ]
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.startswith("converted audiomae:")
    cfg = json.loads((tmp_path / "om" / "config.json").read_text())["modalities"]["audio"]
    assert cfg["objective"]["norm"] == "none" and cfg["processor"]["mean"] == [-6.6268077]
    assert {"target_length", "norm_pix", "mask_2d", "no_shift", "dataset"} <= set(format_options("audiomae"))


# ---- bad inputs ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def official_state() -> dict:
    torch.manual_seed(6)
    return randomize(RefAudioMAE(ddepth=2)).state_dict()


def _convert(tmp_path: Path, sd: dict, name: str = "bad", **options):
    torch.save({"model": sd}, tmp_path / f"{name}.pth")
    return convert("audiomae", tmp_path / f"{name}.pth", tmp_path / f"{name}_out", **{"num_heads": 4, **options})


def test_missing_and_extra_tensors(official_state, tmp_path: Path) -> None:
    sd = dict(official_state)
    del sd["blocks.1.mlp.fc2.weight"]
    with pytest.raises(ConversionError, match=r"lacks tensors.*blocks\.1\.mlp\.fc2\.weight"):
        _convert(tmp_path, sd)
    with pytest.raises(ConversionError, match=r"no omnimask counterpart.*decoder_blocks\.0\.attn\.lepe"):
        _convert(tmp_path, {**official_state, "decoder_blocks.0.attn.lepe": torch.zeros(3)})
    with pytest.raises(ConversionError, match="cls_token is missing"):
        _convert(tmp_path, {k: v for k, v in official_state.items() if k != "cls_token"})


def test_wrong_shapes(official_state, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="decoder_pred.weight predicts 10 values"):
        _convert(tmp_path, {**official_state, "decoder_pred.weight": torch.zeros(10, 32)})
    with pytest.raises(ConversionError, match=r"pos_embed has shape \(1, 100, 32\).*use_custom_patch"):
        _convert(tmp_path, {**official_state, "pos_embed": torch.zeros(1, 100, 32)})
    with pytest.raises(ConversionError, match="shapes disagree"):
        _convert(tmp_path, {**official_state, "blocks.0.norm1.bias": torch.zeros(7)})
    with pytest.raises(ConversionError, match="4-D"):
        _convert(tmp_path, {**official_state, "patch_embed.proj.weight": torch.zeros(32, 64)})
    with pytest.raises(ConversionError, match=r"decoder_pos_embed has shape \(1, 129, 16\), expected \(1, 129, 32\)"):
        _convert(tmp_path, {**official_state, "decoder_pos_embed": official_state["decoder_pos_embed"][..., :16]})
    with pytest.raises(ConversionError, match="target_length=1024 disagrees"):
        _convert(tmp_path, official_state, target_length=1024)


def test_refused_checkpoints(official_state, tmp_path: Path) -> None:
    learned = {**official_state, "pos_embed": official_state["pos_embed"] + 0.01}
    with pytest.raises(ConversionError, match="learned table"):
        _convert(tmp_path, learned)
    finetuned = {k: v for k, v in official_state.items() if not k.startswith(("decoder", "mask_token", "norm."))}
    finetuned.update(
        {
            "fc_norm.weight": torch.ones(32),
            "fc_norm.bias": torch.zeros(32),
            "head.weight": torch.zeros(527, 32),
            "head.bias": torch.zeros(527),
        }
    )
    with pytest.raises(ConversionError, match="fine-tuned AudioMAE classifier"):
        _convert(tmp_path, finetuned)
    with pytest.raises(ConversionError, match=r"final LayerNorm \(norm.weight\) is missing"):
        _convert(tmp_path, {k: v for k, v in official_state.items() if not k.startswith("norm.")})
    with pytest.raises(ConversionError, match="patch_embed.proj.weight is missing"):
        _convert(tmp_path, {f"encoder.{k}": v for k, v in official_state.items()})
    torch.save({"model": official_state, "args": {"lr": 1.0}, "optimizer": [1, 2]}, tmp_path / "odd.pth")
    with pytest.raises(ConversionError, match="does not accept"):
        convert("audiomae", tmp_path / "odd.pth", tmp_path / "o", num_heads=4, mask_rate=0.5)
    with pytest.raises(ConversionError, match="dataset must be one of"):
        convert("audiomae", tmp_path / "odd.pth", tmp_path / "o", num_heads=4, dataset="librispeech")
    with pytest.raises(ConversionError, match="mask_ratio must be a number"):
        convert("audiomae", tmp_path / "odd.pth", tmp_path / "o", num_heads=4, mask_ratio=1.5)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ConversionError, match="does not hold a state dict"):
        convert("audiomae", tmp_path / "list.pth", tmp_path / "o")
