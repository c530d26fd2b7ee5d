"""Parity of ``omnimask convert --from cav-mae`` with CAV-MAE.

CAV-MAE is not installable (it monkey-patches timm 0.4.5), so the reference is
``cav_mae_reference.py``: CAV-MAE written out from its published description with the official
module names. Every trainable weight is random (norms included; the sin-cos tables are fixed, as in
CAV-MAE pretraining), its state dict is saved with DataParallel's ``module.`` prefixes, converted,
and both models get the same fbank ``(B, T, F)`` / frame and the same masks (CAV-MAE's audio mask
permuted to omnimask's time-major token order). Compared: the joint pass and each alone pass per
token (as grids: the two models keep visible tokens in different orders), predictions (omnimask's
audio permuted back to CAV-MAE's token and patch layout), the MAE losses, the contrastive loss and
logits, the total loss. Run with ``-s`` to see the differences.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest
import torch

import cav_mae_reference as ref
from omnimask import OmniMaskConfig, OmniMaskForPreTraining, OmniMaskModel
from omnimask.backbone.pos_embed import sincos_2d_audiomae, sincos_2d_mae
from omnimask.cli import main as cli_main
from omnimask.convert import ConversionError, convert, format_options
from omnimask.convert.cav_mae import cav_to_omnimask_tokens, omnimask_audio_patches_to_cav, omnimask_to_cav_tokens
from omnimask.modalities.audio.tokenizer import SpectrogramTokenizer, sincos_2d_cav_mae

TOL = 1e-5
OBSERVED: dict[str, dict[str, float]] = {}

#: Sizes nothing in the converter knows: width 48 / 3 heads, a 32-wide 2-block decoder, 256 frames,
#: 32-pixel frames in 8-pixel patches.
TINY = dict(
    audio_length=256,
    img_size=32,
    patch=16,
    img_patch=8,
    dim=48,
    depth=3,
    modality_specific_depth=2,
    heads=3,
    decoder_dim=32,
    decoder_depth=2,
    decoder_heads=4,
)
HEADS = {"num_heads": 3, "decoder_num_heads": 4}


def _make(tmp_path: Path, seed: int = 0, name: str = "audio_model.25.pth", **overrides) -> tuple[ref.CAVMAE, Path]:
    model = ref.randomize(ref.CAVMAE(**{**TINY, **overrides}), seed=seed)
    path = tmp_path / name
    torch.save(ref.official_state(model), path)
    return model, path


def _grid(model: ref.CAVMAE) -> tuple[int, int]:
    """omnimask's (time, freq) audio token grid of the reference."""
    f = 128 // model.patch
    return model.num_patches_a // f, f


def _full(x: torch.Tensor, ids_keep: torch.Tensor, n: int) -> torch.Tensor:
    """(B, K, D) visible tokens -> (B, N, D) on the grid (zeros at hidden positions)."""
    out = x.new_zeros(x.shape[0], n, x.shape[2])
    return out.scatter(1, ids_keep.unsqueeze(-1).expand_as(x), x)


def _omnimask_passes(om: OmniMaskForPreTraining, batch: dict, masks: dict) -> dict:
    """The joint pass, the alone passes (per token) and the contrastive logits, through omnimask's stages."""
    tokens = om.omnimask.embed(batch)
    specs = om.forward_masking(tokens, noise={}, masks=masks, decode_masks={}, mask_seeds={})
    enc = om.forward_encoder(tokens, specs)
    keys = ("audio", "image")
    alone = {k: om.omnimask.encode_shared({k: enc.entered[k]}).parts[k] for k in keys}
    feats = [om.forward_alone(k, enc, tokens[k], specs[k]) for k in keys]
    n = {k: tokens[k].tokens.shape[1] for k in keys}
    return {
        "joint": {k: _full(enc.parts[k], specs[k].ids_keep, n[k]) for k in keys},
        "alone": {k: _full(alone[k], specs[k].ids_keep, n[k]) for k in keys},
        "logits": om.contrastive.logits(*feats),
    }


