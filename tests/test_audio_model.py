"""The audio modality: spectrogram tokenizer layout and positions, time/frequency masking, the
local-window decoder's locality, and a tiny AudioMAE-style pretraining step."""

import numpy as np
import pytest
import torch

from omnimask import OmniMaskConfig, OmniMaskForPreTraining
from omnimask.backbone.pos_embed import sincos_1d, sincos_2d_audiomae, sincos_2d_mae
from omnimask.decoders.local_window import LocalWindowBlock, LocalWindowDecoder, window_layout
from omnimask.masking import MASKING, spec_from_mask
from omnimask.masking.time_freq import TimeFreqMasking
from omnimask.modalities import MODALITIES
from omnimask.modalities.audio import SpectrogramTokenizer, norm_preset


# ---- tokenizer -------------------------------------------------------------------------------
def test_patchify_is_audiomae_layout_and_round_trips():
    tok = SpectrogramTokenizer(dim=8, target_length=64, num_mel_bins=32, patch_size=16)
    x = torch.randn(2, 1, 64, 32)
    p = tok.patchify(x)
    ref = torch.einsum("nchpwq->nhwpqc", x.reshape(2, 1, 4, 16, 2, 16)).reshape(2, 8, 256)
    assert torch.equal(p, ref)
    assert torch.equal(tok.unpatchify(p, (4, 2)), x)
    tokens, grid = tok(x)
    assert grid == (4, 2) == tok.base_grid
    conv = tok.proj(x).flatten(2).transpose(1, 2) + sincos_2d_mae(8, (4, 2))
    assert torch.allclose(tokens, conv)


def test_rectangular_patches_and_channels():
    tok = SpectrogramTokenizer(dim=8, target_length=32, num_mel_bins=24, patch_size=(8, 4), in_chans=2)
    x = torch.randn(3, 2, 32, 24)
    assert tok.patch_dim == 64 and tok.base_grid == (4, 6)
    ref = torch.einsum("nchpwq->nhwpqc", x.reshape(3, 2, 4, 8, 6, 4)).reshape(3, 24, 64)
    assert torch.equal(tok.patchify(x), ref)
    assert torch.equal(tok.unpatchify(ref, (4, 6)), x)


