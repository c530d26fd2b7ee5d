"""Video: the tube tokenizer's layout and errors, its position tables, tube / running-cell / dual
masking, the V2 decoder-masking loss, loader-made masks and images fed as clips."""

import math

import pytest
import torch
from torch.utils.data import DataLoader

from omnimask import OmniMaskConfig, OmniMaskForPreTraining
from omnimask.backbone.pos_embed import sincos_1d_interleaved, sincos_2d_mae, sincos_3d_separable
from omnimask.data import collate_repeated
from omnimask.masking.dual import DualMasking
from omnimask.masking.running_cell import RunningCellMasking
from omnimask.masking.tube import TubeMasking
from omnimask.modalities.video import VideoTubeTokenizer
from omnimask.training import LoaderMasks, OptimConfig, SeededDataset, TrainConfig, Trainer


def video_config(masking=None, **tok):
    tokenizer = {"num_frames": 4, "image_size": 16, "patch_size": 8, "tubelet_size": 2, **tok}
    video = {"tokenizer": tokenizer, "decoder": {"dim": 16, "depth": 1, "num_heads": 2}}
    if masking is not None:
        video["masking"] = masking
    return OmniMaskConfig(
        encoder={"dim": 32, "depth": 2, "num_heads": 2, "cls_token": False}, modalities={"video": video}
    )


# ---- tokenizer -------------------------------------------------------------------------------
def test_patchify_is_videomae_layout_and_conv_order():
    tok = VideoTubeTokenizer(dim=8, num_frames=4, image_size=(8, 12), patch_size=4, tubelet_size=2, in_chans=3)
    x = torch.randn(2, 3, 4, 8, 12)
    p = tok.patchify(x)
    assert p.shape == (2, 2 * 2 * 3, 2 * 4 * 4 * 3)
    # 'b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c)', written out with reshape/permute
    ref = x.reshape(2, 3, 2, 2, 2, 4, 3, 4).permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(2, 12, 96)
    assert torch.equal(p, ref)
    assert torch.equal(tok.unpatchify(p, (2, 2, 3)), x)
    # token n of the Conv3d equals a linear map of tube vector n (same order, channel-last vector)
    w = tok.proj.weight.permute(0, 2, 3, 4, 1).reshape(8, -1)
    conv = tok.proj(x).flatten(2).transpose(1, 2)
    assert torch.allclose(conv, p @ w.T + tok.proj.bias, atol=1e-5)


def test_tokenizer_rejects_bad_shapes_with_clear_messages():
    with pytest.raises(ValueError, match="multiple of tubelet_size 2"):
        VideoTubeTokenizer(dim=8, num_frames=5)
    with pytest.raises(ValueError, match="patch height 16 does not divide frame height 40"):
        VideoTubeTokenizer(dim=8, image_size=(40, 48))
    tok = VideoTubeTokenizer(dim=8, num_frames=4, image_size=16, patch_size=8)
    with pytest.raises(ValueError, match="3 frames cannot be cut into tubes of 2"):
        tok.grid(torch.randn(1, 3, 3, 16, 16))
    with pytest.raises(ValueError, match="built for 16x16 frames, got 24x24"):
        tok.grid(torch.randn(1, 3, 4, 24, 24))
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        tok.grid(torch.randn(1, 3, 4, 20, 20), interpolate_pos=True)
    with pytest.raises(ValueError, match="image_as_clip"):
        tok.grid(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="expects 3 channel"):
        tok.grid(torch.randn(1, 1, 4, 16, 16))
    with pytest.raises(ValueError, match="floating-point"):
        tok.grid(torch.zeros(1, 3, 4, 16, 16, dtype=torch.uint8))
    # any frame count the tubelet divides works, and other sizes with interpolation
    assert tok.grid(torch.randn(1, 3, 10, 16, 16)) == (5, 2, 2)
    assert tok.grid(torch.randn(1, 3, 4, 32, 24), interpolate_pos=True) == (2, 4, 3)