def _reference_grids(model: ref.CAVMAE, r: ref.RefOutput) -> dict:
    """The reference's joint and alone outputs as omnimask-ordered grids."""
    grid, (na, nv) = _grid(model), (model.num_patches_a, model.num_patches_v)
    ka = r.ids_keep_a.shape[1]
    audio = {
        "joint": _full(r.latent[:, :ka], r.ids_keep_a, na),
        "alone": _full(r.latent_c_a, r.ids_keep_a, na),
    }
    return {
        "joint": {
            "audio": cav_to_omnimask_tokens(audio["joint"], grid),
            "image": _full(r.latent[:, ka:], r.ids_keep_v, nv),
        },
        "alone": {
            "audio": cav_to_omnimask_tokens(audio["alone"], grid),
            "image": _full(r.latent_c_v, r.ids_keep_v, nv),
        },
    }


def compare(model: ref.CAVMAE, dst: Path, case: str, batch_size: int = 4, seed: int = 0, **forward) -> dict:
    """Run both models on the same inputs and masks; record and check every difference."""
    gen = torch.Generator().manual_seed(seed)
    length, side = (
        model.num_patches_a // (128 // model.patch) * model.patch,
        int(model.num_patches_v**0.5) * model.img_patch,
    )
    a, v = torch.randn(batch_size, length, 128, generator=gen), torch.randn(batch_size, 3, side, side, generator=gen)
    noise_a = torch.rand(batch_size, model.num_patches_a, generator=gen)
    noise_v = torch.rand(batch_size, model.num_patches_v, generator=gen)
    om = OmniMaskForPreTraining.from_pretrained(dst).eval()
    grid = _grid(model)
    batch = {"audio": a.unsqueeze(1), "image": v}
    with torch.no_grad():
        r = model(a, v, noise_a, noise_v, **forward)
        masks = {"audio": cav_to_omnimask_tokens(r.mask_a.bool(), grid), "image": r.mask_v.bool()}
        out = om(batch, masks=masks)
        by_noise = om(batch, noise={"audio": cav_to_omnimask_tokens(noise_a, grid), "image": noise_v})
        passes, expected = _omnimask_passes(om, batch, masks), _reference_grids(model, r)
    for o in (out, by_noise):
        assert torch.equal(o.mask["audio"], masks["audio"]) and torch.equal(o.mask["image"], masks["image"])
    patch = tuple(om.omnimask.tokenizers["audio"].patch_size)
    diffs = {
        "pred_audio": (omnimask_audio_patches_to_cav(out.pred["audio"], grid, patch) - r.pred_a).abs().max(),
        "pred_image": (out.pred["image"] - r.pred_v).abs().max(),
        "loss_audio": (out.losses["audio"] - r.loss_mae_a).abs(),
        "loss_image": (out.losses["image"] - r.loss_mae_v).abs(),
        "contrastive": (out.losses["contrastive"] - r.nce).abs(),
        "loss": (out.loss - r.loss).abs(),
        "loss_by_noise": (by_noise.loss - r.loss).abs(),
        "logits": (passes["logits"] - r.total.T).abs().max(),
    }
    for pass_ in ("joint", "alone"):
        for k in ("audio", "image"):
            diffs[f"{pass_}_{k}"] = (passes[pass_][k] - expected[pass_][k]).abs().max()
    OBSERVED[case] = {k: float(v) for k, v in diffs.items()}
    print(f"\n[{case}] " + ", ".join(f"{k} {v:.2g}" for k, v in OBSERVED[case].items()))
    assert max(OBSERVED[case].values()) < TOL, OBSERVED[case]
    return OBSERVED[case]


def _config(dst: Path) -> dict:
    return json.loads((dst / "config.json").read_text())


# ---- the position table ---------------------------------------------------------------------------
@pytest.mark.parametrize("grid", [(64, 8), (16, 8), (5, 3)])
def test_cav_mae_table_is_the_reference_table_in_omnimask_order(grid: tuple[int, int]) -> None:
    time, freq = grid
    cav = ref.sincos_table(48, freq, time)  # CAV-MAE's (freq rows, time cols) table, its token order
    ours = sincos_2d_cav_mae(48, grid)
    assert torch.equal(omnimask_to_cav_tokens(ours[None], grid), cav)
    tok = SpectrogramTokenizer(48, target_length=time * 16, num_mel_bins=freq * 16, pos_embed="cav_mae")
    assert torch.equal(tok.pos_embed, ours)
    # neither older option reproduces it: a new layout was needed
    assert (sincos_2d_mae(48, (time, freq)) - ours).abs().max() > 0.5
    assert (sincos_2d_audiomae(48, grid) - ours).abs().max() > 0.5
    # another clip length or mel-bin count: the table of that grid
    x = torch.randn(1, 1, (time + 2) * 16, (freq + 1) * 16)
    tokens, new_grid = tok(x, interpolate_pos=True)
    plain = tok.proj(x).flatten(2).transpose(1, 2)
    assert new_grid == (time + 2, freq + 1)
    assert torch.allclose(tokens - plain, sincos_2d_cav_mae(48, new_grid), atol=1e-6)


