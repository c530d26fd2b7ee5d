"""The pretraining / encoder models: contracts over every registered modality, multimodality,
save/load round trips, Auto classes and the errors users meet."""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

from conftest import tiny_config_dict
from omnimask import OmniMaskConfig, OmniMaskForPreTraining, OmniMaskModel, OmniMaskProcessor
from omnimask.modalities import MODALITIES
from omnimask.registry import ConfigError

_SMALL_TOKENIZERS = {
    "ImagePatchTokenizer": {"image_size": 32, "patch_size": 8},
    "VideoTubeTokenizer": {"num_frames": 4, "image_size": 32, "patch_size": 8},
    "SpectrogramTokenizer": {"target_length": 64, "num_mel_bins": 32, "patch_size": 8},
    "PointGroupTokenizer": {"num_points": 64, "num_groups": 8, "group_size": 8},
    "TextTokenEmbedding": {"vocab_size": 64, "max_length": 12},
}
# Point-MAE's decoder has the encoder's width and no input projection; the small decoder needs one.
_SMALL_DECODERS = {"PointGroupTokenizer": {"project": True}}


def _small(name: str) -> dict:
    """A small config for any registered modality (shrinks the big defaults)."""
    tok_name = MODALITIES.get(name).tokenizer.__name__
    m = {"decoder": {"dim": 16, "depth": 1, "num_heads": 2, **_SMALL_DECODERS.get(tok_name, {})}}
    tok = _SMALL_TOKENIZERS.get(tok_name)
    if tok:
        m["tokenizer"] = tok
    return m