def test_position_tables():
    tok = VideoTubeTokenizer(dim=16, num_frames=4, image_size=16, patch_size=8)
    # VideoMAE: one 1-D interleaved table over the flattened (t, h, w) index
    assert torch.equal(tok.pos_embed, sincos_1d_interleaved(16, 2 * 2 * 2))
    # other clip lengths: the table extends along time (a prefix for shorter clips)
    assert torch.equal(tok.positions((1, 2, 2), 16), tok.pos_embed[:4])
    assert torch.equal(tok.positions((3, 2, 2), 16), sincos_1d_interleaved(16, 12))
    # spatial resize keeps time slices apart
    assert tok.positions((2, 3, 3), 16).shape == (18, 16)
    sep = sincos_3d_separable(32, (3, 2, 4))
    space, time = sep[:, :24], sep[:, 24:]
    assert torch.equal(space[:8], space[8:16]) and torch.equal(space[:8], sincos_2d_mae(24, (2, 4)))
    assert torch.equal(time[0], time[7]) and not torch.equal(time[0], time[8])
    with pytest.raises(ValueError, match="divisible by 16"):
        sincos_3d_separable(24, (1, 2, 2))


def test_image_as_clip_trains_images_and_videos_in_one_model():
    cfg = video_config(image_as_clip=True)
    model = OmniMaskForPreTraining(cfg)
    tok = model.omnimask.tokenizers["video"]
    img = torch.randn(2, 3, 16, 16)
    clip = img.unsqueeze(2).repeat(1, 1, 2, 1, 1)
    a, grid = tok(img)
    b, _ = tok(clip)
    assert grid == (1, 2, 2) and torch.equal(a, b)
    out_img = model({"video": img})
    out_vid = model({"video": torch.randn(2, 3, 4, 16, 16)})
    assert out_img.pred["video"].shape == (2, 4, tok.patch_dim)
    (out_img.loss + out_vid.loss).backward()


# ---- masking ---------------------------------------------------------------------------------
def test_tube_masking_shares_the_spatial_mask_over_time():
    spec = TubeMasking(0.9)(4, (8, 14, 14), generator=torch.Generator().manual_seed(0))
    m = spec.mask.view(4, 8, 196)
    assert (m == m[:, :1]).all()
    assert (m.sum(-1) == int(0.9 * 196)).all()  # VideoMAE's per-frame count
    assert spec.num_visible == 8 * (196 - 176)
    # noise semantics: the smallest spatial noise values are kept
    noise = torch.rand(2, 4)
    spec = TubeMasking(0.5)(2, (3, 2, 2), noise=noise)
    kept = torch.argsort(noise, 1)[:, :2]
    for b in range(2):
        assert set(kept[b].tolist()) == set((~spec.mask[b, :4]).nonzero().flatten().tolist())
    with pytest.raises(ValueError, match=r"noise: expected shape \(2, 4\)"):
        TubeMasking(0.5)(2, (3, 2, 2), noise=torch.rand(2, 12))


def test_running_cell_follows_videomae_v2():
    rc = RunningCellMasking(0.5)
    maps = rc.maps((3, 2, 4)).view(4, 3, 2, 4)
    # phase 0, slice 0 reads the queue [1, 1, 0, 0] from pointer 1: cell [[1, 0], [0, 1]], tiled
    assert maps[0, 0].int().tolist() == [[1, 0, 1, 0], [0, 1, 0, 1]]
    # the pointer advances by one per slice
    assert maps[0, 1].int().tolist() == [[0, 0, 0, 0], [1, 1, 1, 1]]
    assert torch.equal(maps[1, 0], maps[0, 1])
    # every 2x2 cell hides exactly int(4 * ratio) positions in every slice
    cells = maps.view(4, 3, 1, 2, 2, 2).sum((3, 5))
    assert (cells == 2).all()
    assert (RunningCellMasking(0.75).maps((1, 2, 2)).sum(1) == 3).all()
    with pytest.raises(ValueError, match="must be even"):
        rc.maps((2, 3, 4))
    with pytest.raises(ValueError, match="1..3"):
        RunningCellMasking(0.2)