def test_token_and_patch_orders() -> None:
    grid, (kt, kf) = (6, 4), (16, 8)
    x = torch.randn(2, 6 * 4, 5)
    assert torch.equal(omnimask_to_cav_tokens(cav_to_omnimask_tokens(x, grid), grid), x)
    fbank = torch.randn(2, 6 * kt, 4 * kf)  # CAV-MAE's (B, T, F)
    tok = SpectrogramTokenizer(16, target_length=6 * kt, num_mel_bins=4 * kf, patch_size=[kt, kf])
    cav_target = ref.patchify(fbank.unsqueeze(1).transpose(2, 3), kf, kt)
    assert torch.equal(omnimask_audio_patches_to_cav(tok.patchify(fbank.unsqueeze(1)), grid, (kt, kf)), cav_target)


# ---- parity ---------------------------------------------------------------------------------------
def test_parity_one_shared_block(tmp_path: Path) -> None:
    model, src = _make(tmp_path)
    dst = convert("cav-mae", src, tmp_path / "om", **HEADS)
    cfg = _config(dst)
    audio, image = cfg["modalities"]["audio"], cfg["modalities"]["image"]
    assert audio["tokenizer"] == {
        "target_length": 256,
        "num_mel_bins": 128,
        "patch_size": [16, 16],
        "in_chans": 1,
        "pos_embed": "cav_mae",
    }
    assert image["tokenizer"] == {"image_size": [32, 32], "patch_size": [8, 8], "in_chans": 3}
    assert audio["processor"] == {"mean": [-5.081], "std": [4.4849], "sample_rate": 16000}
    assert audio["masking"] == image["masking"] == {"name": "random", "ratio": 0.75}
    assert audio["objective"]["norm"] == "patch" and audio["loss_weight"] == image["loss_weight"] == 1.0
    enc = cfg["encoder"]
    assert (enc["dim"], enc["depth"], enc["num_heads"], enc["modality_specific_depth"]) == (48, 3, 3, 2)
    assert enc["norm_eps"] == 1e-5 and enc["modality_norms"] and not enc["cls_token"]
    assert cfg["joint_decoder"] == {
        "modalities": ["audio", "image"],
        "dim": 32,
        "depth": 2,
        "num_heads": 4,
        "mlp_ratio": 4.0,
        "qkv_bias": True,
        "norm_eps": 1e-5,
        "modality_embed": True,
    }
    assert cfg["contrastive"] == {
        "name": "infonce",
        "modalities": ["audio", "image"],
        "weight": 0.01,
        "temperature": 0.05,
        "symmetric": False,
        "tokens": "visible",  # CAV-MAE pools the visible tokens of each modality's own pass
    }
    compare(model, dst, "1 shared block")


def test_parity_options_raw_pixels_bidirectional_no_qkv_bias(tmp_path: Path) -> None:
    model, src = _make(
        tmp_path,
        seed=1,
        audio_length=128,
        img_size=48,
        img_patch=16,
        qkv_bias=False,
        mlp_ratio=2.0,
        norm_pix_loss=False,
    )
    options = dict(
        norm_pix_loss=False,
        mask_ratio_a=0.5,
        mask_ratio_v=0.6,
        mae_loss_weight=3.0,
        contrast_loss_weight=0.1,
        bidirect_contrast=True,
    )
    dst = convert("cav-mae", src, tmp_path / "om", **HEADS, **options)
    cfg = _config(dst)
    assert (
        cfg["modalities"]["audio"]["masking"]["ratio"] == 0.5 and cfg["modalities"]["image"]["masking"]["ratio"] == 0.6
    )
    assert cfg["contrastive"]["symmetric"] is True and cfg["encoder"]["qkv_bias"] is False
    forward = dict(ratio_a=0.5, ratio_v=0.6, mae_loss_weight=3.0, contrast_loss_weight=0.1, bidirect=True)
    compare(model, dst, "raw pixels, ratios 0.5/0.6, weights 3/0.1, bidirectional, no qkv bias, mlp 2", **forward)