@pytest.mark.parametrize("name", MODALITIES.names())
def test_contract_every_modality(name, tmp_path):
    cfg = OmniMaskConfig(encoder={"dim": 32, "depth": 2, "num_heads": 2}, modalities={name: _small(name)})
    model = OmniMaskForPreTraining(cfg)
    spec = MODALITIES.get(name)
    x = spec.example_input(cfg.modalities[name]["tokenizer"], 3)
    out = model({name: x})
    tok = model.omnimask.tokenizers[name]
    n = tok.patchify(x).shape[1]
    assert torch.isfinite(out.loss)
    decoded = out.specs[name].ids_decode  # decoders that predict only hidden tokens (Point-MAE)
    assert out.pred[name].shape == (3, n if decoded is None else decoded.shape[1], tok.output_dim)
    assert out.mask[name].dtype == torch.bool and out.mask[name].shape == (3, n)
    if tok.coordinate_positions:  # targets are groups around each sample's centres: x is not rebuilt from them
        assert torch.equal(tok.unpatchify(tok.patchify(x), out.grids[name]).flatten(2), tok.patchify(x))
    else:
        assert torch.equal(tok.unpatchify(tok.patchify(x), out.grids[name]), x)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "every parameter takes part in the loss"
    # save/load round trip is bit-exact
    model.save_pretrained(tmp_path)
    loaded = OmniMaskForPreTraining.from_pretrained(tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    masks = {name: model.maskings[name](3, out.grids[name], generator=torch.Generator().manual_seed(0)).mask}
    model.eval()
    assert torch.equal(model({name: x}, masks=masks).pred[name], loaded({name: x}, masks=masks).pred[name])


def test_seeded_encoder_equals_the_pretraining_models_initial_encoder():
    """The evaluation's random-init baseline relies on this: same seed, same initial encoder."""
    cfg = OmniMaskConfig(**tiny_config_dict())
    torch.manual_seed(3)
    pre = OmniMaskForPreTraining(cfg)
    torch.manual_seed(3)
    enc = OmniMaskModel(cfg)
    for k, v in enc.state_dict().items():
        assert torch.equal(v, pre.omnimask.state_dict()[k]), k


def test_qkv_init_split_draws_q_k_and_v_as_their_own_xavier_blocks():
    dim = 64
    bound = {"fused": (6 / (dim + 3 * dim)) ** 0.5, "split": (6 / (dim + dim)) ** 0.5}
    for mode in ("fused", "split"):
        cfg = tiny_config_dict()
        cfg["encoder"] = {**cfg["encoder"], "dim": dim, "num_heads": 4, "qkv_init": mode}
        torch.manual_seed(0)
        model = OmniMaskModel(OmniMaskConfig(**cfg))
        for blk in model.encoder.blocks:
            for w in blk.attn.qkv.weight.detach().chunk(3):
                assert w.abs().max() <= bound[mode]
                # 4096 uniform draws: the largest is within 0.5 % of the bound (fails with p ~ 1e-9)
                assert w.abs().max() > 0.995 * bound[mode]
            assert torch.equal(blk.attn.qkv.bias, torch.zeros(3 * dim))
    with pytest.raises(ValueError, match="encoder.qkv_init must be 'fused' or 'split', got 'jax'"):
        OmniMaskConfig(**{**tiny_config_dict(), "encoder": {"qkv_init": "jax"}})


def test_two_modalities_share_one_encoder():
    cfg = OmniMaskConfig(
        encoder={"dim": 32, "depth": 2, "num_heads": 2},
        modalities={"image": _small("image"), "signal": {}},
    )
    assert cfg.use_modality_embed
    model = OmniMaskForPreTraining(cfg)
    x = {"image": torch.randn(2, 3, 32, 32), "signal": torch.randn(2, 2, 64)}
    out = model(x)
    assert set(out.losses) == {"image", "signal"}
    assert torch.allclose(out.loss, out.losses["image"] + out.losses["signal"])
    # the decoders see each other's context: changing the signal changes the image prediction
    noise = {"image": torch.rand(2, 16), "signal": torch.rand(2, 8)}
    model.eval()
    a = model(x, noise=noise).pred["image"]
    b = model({**x, "signal": torch.randn(2, 2, 64)}, noise=noise).pred["image"]
    assert not torch.allclose(a, b)
    # a batch may carry only some of the modalities
    only = model({"signal": x["signal"]})
    assert set(only.losses) == {"signal"}


def test_loss_weights_and_exact_masked_mse():
    d = tiny_config_dict(objective={"name": "mse", "norm": "none"}, loss_weight=0.5)
    model = OmniMaskForPreTraining(OmniMaskConfig(**d)).eval()
    x = torch.randn(2, 3, 32, 32)
    out = model({"image": x})
    target = model.omnimask.tokenizers["image"].patchify(x)
    err = ((out.pred["image"] - target) ** 2).mean(-1)
    m = out.mask["image"]
    expected = err[m].mean()
    assert torch.allclose(out.losses["image"], expected)
    assert torch.allclose(out.loss, 0.5 * expected)


def test_norm_pix_target_matches_mae_formula():
    from omnimask.objectives.mse import MaskedMSE

    t = torch.randn(2, 5, 12)
    mean, var = t.mean(-1, keepdim=True), t.var(-1, keepdim=True)
    assert torch.allclose(MaskedMSE("patch").normalize_target(t), (t - mean) / (var + 1e-6) ** 0.5)
    tc = t.unflatten(-1, (4, 3))
    ref = ((tc - tc.mean(-2, keepdim=True)) / (tc.std(-2, keepdim=True) + 1e-6)).flatten(-2)
    assert torch.allclose(MaskedMSE("patch_channel", channels=3).normalize_target(t), ref)
    pred = torch.randn(2, 5, 12)
    back = MaskedMSE("patch").denormalize_pred(MaskedMSE("patch").normalize_target(t), t)
    assert torch.allclose(back, t, atol=1e-5) and pred.shape == back.shape


def test_explicit_masks_and_noise_reproduce():
    model = OmniMaskForPreTraining(OmniMaskConfig(**tiny_config_dict())).eval()
    x = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 16)
    a = model({"image": x}, noise={"image": noise})
    b = model({"image": x}, masks={"image": a.mask["image"]})
    assert torch.equal(a.mask["image"], b.mask["image"])
    assert torch.allclose(a.pred["image"], b.pred["image"], atol=1e-6)  # same visible set, other order
    with pytest.raises(KeyError, match="not in the batch"):
        model({"image": x}, noise={"audio": noise})