def _np_flexible(dim, grid_size):
    """AudioMAE's get_2d_sincos_pos_embed_flexible, rendered independently in NumPy."""
    gh = np.arange(grid_size[0], dtype=np.float32)
    gw = np.arange(grid_size[1], dtype=np.float32)
    grid = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, grid_size[0], grid_size[1])

    def one(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one(dim // 2, grid[0]), one(dim // 2, grid[1])], axis=1)


def test_audiomae_table_reproduces_the_reference_bit_for_bit_and_its_quirk():
    # AudioMAE: patch_hw = (F/p, T/p) = (8, 64) for a 1024 x 128 input
    ref = torch.from_numpy(_np_flexible(64, (8, 64))).float()
    ours = sincos_2d_audiomae(64, (64, 8))
    assert torch.equal(ours, ref)
    tok = SpectrogramTokenizer(dim=64, pos_embed="audiomae")
    assert torch.equal(tok.pos_embed, ref)
    # the quirk: token k = 8t + f is coded by k % 64 (first half) and k // 64 (second half)
    k = torch.arange(512, dtype=torch.float64)
    assert torch.allclose(ours[:, :32], sincos_1d(32, k % 64).float())
    assert torch.allclose(ours[:, 32:], sincos_1d(32, k // 64).float())
    t, f = 10, 3
    assert torch.equal(ours[8 * t + f, :32], ours[8 * (t + 8) + f, :32])  # 8 rows apart share a code half
    # the default table is MAE's on the true grid: same frequency column -> same first half
    true = SpectrogramTokenizer(dim=64).pos_embed
    assert torch.equal(true, sincos_2d_mae(64, (64, 8)))
    assert torch.equal(true[8 * 5 + 2, :32], true[8 * 40 + 2, :32]) and torch.equal(
        true[8 * 5 + 2, 32:], true[8 * 5 + 6, 32:]
    )


def test_other_lengths_and_bins():
    for pos in ("sincos_2d", "audiomae"):
        tok = SpectrogramTokenizer(dim=16, target_length=64, num_mel_bins=32, patch_size=8, pos_embed=pos)
        tokens, grid = tok(torch.randn(1, 1, 32, 32))  # shorter clip: accepted as is
        assert grid == (4, 4) and tokens.shape == (1, 16, 16)
        if pos == "sincos_2d":  # the first rows of a shorter clip keep their positions
            assert torch.equal(tok.positions((4, 4), 16), tok.pos_embed[:16])
        else:  # what AudioMAE's time truncation of its (F', T') table gives
            full = tok.pos_embed.reshape(4, 8, 16)[:, :4].reshape(16, 16)
            assert torch.equal(tok.positions((4, 4), 16), full)
        with pytest.raises(ValueError, match="built for 32 mel bins"):
            tok(torch.randn(1, 1, 64, 48))
        tokens, grid = tok(torch.randn(1, 1, 64, 48), interpolate_pos=True)
        assert grid == (8, 6) and tokens.shape == (1, 48, 16)


def test_tokenizer_errors():
    tok = SpectrogramTokenizer(dim=8, target_length=64, num_mel_bins=32, patch_size=16)
    with pytest.raises(ValueError, match=r"unsqueeze\(1\)"):
        tok(torch.randn(2, 64, 32))
    with pytest.raises(ValueError, match="1 channel"):
        tok(torch.randn(2, 2, 64, 32))
    with pytest.raises(ValueError, match="floating-point"):
        tok(torch.zeros(2, 1, 64, 32, dtype=torch.int16))
    with pytest.raises(ValueError, match="multiple of 16"):
        tok(torch.randn(2, 1, 60, 32))
    with pytest.raises(ValueError, match="not divisible by the patch width"):
        tok(torch.randn(2, 1, 64, 40), interpolate_pos=True)
    with pytest.raises(ValueError, match="does not divide target_length"):
        SpectrogramTokenizer(dim=8, target_length=1000)
    with pytest.raises(ValueError, match="pos_embed"):
        SpectrogramTokenizer(dim=8, pos_embed="learned")
    with pytest.raises(ValueError, match="num_mel_bins"):
        SpectrogramTokenizer(dim=8, num_mel_bins=0)
    with pytest.raises(ValueError, match="unknown audio normalisation"):
        norm_preset("librispeech")


def test_modality_defaults():
    spec = MODALITIES.get("audio")
    assert spec.masking == {"name": "random", "ratio": 0.8}
    assert spec.decoder["name"] == "local_window" and spec.decoder["dim"] == 512 and spec.decoder["depth"] == 16
    assert spec.objective == {"name": "mse", "norm": "patch"}
    assert spec.processor["mean"] == [-4.2677393] and spec.processor["std"] == [2 * 4.5689974]
    # spec callbacks receive the tokenizer config as the model config completed it (no re-defaulting)
    x = spec.example_input(OmniMaskConfig(modalities={"audio": {}}).modalities["audio"]["tokenizer"], 2)
    assert x.shape == (2, 1, 1024, 128)


# ---- time/frequency masking ------------------------------------------------------------------
def _reference_mask_2d(noise_t, noise_f, kt, kf):
    """AudioMAE's random_masking_2d (pretraining variant), from the facts: union mask, ids via +999."""
    n, t = noise_t.shape
    f = noise_f.shape[1]
    mask_f = torch.ones(n, f)
    mask_f[:, :kf] = 0
    mask_f = torch.gather(mask_f, 1, torch.argsort(torch.argsort(noise_f, 1), 1)).unsqueeze(1).repeat(1, t, 1)
    mask_t = torch.ones(n, t)
    mask_t[:, :kt] = 0
    mask_t = (
        torch.gather(mask_t, 1, torch.argsort(torch.argsort(noise_t, 1), 1))
        .unsqueeze(1)
        .repeat(1, f, 1)
        .permute(0, 2, 1)
    )
    mask = 1 - (1 - mask_t) * (1 - mask_f)
    ids = torch.arange(n * t * f, dtype=torch.float32).reshape(n, t, f) + 999 * mask
    order = torch.argsort(ids.flatten(1), 1)
    return order[:, : kt * kf], torch.argsort(order, 1), mask.flatten(1)


def test_time_freq_masking_matches_audiomae():
    strategy = TimeFreqMasking(time_ratio=0.2, freq_ratio=0.2)
    noise_t, noise_f = torch.rand(3, 64), torch.rand(3, 8)
    spec = strategy(3, (64, 8), noise=torch.cat([noise_t, noise_f], 1))
    assert spec.ids_keep.shape == (3, 51 * 6) and strategy.num_keep_for_grid((64, 8)) == 306
    keep, restore, mask = _reference_mask_2d(noise_t, noise_f, 51, 6)
    assert torch.equal(spec.ids_keep, keep) and torch.equal(spec.ids_restore, restore)
    assert torch.equal(spec.mask, mask.bool())
    assert torch.equal(spec.ids_keep, spec.ids_keep.sort(1).values)  # original order kept


def test_time_freq_masking_union_semantics_counts_and_reproducibility():
    strategy = MASKING.build("time_freq", {"time_ratio": 0.7, "freq_ratio": 0.3})
    assert strategy.ratio == pytest.approx(1 - 0.3 * 0.7)
    spec = strategy(4, (32, 8), generator=torch.Generator().manual_seed(0))
    m = spec.mask.view(4, 32, 8)
    rows, cols = m.all(2), m.all(1)  # fully hidden rows / columns
    assert rows.sum(1).tolist() == [32 - int(32 * 0.3)] * 4 and cols.sum(1).tolist() == [8 - int(8 * (1 - 0.3))] * 4
    assert torch.equal(m, rows[:, :, None] | cols[:, None, :])  # hidden = row hidden OR column hidden
    assert (~spec.mask).sum(1).tolist() == [int(32 * 0.3) * int(8 * 0.7)] * 4
    noise = torch.rand(4, 40)
    assert torch.equal(strategy(4, (32, 8), noise=noise).mask, strategy(4, (32, 8), noise=noise).mask)
    again = strategy(4, (32, 8), generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.mask, spec.mask)
    assert torch.equal(spec_from_mask(spec.mask).ids_keep, spec.ids_keep)


def test_time_freq_masking_errors():
    with pytest.raises(ValueError, match="time_ratio"):
        TimeFreqMasking(time_ratio=1.0)
    with pytest.raises(ValueError, match="freq_ratio"):
        TimeFreqMasking(freq_ratio=-0.1)
    strategy = TimeFreqMasking(0.5, 0.5)
    with pytest.raises(ValueError, match="time, frequency"):
        strategy(2, (4, 4, 4))
    with pytest.raises(ValueError, match="expected shape"):
        strategy(2, (8, 4), noise=torch.rand(2, 32))
    with pytest.raises(ValueError, match="no token would stay visible"):
        TimeFreqMasking(0.9, 0.0)(1, (1, 4))


# ---- local-window decoder --------------------------------------------------------------------
def _changed(block, x, where):
    """Positions (row, col) of the block's output that change when the token at ``where`` changes."""
    y = x.clone()
    y[:, where[0], where[1]] += 1.0
    with torch.no_grad():
        diff = (block(y) - block(x)).abs().amax(dim=(0, 3))
    return {tuple(p) for p in (diff > 0).nonzero().tolist()}


def _rect(rows, cols):
    return {(r, c) for r in rows for c in cols}


def test_window_attention_never_crosses_windows():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 8, 16)
    plain = LocalWindowBlock(16, 2, (4, 4), (0, 0)).eval()
    assert _changed(plain, x, (5, 2)) == _rect(range(4, 8), range(0, 4))
    shifted = LocalWindowBlock(16, 2, (4, 4), (2, 0)).eval()
    shifted.load_state_dict(plain.state_dict())
    assert _changed(shifted, x, (5, 2)) == _rect(range(2, 6), range(0, 4))  # windows moved down by 2 rows
    # rows 0-1 wrap around into the window of rows 6-7; the shift mask keeps them apart
    assert _changed(shifted, x, (0, 6)) == _rect(range(0, 2), range(4, 8))
    assert _changed(shifted, x, (7, 6)) == _rect(range(6, 8), range(4, 8))


def test_window_layout_and_padding():
    assert window_layout((64, 8), (4, 4), (2, 0)) == ((4, 4), (2, 0), (64, 8))
    assert window_layout((6, 2), (4, 4), (2, 2)) == ((4, 2), (2, 0), (8, 2))  # narrow axis: whole axis, unshifted
    torch.manual_seed(0)
    x = torch.randn(1, 6, 8, 16)
    block = LocalWindowBlock(16, 2, (4, 4), (0, 0)).eval()
    assert _changed(block, x, (5, 1)) == _rect(range(4, 6), range(0, 4))
    # padded positions take no part: the last two rows equal a block run on them alone
    with torch.no_grad():
        assert torch.allclose(block(x)[:, 4:], block(x[:, 4:].contiguous()), atol=1e-6)
    shifted = LocalWindowBlock(16, 2, (4, 4), (2, 0)).eval()
    with torch.no_grad():
        assert torch.isfinite(shifted(x)).all()


def _spec(b, n, hidden):
    mask = torch.zeros(b, n, dtype=torch.bool)
    mask[:, hidden] = True
    return spec_from_mask(mask)


def test_decoder_shapes_selection_and_errors():
    dec = LocalWindowDecoder(in_dim=12, out_dim=10, dim=16, depth=2, num_heads=2).eval()
    assert [b.shift_size for b in dec.blocks] == [(0, 0), (2, 0)]
    assert [b.shift_size for b in LocalWindowDecoder(12, 10, dim=16, depth=2, num_heads=2, no_shift=True).blocks] == [
        (0, 0),
        (0, 0),
    ]
    spec = _spec(2, 32, [0, 5, 7, 30])
    visible = torch.randn(2, 28, 12)
    pos = torch.randn(32, 16)
    out = dec(visible, spec, pos, global_tokens=torch.randn(2, 1, 12), grid=(8, 4))
    assert out.shape == (2, 32, 10)
    # global context is not used
    assert torch.equal(out, dec(visible, spec, pos, grid=(8, 4)))
    decode = torch.zeros(2, 32, dtype=torch.bool)
    decode[:, [1, 5, 9]] = True
    from omnimask.masking import with_decode

    sel = dec(visible, with_decode(spec, decode), pos, grid=(8, 4))
    assert torch.equal(sel, out[:, [1, 5, 9]])
    with pytest.raises(ValueError, match="grid is required"):
        dec(visible, spec, pos)
    with pytest.raises(ValueError, match="2-D"):
        dec(visible, spec, pos, grid=(2, 4, 4))
    with pytest.raises(ValueError, match="covers 32 tokens"):
        dec(visible, spec, pos, grid=(4, 4))
    with pytest.raises(ValueError, match="smaller than window_size"):
        LocalWindowDecoder(12, 10, window_size=(4, 4), shift_size=(4, 0))
    with pytest.raises(ValueError, match="window_size"):
        LocalWindowDecoder(12, 10, window_size=(0, 4))
    with pytest.raises(ValueError, match="divisible"):
        LocalWindowDecoder(12, 10, dim=16, num_heads=3)


# ---- a tiny AudioMAE pretraining step --------------------------------------------------------
def _tiny(**audio):
    cfg = {
        "tokenizer": {"target_length": 64, "num_mel_bins": 32, "patch_size": 8},
        "decoder": {"dim": 16, "depth": 2, "num_heads": 2},
    }
    cfg.update(audio)
    return OmniMaskConfig(encoder={"dim": 32, "depth": 2, "num_heads": 2}, modalities={"audio": cfg})


@pytest.mark.parametrize(
    "masking", [{"name": "random", "ratio": 0.8}, {"name": "time_freq", "time_ratio": 0.5, "freq_ratio": 0.25}]
)
def test_pretraining_step(masking, tmp_path):
    model = OmniMaskForPreTraining(_tiny(masking=masking))
    x = torch.randn(2, 1, 64, 32)
    out = model({"audio": x})
    assert torch.isfinite(out.loss) and out.pred["audio"].shape == (2, 32, 64)
    n_vis = (~out.mask["audio"]).sum(1).tolist()
    assert n_vis == ([6, 6] if masking["name"] == "random" else [4 * 3] * 2)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model.decoders["audio"].blocks[1].attn.tau.grad is not None
    picture = model.visualize("audio", x, out)
    assert picture.size[0] == 64 and picture.size[1] >= 4 * 32
    # noise reproduces the mask (time_freq: (B, T' + F') noise)
    model.eval()
    noise = torch.rand(2, 8 + 4) if masking["name"] == "time_freq" else torch.rand(2, 32)
    a, b = model({"audio": x}, noise={"audio": noise}), model({"audio": x}, noise={"audio": noise})
    assert torch.equal(a.mask["audio"], b.mask["audio"]) and torch.equal(a.pred["audio"], b.pred["audio"])
    model.save_pretrained(tmp_path)
    loaded = OmniMaskForPreTraining.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded({"audio": x}, noise={"audio": noise}).pred["audio"], a.pred["audio"])


def test_global_decoder_and_audiomae_positions():
    model = OmniMaskForPreTraining(
        _tiny(
            tokenizer={"target_length": 64, "num_mel_bins": 32, "patch_size": 8, "pos_embed": "audiomae"},
            decoder={"name": "transformer", "dim": 16, "depth": 1, "num_heads": 2},
        )
    )
    assert torch.equal(model.decoder_pos.audio, sincos_2d_audiomae(16, (8, 4)))
    out = model({"audio": torch.randn(2, 1, 64, 32)})
    assert torch.isfinite(out.loss)
    shorter = model({"audio": torch.randn(2, 1, 32, 32)})  # another clip length runs as is
    assert shorter.pred["audio"].shape == (2, 16, 64)