def test_parity_all_blocks_shared(tmp_path: Path) -> None:
    model, src = _make(tmp_path, seed=2, depth=1, modality_specific_depth=0)
    dst = convert("cav-mae", src, tmp_path / "om", **HEADS)
    assert _config(dst)["encoder"]["modality_specific_depth"] == 0
    compare(model, dst, "0 specific + 1 shared")


def test_two_shared_blocks_chain_alone_passes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The published loop re-reads the modality's input in every shared block; omnimask chains them,
    # as CAV-MAE's retrieval and fine-tuning do. Joint pass, predictions, MAE losses are exact; the
    # alone passes and the contrastive term equal the chained reference and differ from the published one.
    model, src = _make(tmp_path, seed=3, depth=4, modality_specific_depth=2)
    with caplog.at_level(logging.WARNING, logger="omnimask.convert.cav_mae"):
        dst = convert("cav-mae", src, tmp_path / "om", **HEADS)
    assert "2 shared blocks" in caplog.text and "does not chain" in caplog.text
    model.chain_alone = True
    compare(model, dst, "2 shared blocks vs chained reference")
    model.chain_alone = False
    om = OmniMaskForPreTraining.from_pretrained(dst).eval()
    a, v = torch.randn(4, 256, 128), torch.randn(4, 3, 32, 32)
    noise_a, noise_v = torch.rand(4, model.num_patches_a), torch.rand(4, model.num_patches_v)
    with torch.no_grad():
        r = model(a, v, noise_a, noise_v)
        masks = {"audio": cav_to_omnimask_tokens(r.mask_a.bool(), _grid(model)), "image": r.mask_v.bool()}
        out = om({"audio": a.unsqueeze(1), "image": v}, masks=masks)
    assert abs(float(out.losses["audio"] - r.loss_mae_a)) < TOL and abs(float(out.losses["image"] - r.loss_mae_v)) < TOL
    assert abs(float(out.losses["contrastive"] - r.nce)) > 1e-3  # the documented difference


def test_encoder_only_and_retrieval_features(tmp_path: Path) -> None:
    model = ref.randomize(ref.CAVMAE(**{**TINY, "depth": 4}), seed=4)
    sd = {
        k: v for k, v in ref.official_state(model).items() if not k.startswith(("module.decoder_", "module.mask_token"))
    }
    torch.save(sd, tmp_path / "enc.pth")
    dst = convert("cav-mae", tmp_path / "enc.pth", tmp_path / "enc", **HEADS)
    assert _config(dst)["architectures"] == ["OmniMaskModel"]
    om = OmniMaskModel.from_pretrained(dst).eval()
    a, v = torch.randn(3, 256, 128), torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        fa, fv = model.forward_feat(a, v)  # each modality alone, modality norms, chained
        got_a = om(audio=a.unsqueeze(1)).last_hidden_state
        got_v = om(image=v).last_hidden_state
        # joint pass without masking (ratio 0, identity order) against omnimask's two-modality pass
        n_a, n_v = model.num_patches_a, model.num_patches_v
        ident_a, ident_v = torch.arange(n_a).float().expand(3, n_a), torch.arange(n_v).float().expand(3, n_v)
        joint, *_ = model.forward_encoder(a, v, ident_a, ident_v, 0.0, 0.0)
        both = om(audio=a.unsqueeze(1), image=v).hidden
    diffs = {
        "alone_audio": (omnimask_to_cav_tokens(got_a, _grid(model)) - fa).abs().max(),
        "alone_image": (got_v - fv).abs().max(),
        "joint_audio": (omnimask_to_cav_tokens(both["audio"], _grid(model)) - joint[:, :n_a]).abs().max(),
        "joint_image": (both["image"] - joint[:, n_a:]).abs().max(),
    }
    OBSERVED["encoder-only (2 shared)"] = {k: float(d) for k, d in diffs.items()}
    print(f"\n[encoder-only] {OBSERVED['encoder-only (2 shared)']}")
    assert max(OBSERVED["encoder-only (2 shared)"].values()) < TOL