def test_encoder_only_load_drops_decoder_and_autoclasses(tmp_path, caplog):
    pre = OmniMaskForPreTraining(OmniMaskConfig(**tiny_config_dict()))
    pre.save_pretrained(tmp_path / "pre")
    with caplog.at_level("INFO"):
        enc = OmniMaskModel.from_pretrained(tmp_path / "pre")
    assert "dropped" in caplog.text and "decoders.image" in caplog.text
    for k, v in enc.state_dict().items():
        assert torch.equal(v, pre.state_dict()["omnimask." + k])
    auto = AutoModel.from_pretrained(tmp_path / "pre")
    assert isinstance(auto, OmniMaskModel)
    assert AutoModel.from_pretrained(tmp_path / "pre", dtype="auto").cls_token.dtype == torch.float32
    assert OmniMaskModel.from_pretrained(tmp_path / "pre", dtype=torch.bfloat16).cls_token.dtype == torch.bfloat16
    assert isinstance(AutoModelForPreTraining.from_pretrained(tmp_path / "pre"), OmniMaskForPreTraining)
    assert AutoConfig.from_pretrained(tmp_path / "pre").model_type == "omnimask"
    x = torch.randn(2, 3, 32, 32)
    out = auto(image=x)
    assert out.last_hidden_state.shape == (2, 17, 32) and out.pooler_output.shape == (2, 32)
    # an encoder-only checkpoint round-trips, and the pretraining class refuses it clearly
    enc.save_pretrained(tmp_path / "enc")
    assert torch.equal(
        OmniMaskModel.from_pretrained(tmp_path / "enc")(image=x).pooler_output, enc(image=x).pooler_output
    )
    with pytest.raises(ValueError, match="encoder-only"):
        OmniMaskForPreTraining.from_pretrained(tmp_path / "enc")


def test_saved_config_carries_preprocessing(tmp_path):
    pre = OmniMaskForPreTraining(OmniMaskConfig(**tiny_config_dict(processor={"mean": [0.5] * 3, "std": [0.25] * 3})))
    pre.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    image = saved["modalities"]["image"]
    assert image["tokenizer"]["image_size"] == 32 and image["processor"]["mean"] == [0.5] * 3
    assert saved["architectures"] == ["OmniMaskForPreTraining"]
    proc = OmniMaskProcessor.from_pretrained(tmp_path)
    from PIL import Image

    batch = proc(image=[Image.new("RGB", (50, 40), (128, 128, 128))])
    assert batch["image"].shape == (1, 3, 32, 32)
    assert torch.allclose(batch["image"], torch.full_like(batch["image"], (128 / 255 - 0.5) / 0.25), atol=1e-4)


def test_loading_errors(tmp_path):
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text(json.dumps({"model_type": "vit_mae"}))
    with pytest.raises(ValueError, match="'vit_mae' checkpoint.*omnimask convert"):
        OmniMaskForPreTraining.from_pretrained(tmp_path / "vit")
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        OmniMaskModel.from_pretrained(tmp_path / "missing")
    pre = OmniMaskForPreTraining(OmniMaskConfig(**tiny_config_dict()))
    pre.save_pretrained(tmp_path / "ok")
    (tmp_path / "ok" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        OmniMaskForPreTraining.from_pretrained(tmp_path / "ok")
    # a config that does not match the weights
    pre.save_pretrained(tmp_path / "ok2")
    other = OmniMaskConfig(**{**tiny_config_dict(), "encoder": {"dim": 64, "depth": 2, "num_heads": 2}})
    with pytest.raises(ValueError, match="shapes do not match"):
        OmniMaskForPreTraining.from_pretrained(tmp_path / "ok2", config=other)


def test_config_errors_name_the_bad_value():
    with pytest.raises(ConfigError, match="unknown modality type 'imgae'.*image"):
        OmniMaskConfig(modalities={"imgae": {}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['patchsize'\].*patch_size"):
        OmniMaskConfig(modalities={"image": {"tokenizer": {"patchsize": 8}}})
    with pytest.raises(KeyError, match="unknown masking strategy 'tubes'.*tube"):
        OmniMaskConfig(modalities={"image": {"masking": {"name": "tubes"}}})
    with pytest.raises(ConfigError, match="depht"):
        OmniMaskConfig(encoder={"depht": 3})
    with pytest.raises(ConfigError, match="in_dim"):
        OmniMaskConfig(modalities={"image": {"decoder": {"in_dim": 3}}})
    model = OmniMaskForPreTraining(OmniMaskConfig(**tiny_config_dict()))
    with pytest.raises(KeyError, match="unknown modality \\['audio'\\]"):
        model({"audio": torch.randn(1, 10)})
    with pytest.raises(ValueError, match="3 channel"):
        model({"image": torch.randn(1, 1, 32, 32)})
