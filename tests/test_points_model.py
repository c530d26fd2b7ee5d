"""The point-cloud modality: grouping tokenizer, positions before every block, coordinate masking,
hidden-only decoding with the Chamfer loss, the data config and pictures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from omnimask import OmniMaskConfig, OmniMaskForPreTraining, OmniMaskModel
from omnimask.backbone.encoder import EncoderConfig, TransformerEncoder
from omnimask.masking import MASKING
from omnimask.modalities.points import PointGroupTokenizer
from omnimask.ops.geometry import chamfer_distance
from omnimask.runners.common import build_dataset


def cloud(b: int = 2, n: int = 128, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, 3, generator=torch.Generator().manual_seed(seed))


def small_config(**points) -> dict:
    return {
        "encoder": {"dim": 32, "depth": 2, "num_heads": 2, "cls_token": False, "pos_every_block": True},
        "modalities": {
            "points": {
                "tokenizer": {"num_points": 128, "num_groups": 16, "group_size": 8},
                "decoder": {"depth": 1, "num_heads": 2},
                **points,
            }
        },
    }


# ---- tokenizer -----------------------------------------------------------------------------------
def test_tokenizer_groups_are_knn_of_fps_centres_relative_to_them():
    tok = PointGroupTokenizer(dim=16, num_points=128, num_groups=16, group_size=8)
    x = cloud()
    t = tok.tokenize(x)
    assert t.tokens.shape == (2, 16, 16) and t.pos.shape == (2, 16, 16) and t.coords.shape == (2, 16, 3)
    assert t.grid == (16,) and t.target.shape == (2, 16, 24)
    groups = t.target.unflatten(-1, (8, 3)) + t.coords.unsqueeze(2)
    for b in range(2):
        d = torch.cdist(t.coords[b], x[b])  # brute-force exact neighbours
        for g in range(16):
            expected = x[b][d[g].topk(8, largest=False).indices]
            assert torch.allclose(groups[b, g].sort(0).values, expected.sort(0).values, atol=1e-6)
        # every centre is a point of the cloud, and the first is point 0 (pointnet2's start)
        assert torch.equal(t.coords[b, 0], x[b, 0])
        assert all((x[b] == c).all(-1).any() for c in t.coords[b])
    assert torch.allclose(t.pos, tok.pos_embed(t.coords))
    tokens, grid = tok(x)
    assert torch.allclose(tokens, t.tokens + t.pos) and grid == (16,)
    assert torch.equal(tok.patchify(x), t.target)  # the same sampling every time


def test_tokenizer_rejects_bad_clouds_with_the_reason():
    tok = PointGroupTokenizer(dim=8, num_points=64, num_groups=16, group_size=8)
    with pytest.raises(ValueError, match="too small for 16 groups"):
        tok.tokenize(torch.randn(1, 12, 3))
    bad = torch.randn(3, 64, 3)
    bad[1, 7, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf in batch item\(s\) \[1\]"):
        tok.tokenize(bad)
    with pytest.raises(ValueError, match="last dim 3"):
        tok.tokenize(torch.randn(1, 64, 6))
    with pytest.raises(ValueError, match="floating-point"):
        tok.tokenize(torch.zeros(1, 64, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="num_points 10 is fewer"):
        PointGroupTokenizer(dim=8, num_points=10, num_groups=16, group_size=8)
    with pytest.raises(ValueError, match="fps_ties"):
        PointGroupTokenizer(dim=8, fps_ties="first")
    # all-identical points are a valid (degenerate) cloud: finite tokens
    assert torch.isfinite(tok.tokenize(torch.ones(2, 64, 3)).tokens).all()


# ---- backbone option -----------------------------------------------------------------------------
def test_encoder_adds_positions_before_every_block():
    enc = TransformerEncoder(EncoderConfig(dim=16, depth=3, num_heads=2)).eval()
    x, pos = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    expected = x
    for blk in enc.blocks:
        expected = blk(expected + pos)
    assert torch.allclose(enc(x, pos=pos), enc.norm(expected))
    assert not torch.allclose(enc(x, pos=pos), enc(x + pos))


def test_pos_once_vs_every_block_in_the_model():
    torch.manual_seed(0)
    once = OmniMaskModel(
        OmniMaskConfig(**{**small_config(), "encoder": {**small_config()["encoder"], "pos_every_block": False}})
    )
    every = OmniMaskModel(OmniMaskConfig(**small_config()))
    every.load_state_dict(once.state_dict())
    x = cloud()
    t = once.tokenizers["points"].tokenize(x)
    assert torch.allclose(once({"points": x}).last_hidden_state, once.encoder(t.tokens + t.pos), atol=1e-6)
    assert torch.allclose(every({"points": x}).last_hidden_state, every.encoder(t.tokens, pos=t.pos), atol=1e-6)


# ---- masking -------------------------------------------------------------------------------------
def test_nearest_block_hides_the_nearest_centres_to_the_lowest_noise_token():
    strategy = MASKING.build("nearest_block", {"ratio": 0.6})
    coords = torch.randn(3, 64, 3)
    noise = torch.rand(3, 64)
    spec = strategy(3, (64,), noise=noise, coords=coords)
    assert spec.mask.sum(1).tolist() == [int(0.6 * 64)] * 3  # Point-MAE's count: 38 hidden, 26 visible
    for b in range(3):
        seed = int(noise[b].argmin())
        d = (coords[b] - coords[b, seed]).norm(dim=-1)
        hidden_far, visible_near = d[spec.mask[b]].max(), d[~spec.mask[b]].min()
        assert spec.mask[b, seed] and hidden_far <= visible_near
    assert torch.equal(strategy(3, (64,), noise=noise, coords=coords).mask, spec.mask)  # reproducible
    with pytest.raises(ValueError, match="coordinates"):
        strategy(3, (64,), noise=noise)


def test_random_masking_counts_like_mae_or_like_point_mae():
    assert MASKING.build("random", {"ratio": 0.6}).num_keep(64) == 25  # MAE: int(64 * 0.4)
    assert MASKING.build("random", {"ratio": 0.6, "count": "hidden"}).num_keep(64) == 26  # Point-MAE: 64 - int(38.4)
    with pytest.raises(ValueError, match="count"):
        MASKING.build("random", {"ratio": 0.6, "count": "visibles"})


# ---- decoder and objective -----------------------------------------------------------------------
def test_decoder_predicts_hidden_groups_and_the_loss_is_their_chamfer_distance():
    model = OmniMaskForPreTraining(OmniMaskConfig(**small_config())).eval()
    x = cloud(3)
    mask = torch.zeros(3, 16, dtype=torch.bool)
    mask[:, [1, 4, 5, 9, 10, 11, 14, 15, 0]] = True  # int(0.6 * 16) = 9 hidden
    out = model({"points": x}, masks={"points": mask})
    pred = out.pred["points"]
    assert pred.shape == (3, 9, 24)
    target = model.omnimask.tokenizers["points"].patchify(x)[mask].reshape(3, 9, 24)  # ascending group order
    d1, d2 = chamfer_distance(pred.reshape(27, 8, 3).double(), target.reshape(27, 8, 3).double())
    assert torch.allclose(out.loss.double(), d1.mean() + d2.mean(), atol=1e-6)
    # the decoder's width is the encoder's (no projection); another width is a clear error
    with pytest.raises(ValueError, match="project=false needs the encoder's width"):
        OmniMaskForPreTraining(OmniMaskConfig(**small_config(decoder={"dim": 16, "num_heads": 2})))


def test_a_few_steps_reduce_the_reconstruction_loss():
    torch.manual_seed(0)
    model = OmniMaskForPreTraining(OmniMaskConfig(**small_config()))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    x = cloud(8, seed=2)
    x = x / x.norm(dim=-1, keepdim=True).amax(1, keepdim=True)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        loss = model({"points": x}, generator=g).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_visualize_draws_three_views_per_sample():
    model = OmniMaskForPreTraining(OmniMaskConfig(**small_config()))
    x = cloud(2)
    out = model({"points": x})
    img = model.visualize("points", x, out)
    assert img.size == (3 * 160, 2 * 160)
    assert len(np.unique(np.asarray(img).reshape(-1, 3), axis=0)) > 3  # grey, blue and red points on white


# ---- data ----------------------------------------------------------------------------------------
def test_recipe_data_reads_embedded_digits_for_pretraining_and_shapes_for_evaluation(embedded_data_dir, monkeypatch):
    monkeypatch.setenv("OMNIMASK_DATA_DIR", str(embedded_data_dir))
    cfg = OmniMaskConfig(**small_config())
    data = {"points": {"embedded": "points", "eval": {"embedded": "shapes"}}}
    train = build_dataset(cfg, data, "points", "train")
    val = build_dataset(cfg, data, "points", "val")
    item = train[0]
    assert item["points"].shape == (128, 3) and 0 <= item["label"] < 10
    assert len(val) == 5 * 30 and set(val.targets) == set(range(5))
    radius = item["points"].norm(dim=-1).max()
    assert radius > 0.5  # normalised to the unit sphere, then scaled/shifted by the augmentation
    with pytest.raises(ValueError, match="format"):
        build_dataset(cfg, {"points": {"format": "ply", "root": "/tmp"}}, "points", "train")
    with pytest.raises(ValueError, match="val_root"):
        build_dataset(cfg, {"points": {"root": str(embedded_data_dir / "points" / "train")}}, "points", "val")


def test_processor_turns_a_raw_array_into_a_unit_sphere_cloud():
    from omnimask.models.processor import OmniMaskProcessor

    cfg = OmniMaskConfig(**small_config())
    proc = OmniMaskProcessor(cfg)
    raw = torch.randn(300, 6).numpy() * 5 + 2  # x, y, z + normals, far from the unit sphere
    x = proc(points=[raw])["points"]
    assert x.shape == (1, 128, 3)
    assert math.isclose(float(x.reshape(-1, 3).norm(dim=-1).max()), 1.0, rel_tol=1e-5)


def test_weight_decay_skips_tokens_and_tables_but_not_the_centre_mlps():
    from omnimask.training.optim import param_groups

    cfg = small_config()
    cfg["encoder"]["cls_token"] = True
    model = OmniMaskForPreTraining(OmniMaskConfig(**cfg))
    groups = param_groups(model, 0.05)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {n: id(p) in decayed for n, p in model.named_parameters()}
    assert names["omnimask.tokenizers.points.pos_embed.0.weight"] and names["decoder_pos_embed.points.2.weight"]
    assert not names["omnimask.cls_token"]
    assert names["omnimask.cls_pos"]  # Point-MAE decays cls_pos too: only names with "token" are skipped
    assert not names["decoders.points.mask_token"] and not names["omnimask.encoder.blocks.0.norm1.weight"]
    assert (
        names["omnimask.tokenizers.points.embed.first.0.weight"]
        and not names["omnimask.tokenizers.points.embed.first.0.bias"]
    )