def test_cli_and_list(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, src = _make(tmp_path, seed=5)
    argv = ["convert", "--from", "cav-mae", str(tmp_path), str(tmp_path / "om")]  # the directory holding the .pth
    argv += ["--option", "num_heads=3", "--option", "decoder_num_heads=4", "--option", "dataset_mean=-4"]
    argv += ["--option", "dataset_std=5", "--option", "temperature=0.1"]
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.startswith("converted cav-mae:")
    cfg = _config(tmp_path / "om")
    assert cfg["modalities"]["audio"]["processor"]["mean"] == [-4.0] and cfg["contrastive"]["temperature"] == 0.1
    assert cli_main(["list"]) == 0
    assert "cav-mae" in capsys.readouterr().out
    accepted = set(format_options("cav-mae"))
    assert {"num_heads", "norm_pix_loss", "mask_ratio_a", "contrast_loss_weight", "bidirect_contrast"} <= accepted


# ---- bad inputs -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def official() -> dict[str, torch.Tensor]:
    return ref.official_state(ref.randomize(ref.CAVMAE(**TINY), seed=6))


def _convert(tmp_path: Path, sd: dict, **options):
    torch.save(sd, tmp_path / "bad.pth")
    return convert("cav-mae", tmp_path / "bad.pth", tmp_path / "bad_out", **{**HEADS, **options})


def test_not_a_cav_mae_checkpoint(official, tmp_path: Path) -> None:
    audiomae = {"patch_embed.proj.weight": torch.zeros(48, 1, 16, 16), "pos_embed": torch.zeros(1, 129, 48)}
    torch.save({"model": audiomae, "args": argparse.Namespace(norm_pix_loss=True)}, tmp_path / "audiomae.pth")
    with pytest.raises(ConversionError, match=r"not a CAV-MAE checkpoint.*patch_embed\.proj\.weight.*--from audiomae"):
        convert("cav-mae", tmp_path / "audiomae.pth", tmp_path / "o")
    with pytest.raises(ConversionError, match="patch_embed_a.proj.weight is missing"):
        _convert(tmp_path, {"module.blocks.0.x": torch.zeros(1)})
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ConversionError, match="does not hold a state dict"):
        convert("cav-mae", tmp_path / "list.pth", tmp_path / "o")


def test_missing_and_unknown_tensors(official, tmp_path: Path) -> None:
    for key in ("module.blocks_u.0.norm1_a.weight", "module.decoder_pred_v.bias", "module.decoder_pos_embed_a"):
        sd = {k: v for k, v in official.items() if k != key}
        with pytest.raises(ConversionError, match=rf"missing: \['{key[len('module.') :]}'\]"):
            _convert(tmp_path, sd)
    with pytest.raises(ConversionError, match="pos_embed_a is missing"):
        _convert(tmp_path, {k: v for k, v in official.items() if k != "module.pos_embed_a"})
    with pytest.raises(ConversionError, match=r"no omnimask counterpart.*blocks_u\.0\.ls1\.gamma"):
        _convert(tmp_path, {**official, "module.blocks_u.0.ls1.gamma": torch.zeros(48)})
    sd = {k: v for k, v in official.items() if not k.startswith("module.blocks_v.1.")}
    with pytest.raises(ConversionError, match="2 blocks_a but 1 blocks_v"):
        _convert(tmp_path, sd)
    sd = {k: v for k, v in official.items() if not k.startswith("module.blocks_a.0.")}
    with pytest.raises(ConversionError, match=r"blocks_a: blocks \[0\] are missing"):
        _convert(tmp_path, sd)


