"""Masking semantics, position tables and the image tokenizer's layout."""

import numpy as np
import pytest
import torch

from omnimask.backbone.pos_embed import interpolate_table_2d, sincos_1d_interleaved, sincos_2d_mae
from omnimask.masking import MASKING, spec_from_mask
from omnimask.masking.block import BlockMasking
from omnimask.masking.random import RandomMasking
from omnimask.modalities.image import ImagePatchTokenizer


# ---- an independent NumPy rendering of the reference formulas --------------------------------
def _np_1d(dim, pos):
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def _np_mae_2d(dim, size):
    gh = np.arange(size, dtype=np.float32)
    gw = np.arange(size, dtype=np.float32)
    grid = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, size, size)  # grid[0] holds column indices
    return np.concatenate([_np_1d(dim // 2, grid[0]), _np_1d(dim // 2, grid[1])], axis=1)


def test_mae_2d_table_matches_reference_formula_bit_for_bit():
    for dim, size in [(64, 4), (768, 14), (512, 14)]:
        ours = sincos_2d_mae(dim, (size, size))
        ref = torch.from_numpy(_np_mae_2d(dim, size)).float()
        assert torch.equal(ours, ref)


def test_mae_2d_table_first_half_encodes_columns():
    t = sincos_2d_mae(16, (3, 5))
    # tokens in the same column share the first half; tokens in the same row share the second half
    assert torch.equal(t[0, :8], t[5, :8]) and not torch.equal(t[0, 8:], t[5, 8:])
    assert torch.equal(t[0, 8:], t[1, 8:]) and not torch.equal(t[0, :8], t[1, :8])


def test_interleaved_1d_table_known_values():
    t = sincos_1d_interleaved(4, 3)
    # position 2, channel 2 uses frequency 1/10000^(2/4) = 0.01
    assert t[2, 2].item() == pytest.approx(np.sin(2 * 0.01), abs=1e-7)
    assert t[2, 3].item() == pytest.approx(np.cos(2 * 0.01), abs=1e-7)
    assert t[1, 0].item() == pytest.approx(np.sin(1.0), abs=1e-7)


def test_interpolation_identity_and_shape():
    t = sincos_2d_mae(32, (4, 4))
    assert interpolate_table_2d(t, (4, 4), (4, 4)) is t
    assert interpolate_table_2d(t, (4, 4), (6, 8)).shape == (48, 32)


# ---- masking ---------------------------------------------------------------------------------
def test_random_masking_matches_mae_argsort_semantics():
    noise = torch.rand(3, 16)
    spec = RandomMasking(0.75)(3, (4, 4), noise=noise)
    assert spec.ids_keep.shape == (3, 4)
    kept_by_noise = torch.argsort(noise, 1)[:, :4]
    assert torch.equal(spec.ids_keep, kept_by_noise)
    assert spec.mask.sum(1).tolist() == [12, 12, 12]
    assert not spec.mask.gather(1, spec.ids_keep).any()  # kept tokens are not hidden
    # ids_restore inverts the shuffle
    shuffle = torch.argsort(noise, 1)
    assert torch.equal(torch.gather(shuffle, 1, spec.ids_restore), torch.arange(16).expand(3, 16))


def test_masking_reproducible_with_generator_and_different_without():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for strategy in (RandomMasking(0.6), BlockMasking(0.5)):
        a = strategy(4, (6, 6), generator=g1).mask
        b = strategy(4, (6, 6), generator=g2).mask
        assert torch.equal(a, b)


def test_explicit_mask_and_errors():
    mask = torch.tensor([[True, False, True, False], [False, True, True, False]])
    spec = RandomMasking(0.5)(2, (2, 2), mask=mask)
    assert torch.equal(spec.mask, mask)
    assert spec.ids_keep.tolist() == [[1, 3], [0, 3]]  # visible tokens keep grid order
    with pytest.raises(ValueError, match="same number"):
        spec_from_mask(torch.tensor([[True, False], [False, False]]))
    with pytest.raises(TypeError, match="bool"):
        spec_from_mask(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="expected shape"):
        RandomMasking(0.5)(2, (2, 2), noise=torch.rand(2, 5))
    with pytest.raises(ValueError, match="not driven by noise"):
        BlockMasking(0.5)(2, (4, 4), noise=torch.rand(2, 16))
    with pytest.raises(ValueError, match="ratio"):
        RandomMasking(1.0)


def test_block_masking_hides_exact_count_in_blocks():
    strategy = BlockMasking(ratio=0.4, min_block=4)
    spec = strategy(8, (14, 14), generator=torch.Generator().manual_seed(0))
    target = 196 - int(196 * 0.6)
    assert spec.mask.sum(1).tolist() == [target] * 8
    # blocks make hidden tokens cluster: most hidden tokens have a hidden 4-neighbour
    m = spec.mask.view(8, 14, 14)
    neighbour = torch.zeros_like(m)
    neighbour[:, 1:] |= m[:, :-1]
    neighbour[:, :-1] |= m[:, 1:]
    neighbour[:, :, 1:] |= m[:, :, :-1]
    neighbour[:, :, :-1] |= m[:, :, 1:]
    clustered = (m & neighbour).sum() / m.sum()
    rand = RandomMasking(0.4)(8, (14, 14)).mask.view(8, 14, 14)
    assert clustered > 0.9
    assert BlockMasking(0.4)(1, (14, 14)).mask.sum() == target
    assert rand.sum() > 0


# Strategies whose constructor is not just ``ratio``; every registered name must appear here or take ratio=0.5.
_STRATEGY_CONFIGS = {
    "dual": {"encoder": {"name": "tube", "ratio": 0.5}, "decoder": {"name": "running_cell", "ratio": 0.5}},
    "time_freq": {"time_ratio": 0.5, "freq_ratio": 0.0},  # 2 of 4 rows x all 6 columns = 12 kept
}


@pytest.mark.parametrize("name", MASKING.names())
def test_every_masking_strategy_keeps_the_contract(name):
    strategy = MASKING.build(name, _STRATEGY_CONFIGS.get(name, {"ratio": 0.5}))
    grid = (4, 6)  # half of every grid row hidden by all strategies at ratio 0.5
    n, keep = 24, 12
    # strategies over unordered tokens (point groups) get each token's coordinates
    coords = torch.randn(4, n, 3, generator=torch.Generator().manual_seed(3)) if strategy.needs_coords else None
    spec = strategy(4, grid, generator=torch.Generator().manual_seed(1), coords=coords)
    assert spec.mask.dtype == torch.bool and spec.mask.shape == (4, n)
    assert spec.ids_keep.shape == (4, keep) and (~spec.mask).sum(1).tolist() == [keep] * 4
    assert not spec.mask.gather(1, spec.ids_keep).any()
    hidden_first = torch.cat([spec.ids_keep, (spec.mask).nonzero()[:, 1].view(4, -1)], 1)
    assert torch.equal(torch.sort(hidden_first, 1).values, torch.arange(n).expand(4, n))
    explicit = strategy(4, grid, mask=spec.mask, decode=spec.decode)
    assert torch.equal(explicit.mask, spec.mask)
    # per-sample seeds: sample b depends on seeds[b] only, and equals the loader-side draw
    seeds = [5, 6, 5]
    seeded = strategy(3, grid, seeds=seeds, coords=None if coords is None else coords[[0, 1, 0]])
    assert torch.equal(seeded.mask[0], seeded.mask[2])
    for b, seed in enumerate(seeds):
        if strategy.needs_coords:  # only the model knows the coordinates: no loader-side masks
            with pytest.raises(ValueError, match="masks_in_loader"):
                strategy.mask_for_seed(grid, seed)
            one = strategy(1, grid, seeds=[seed], coords=coords[[0 if b != 1 else 1]])
            mask, decode = one.mask[0], None if one.decode is None else one.decode[0]
        else:
            mask, decode = strategy.mask_for_seed(grid, seed)
        assert torch.equal(seeded.mask[b], mask)
        assert (decode is None) == (seeded.decode is None)
        if decode is not None:
            assert torch.equal(seeded.decode[b], decode)


def test_masking_registry_errors():
    assert {"random", "block"} <= set(MASKING.names())
    with pytest.raises(KeyError, match="registered"):
        MASKING.get("ranndom")
    with pytest.raises(KeyError, match="already registered"):
        MASKING.register("random")(RandomMasking)


# ---- image tokenizer -------------------------------------------------------------------------
def test_patchify_matches_reference_layout_and_round_trips():
    tok = ImagePatchTokenizer(dim=8, image_size=(8, 12), patch_size=4, in_chans=3)
    x = torch.randn(2, 3, 8, 12)
    p = tok.patchify(x)
    assert p.shape == (2, 6, 48)
    ref = torch.einsum("nchpwq->nhwpqc", x.reshape(2, 3, 2, 4, 3, 4)).reshape(2, 6, 48)
    assert torch.equal(p, ref)
    assert torch.equal(tok.unpatchify(p, (2, 3)), x)
    # token order equals the convolution's flatten order
    tokens, grid = tok(x)
    conv = tok.proj(x).flatten(2).transpose(1, 2) + tok.pos_embed
    assert grid == (2, 3) and torch.allclose(tokens, conv)


def test_tokenizer_rejects_bad_images():
    tok = ImagePatchTokenizer(dim=8, image_size=16, patch_size=4, in_chans=3)
    with pytest.raises(ValueError, match="3 channel"):
        tok(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match="built for 16x16.*got 20x20"):
        tok(torch.randn(1, 3, 20, 20))
    with pytest.raises(ValueError, match="floating-point"):
        tok(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="batch, channels"):
        tok(torch.randn(3, 16, 16))
    with pytest.raises(ValueError, match="does not divide"):
        ImagePatchTokenizer(dim=8, image_size=18, patch_size=4)
    tokens, grid = tok(torch.randn(1, 3, 24, 32), interpolate_pos=True)
    assert grid == (6, 8) and tokens.shape == (1, 48, 8)