def test_dual_masking_loss_counts_hidden_and_decoded_tokens_only():
    masking = {
        "name": "dual",
        "encoder": {"name": "tube", "ratio": 0.5},
        "decoder": {"name": "running_cell", "ratio": 0.5},
    }
    model = OmniMaskForPreTraining(video_config(masking=masking))
    x = torch.randn(3, 3, 4, 16, 16)
    out = model({"video": x}, generator=torch.Generator().manual_seed(3))
    spec = out.specs["video"]
    n = 8
    assert spec.decode is not None and spec.ids_decode.shape == (3, n // 2)
    assert out.pred["video"].shape == (3, n // 2, model.omnimask.tokenizers["video"].patch_dim)
    # independent draws: some decoded positions are visible to the encoder
    assert bool((spec.decode & ~spec.mask).any())
    target = model.objectives["video"].normalize_target(
        model.objectives["video"].raw_target(model.omnimask.tokenizers["video"].patchify(x))
    )
    t = torch.gather(target, 1, spec.ids_decode[..., None].expand(-1, -1, target.shape[-1]))
    per_token = (out.pred["video"] - t).pow(2).mean(-1)
    counted = torch.gather(spec.mask, 1, spec.ids_decode)
    expected = per_token[counted].mean()
    assert torch.allclose(out.loss, expected, rtol=1e-6)
    # fixing both masks reproduces the output
    again = model({"video": x}, masks={"video": spec.mask}, decode_masks={"video": spec.decode})
    assert torch.allclose(again.loss, out.loss, rtol=1e-6)
    out.loss.backward()
    # the picture scatters the decoded predictions back onto the grid
    assert model.visualize("video", x, out) is not None


def test_decoding_exactly_the_hidden_positions_is_videomae_v1():
    """Selecting the hidden positions for the decoder is VideoMAE's ``[visible, mask tokens]``
    arrangement; attention does not care about order, so it equals MAE's grid-order decoder."""
    model = OmniMaskForPreTraining(video_config())
    x = torch.randn(2, 3, 4, 16, 16)
    full = model({"video": x}, generator=torch.Generator().manual_seed(0))
    mask = full.mask["video"]
    v1 = model({"video": x}, masks={"video": mask}, decode_masks={"video": mask})
    p = full.pred["video"]
    assert torch.allclose(v1.pred["video"], p[mask].view(2, -1, p.shape[-1]), atol=1e-5)
    assert torch.allclose(v1.loss, full.loss, rtol=1e-5)


# ---- masks made in the data loader -------------------------------------------------------------
class _Clips(torch.utils.data.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return {"video": torch.full((3, 4, 16, 16), float(i)), "label": i}


def test_loader_masks_are_reproducible_per_worker_and_equal_the_device_draw():
    strategy = DualMasking({"name": "tube", "ratio": 0.75}, {"name": "running_cell", "ratio": 0.5})
    grid = (2, 2, 2)
    ds = SeededDataset(LoaderMasks(_Clips(), {"video": (strategy, grid)}))
    keys = [(i, 1000 + 7 * i) for i in range(12)]

    def load(workers):
        loader = DataLoader(ds, batch_size=4, sampler=keys, num_workers=workers, collate_fn=collate_repeated)
        return [(b["masks"]["video"], b["decode_masks"]["video"]) for b in loader]

    serial, parallel = load(0), load(2)
    for (m0, d0), (m2, d2) in zip(serial, parallel):
        assert torch.equal(m0, m2) and torch.equal(d0, d2)
    # the device path, given each sample's seed, draws the very same masks
    seeds = []
    for _, sample_seed in keys[:4]:
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(sample_seed)
            seeds.append(int(torch.randint(0, 2**62, ())))
    spec = strategy(4, grid, seeds=seeds)
    assert torch.equal(spec.mask, serial[0][0]) and torch.equal(spec.decode, serial[0][1])
    every = torch.cat([m for m, _ in serial])
    assert len({tuple(m.tolist()) for m in every}) > 1  # samples get different masks


def test_trainer_uses_loader_masks(tmp_path):
    def run(workers):
        torch.manual_seed(0)
        model = OmniMaskForPreTraining(video_config())
        seen = []
        train = TrainConfig(
            epochs=1,
            batch_size=4,
            num_workers=workers,
            output_dir=str(tmp_path / f"w{workers}"),
            progress=False,
            masks_in_loader=True,
            checkpoint_every=0,
        )
        hook = lambda trainer, step, out: seen.append(out.mask["video"].clone())  # noqa: E731
        result = Trainer(model, _Clips(), train, OptimConfig(base_lr=1e-3, warmup_epochs=0), hooks=[hook]).fit()
        return result.losses, seen

    l0, m0 = run(0)
    l2, m2 = run(2)
    assert len(m0) == 3 and all(torch.equal(a, b) for a, b in zip(m0, m2))
    assert l0 == pytest.approx(l2, rel=1e-6)
    assert all(int((~m).sum(1)[0]) == 2 * (4 - int(0.9 * 4)) for m in m0)  # tube 0.9 on a 2x2x2 grid
    assert math.isfinite(l0[-1])