def test_learned_and_wrong_tables(official, tmp_path: Path) -> None:
    for key in ("pos_embed_a", "pos_embed_v", "decoder_pos_embed_a", "decoder_pos_embed_v"):
        sd = {**official, f"module.{key}": official[f"module.{key}"] + 0.01}
        with pytest.raises(ConversionError, match=rf"{key} is not CAV-MAE's fixed sin-cos table.*learned table"):
            _convert(tmp_path, sd)
    # the (time, freq) table in omnimask's order is a different layout, not CAV-MAE's
    swapped = sincos_2d_mae(48, (16, 8))[None]
    with pytest.raises(ConversionError, match=r"pos_embed_a is not CAV-MAE's.*8 x 16 \(frequency x time\)"):
        _convert(tmp_path, {**official, "module.pos_embed_a": swapped})
    with pytest.raises(ConversionError, match=r"pos_embed_a has shape \(1, 100, 48\)"):
        _convert(tmp_path, {**official, "module.pos_embed_a": torch.zeros(1, 100, 48)})
    with pytest.raises(ConversionError, match=r"pos_embed_v has shape \(1, 15, 48\).*square"):
        _convert(tmp_path, {**official, "module.pos_embed_v": torch.zeros(1, 15, 48)})


def test_finetuned_checkpoints_are_refused(official, tmp_path: Path) -> None:
    encoder = {k: v for k, v in official.items() if not k.startswith(("module.decoder_", "module.mask_token"))}
    head = {
        "module.mlp_head.0.weight": torch.ones(48),
        "module.mlp_head.0.bias": torch.zeros(48),
        "module.mlp_head.1.weight": torch.zeros(527, 48),
        "module.mlp_head.1.bias": torch.zeros(527),
    }
    learned = {**encoder, **head, "module.pos_embed_a": encoder["module.pos_embed_a"] + 0.02}
    with pytest.raises(
        ConversionError, match=r"fine-tuned CAV-MAE classifier.*pos_embed_a \(max abs diff 0\.02\).*tr_pos"
    ):
        _convert(tmp_path, learned)
    with pytest.raises(ConversionError, match=r"fine-tuned CAV-MAE classifier .*\]\): its head .*both modalities"):
        _convert(tmp_path, {**encoder, **head})


def test_bad_shapes_and_options(official, tmp_path: Path) -> None:
    with pytest.raises(
        ConversionError, match="decoder_pred_a.weight predicts 10 values per token; a audio patch has 256"
    ):
        _convert(tmp_path, {**official, "module.decoder_pred_a.weight": torch.zeros(10, 32)})
    with pytest.raises(ConversionError, match="shapes disagree"):
        _convert(tmp_path, {**official, "module.blocks_u.0.norm1_v.bias": torch.zeros(7)})
    with pytest.raises(ConversionError, match="width 48 is not CAV-MAE's published one.*num_heads=N"):
        _convert(tmp_path, official, num_heads=None)
    with pytest.raises(ConversionError, match="decoder width 32 .*decoder_num_heads=N"):
        _convert(tmp_path, official, decoder_num_heads=None)
    with pytest.raises(ConversionError, match="num_heads=5 does not divide the encoder width 48"):
        _convert(tmp_path, official, num_heads=5)
    with pytest.raises(ConversionError, match=r"mask_ratio_a must be a number in \(0.0, 1.0\)"):
        _convert(tmp_path, official, mask_ratio_a=1.0)
    with pytest.raises(ConversionError, match="norm_pix_loss must be true or false"):
        _convert(tmp_path, official, norm_pix_loss="yes")
    with pytest.raises(ConversionError, match="num_mel_bins=120 is not divisible by the audio patch height 16"):
        _convert(tmp_path, official, num_mel_bins=120)
    with pytest.raises(ConversionError, match="does not accept.*mask_ratio"):
        _convert(tmp_path, official, mask_ratio=0.5)


def test_converted_config_trains(tmp_path: Path) -> None:
    # the converted checkpoint is an ordinary omnimask model: random masks, a backward pass
    _, src = _make(tmp_path, seed=7)
    om = OmniMaskForPreTraining.from_pretrained(convert("cav-mae", src, tmp_path / "om", **HEADS))
    assert isinstance(om.config, OmniMaskConfig)
    out = om({"audio": torch.randn(2, 1, 256, 128), "image": torch.randn(2, 3, 32, 32)})
    assert int((~out.mask["audio"]).sum(1)[0]) == int(128 * 0.25) and set(out.losses) == {
        "audio",
        "image",
        "contrastive",
    }
    out.loss.backward()
