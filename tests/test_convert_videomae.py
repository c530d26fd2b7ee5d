"""Parity of ``omnimask convert --from hf-videomae`` / ``--from videomae`` with transformers' VideoMAE.

HF models are built from configs and every parameter is randomised here (biases, LayerNorm weights
and the mask token included): a fresh init has zero biases and unit norms, which hides mapping
mistakes. Masks come from omnimask's tube masking (the same count in every sample, as VideoMAE
needs) and are given to both models as ``bool_masked_pos``.

The official (MCG-NJU) layout is built from the HF weights by renaming (``to_official`` below), so
the same HF model is the reference for both formats. Run with ``-s`` to see the max differences.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification, VideoMAEModel

from omnimask import OmniMaskForPreTraining, OmniMaskModel
from omnimask.backbone.pos_embed import sincos_1d_interleaved
from omnimask.cli import main as cli_main
from omnimask.convert import ConversionError, convert, format_options
from omnimask.convert.cli import parse_option, parse_option_value
from omnimask.convert.hf_videomae import videomae_state_to_omnimask
from omnimask.masking.tube import TubeMasking
from omnimask.runners.finetune import ClassifierModel, FinetuneConfig

BASE = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    decoder_hidden_size=16,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=2,
    decoder_intermediate_size=48,
    num_channels=3,
    num_frames=4,
    image_size=32,
    patch_size=8,
    tubelet_size=2,
    norm_pix_loss=True,
    use_mean_pooling=False,
)
MEAN_POOLING = {**BASE, "use_mean_pooling": True}  # VideoMAEConfig's default: no final encoder norm
OBSERVED: dict[str, tuple[float, float]] = {}  # case -> (max |logits - pred|, |loss diff|)


def randomize(model: torch.nn.Module, std: float = 0.1) -> torch.nn.Module:
    """Every parameter random: LayerNorm weights around 1, everything else (biases too) around 0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.normal_(1.0, 0.1)
            else:
                p.normal_(0.0, std)
    return model.eval()


def hf_pretraining(attn: str = "sdpa", std: float = 0.1, **overrides) -> VideoMAEForPreTraining:
    cfg = VideoMAEConfig(**{**BASE, **overrides})
    return randomize(VideoMAEForPreTraining._from_config(cfg, attn_implementation=attn), std)


def grid_of(cfg: VideoMAEConfig) -> tuple[int, int, int]:
    return cfg.num_frames // cfg.tubelet_size, cfg.image_size // cfg.patch_size, cfg.image_size // cfg.patch_size


def tube_mask(cfg: VideoMAEConfig, batch: int, ratio: float) -> torch.Tensor:
    t, h, w = grid_of(cfg)
    return TubeMasking(ratio).from_noise(torch.rand(batch, h * w), (t, h, w)).mask


def write_hf_dir(path: Path, config: VideoMAEConfig, state: dict[str, torch.Tensor]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    config.to_json_file(str(path / "config.json"))
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path / "model.safetensors"))
    return path


def to_hub(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """In-memory names (query.bias/value.bias) -> the hub spelling (q_bias/v_bias)."""
    return {
        k.replace("attention.query.bias", "attention.q_bias").replace("attention.value.bias", "attention.v_bias"): v
        for k, v in state.items()
    }


def to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers in-memory VideoMAEForPreTraining names -> the official MCG-NJU ones (q/k/v fused)."""
    parts = {
        "layernorm_before": "norm1",
        "layernorm_after": "norm2",
        "attention.output.dense": "attn.proj",
        "intermediate.dense": "mlp.fc1",
        "output.dense": "mlp.fc2",
    }
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, v in state.items():
        v = v.detach().clone()
        key = key.replace("videomae.embeddings.patch_embeddings.projection.", "encoder.patch_embed.proj.")
        key = key.replace("videomae.layernorm.", "encoder.norm.")
        key = re.sub(r"^videomae\.encoder\.layer\.", "encoder.blocks.", key)
        key = re.sub(r"^decoder\.decoder_layers\.", "decoder.blocks.", key)
        m = re.match(r"^(.*blocks\.\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$", key)
        if m:
            block, which, kind = m.groups()
            if kind == "weight":
                qkv.setdefault(block, {})[which] = v
            else:
                out[f"{block}.attn.{which[0]}_bias"] = v
            continue
        for old, new in parts.items():
            key = re.sub(rf"(blocks\.\d+)\.{re.escape(old)}\.", rf"\1.{new}.", key)
        out[key] = v
    for block, w in qkv.items():
        out[f"{block}.attn.qkv.weight"] = torch.cat([w["query"], w["key"], w["value"]])
    return out


def check_parity(hf: VideoMAEForPreTraining, dst: Path, case: str, ratio: float = 0.75, batch: int = 2) -> None:
    cfg = hf.config
    om = OmniMaskForPreTraining.from_pretrained(dst).eval()
    clip = torch.randn(batch, cfg.num_frames, cfg.num_channels, cfg.image_size, cfg.image_size)  # HF: (B, T, C, H, W)
    mask = tube_mask(cfg, batch, ratio)
    with torch.no_grad():
        ref = hf(pixel_values=clip, bool_masked_pos=mask)
        out = om({"video": clip.transpose(1, 2)}, masks={"video": mask})  # omnimask: (B, C, T, H, W)
    assert torch.equal(out.mask["video"], mask)
    pred = out.pred["video"]
    assert pred.shape[:2] == mask.shape  # predictions for every position
    got = pred[mask].reshape(batch, -1, pred.shape[-1])  # HF: hidden tokens in ascending index order
    assert got.shape == ref.logits.shape
    diff = float((ref.logits - got).abs().max())
    dloss = abs(float(ref.loss) - float(out.loss))
    OBSERVED[case] = (diff, dloss)
    print(f"\n[{case}] max |logits - pred| = {diff:.3g}, |loss diff| = {dloss:.3g} (loss {float(ref.loss):.6f})")
    assert diff < 1e-5
    assert torch.allclose(out.loss, ref.loss, rtol=1e-5, atol=0)


# name -> (attention backend, config overrides, mask ratio)
CASES = {
    "f4-img32-p8-t2-normpix-sdpa": ("sdpa", {}, 0.75),
    "f4-img32-p8-t2-normpix-eager": ("eager", {}, 0.75),
    "f8-img48-p16-t1-rawpix": (
        "sdpa",
        dict(num_frames=8, image_size=48, patch_size=16, tubelet_size=1, norm_pix_loss=False),
        0.5,
    ),
    "f8-img32-p8-t2-ratio0.9": ("sdpa", dict(num_frames=8), 0.9),
    "f4-img48-p8-t1-eps0.05-dec2x4-mlp2.5": (
        "eager",
        dict(
            image_size=48,
            tubelet_size=1,
            layer_norm_eps=0.05,
            decoder_num_hidden_layers=2,
            decoder_num_attention_heads=4,
            decoder_intermediate_size=40,
        ),
        0.75,
    ),
    "no-qv-bias-rawpix": ("sdpa", dict(qv_bias=False, norm_pix_loss=False), 0.75),
    "grey-normpix": ("sdpa", dict(num_channels=1), 0.75),
}


@pytest.mark.parametrize("case", list(CASES))
def test_parity_after_save_pretrained(case: str, tmp_path: Path) -> None:
    attn, overrides, ratio = CASES[case]
    hf = hf_pretraining(attn, **overrides)
    assert hf.config._attn_implementation == attn
    hf.save_pretrained(tmp_path / "hf")
    assert any(k.endswith("q_bias") for k in load_file(str(tmp_path / "hf" / "model.safetensors"))) == hf.config.qv_bias
    convert("hf-videomae", tmp_path / "hf", tmp_path / "om")
    check_parity(hf, tmp_path / "om", case, ratio)
    cfg = json.loads((tmp_path / "om" / "config.json").read_text())
    video = cfg["modalities"]["video"]
    assert cfg["encoder"]["cls_token"] is False and cfg["encoder"]["modality_embed"] is False
    assert cfg["encoder"]["norm_eps"] == hf.config.layer_norm_eps and cfg["encoder"]["qkv_bias"] == hf.config.qv_bias
    assert video["decoder"]["embed_bias"] is False and video["decoder"]["final_norm_eps"] == 1e-5
    assert video["tokenizer"]["pos_embed"] == "sincos_1d" and video["masking"] == {"name": "tube", "ratio": 0.9}
    assert video["objective"]["norm"] == ("patch_channel" if hf.config.norm_pix_loss else "none")
    assert video["objective"]["unnormalize_input"] == (hf.config.num_channels == 3)
    if not hf.config.qv_bias:
        assert not any(k.endswith("qkv.bias") for k in load_file(str(tmp_path / "om" / "model.safetensors")))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[VideoMAEForPreTraining, dict[str, torch.Tensor]]:
    """One HF model and its conversion from the save_pretrained directory, for the layout tests."""
    torch.manual_seed(1)
    hf = hf_pretraining()
    root = tmp_path_factory.mktemp("ref")
    hf.save_pretrained(root / "hf")
    convert("hf-videomae", root / "hf", root / "om")
    return hf, load_file(str(root / "om" / "model.safetensors"))


@pytest.mark.parametrize("layout", ["in-memory", "hub-bin", "encoder-prefixless"])
def test_key_layouts_convert_identically(layout: str, reference, tmp_path: Path) -> None:
    hf, expected = reference
    memory = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    assert "videomae.encoder.layer.0.attention.attention.query.bias" in memory
    src = tmp_path / "src"
    if layout == "in-memory":
        write_hf_dir(src, hf.config, memory)
    elif layout == "hub-bin":
        src.mkdir()
        hf.config.to_json_file(str(src / "config.json"))
        torch.save(to_hub(memory), src / "pytorch_model.bin")
    else:  # a pretraining checkpoint whose encoder keys lost the "videomae." prefix
        write_hf_dir(src, hf.config, {k.removeprefix("videomae."): v for k, v in memory.items()})
    convert("hf-videomae", src, tmp_path / "om")
    got = load_file(str(tmp_path / "om" / "model.safetensors"))
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in got)
    if layout == "in-memory":
        check_parity(hf, tmp_path / "om", "in-memory-layout")


def test_pure_function_and_zero_k_bias(reference) -> None:
    hf, expected = reference
    state = videomae_state_to_omnimask(hf.state_dict(), hf.config.to_dict())
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state)
    attn = hf.videomae.encoder.layer[1].attention.attention
    bias = state["omnimask.encoder.blocks.1.attn.qkv.bias"]
    assert torch.equal(bias, torch.cat([attn.query.bias, torch.zeros(32), attn.value.bias]))
    weight = state["omnimask.encoder.blocks.1.attn.qkv.weight"]
    assert torch.equal(weight, torch.cat([attn.query.weight, attn.key.weight, attn.value.weight]))
    assert torch.equal(state["decoders.video.embed.weight"], hf.encoder_to_decoder.weight)
    assert torch.equal(state["decoders.video.pred.bias"], hf.decoder.head.bias)


def test_both_bias_spellings_is_an_error(reference, tmp_path: Path) -> None:
    hf, _ = reference
    memory = hf.state_dict()
    state = {
        **memory,
        "videomae.encoder.layer.0.attention.attention.q_bias": memory[
            "videomae.encoder.layer.0.attention.attention.query.bias"
        ].clone(),
    }
    with pytest.raises(ConversionError, match=r"q_bias.*query\.bias|query\.bias.*q_bias"):
        convert("hf-videomae", write_hf_dir(tmp_path / "src", hf.config, state), tmp_path / "om")


def assert_close(case: str, ref: torch.Tensor, got: torch.Tensor) -> None:
    diff = float((ref - got).abs().max())
    OBSERVED[case] = (diff, 0.0)
    print(f"\n[{case}] max |diff| = {diff:.3g}")
    assert ref.shape == got.shape and diff < 1e-5


@pytest.mark.parametrize("mean_pooling", [False, True], ids=["final-norm", "mean-pooling-no-norm"])
@pytest.mark.parametrize("masked", [False, True])
def test_encoder_only_checkpoint(masked: bool, mean_pooling: bool, tmp_path: Path) -> None:
    cfg = VideoMAEConfig(**(MEAN_POOLING if mean_pooling else BASE))
    hf = randomize(VideoMAEModel(cfg))
    assert (hf.layernorm is None) == mean_pooling
    hf.save_pretrained(tmp_path / "hf")
    if mean_pooling:  # absent from config.json: VideoMAEConfig's default (true) applies
        path = tmp_path / "hf" / "config.json"
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "use_mean_pooling"}))
    convert("hf-videomae", tmp_path / "hf", tmp_path / "om")
    out_cfg = json.loads((tmp_path / "om" / "config.json").read_text())
    assert out_cfg["architectures"] == ["OmniMaskModel"] and out_cfg["encoder"]["final_norm"] is not mean_pooling
    om = OmniMaskModel.from_pretrained(tmp_path / "om").eval()
    clip = torch.randn(2, 4, 3, 32, 32)
    mask = tube_mask(cfg, 2, 0.5) if masked else None
    with torch.no_grad():
        ref = hf(pixel_values=clip, bool_masked_pos=mask).last_hidden_state
        got = om({"video": clip.transpose(1, 2)}, masks={"video": mask} if masked else None).last_hidden_state
    assert ref.shape == (2, 16 if masked else 32, 32)
    assert_close(f"encoder-only{'-masked' if masked else ''}{'-mean-pooling' if mean_pooling else ''}", ref, got)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_mean_pooling_pretraining_parity(attn: str, tmp_path: Path) -> None:
    """``VideoMAEForPreTraining`` under the default config: the decoder reads the un-normed encoder output."""
    hf = randomize(VideoMAEForPreTraining._from_config(VideoMAEConfig(**MEAN_POOLING), attn_implementation=attn))
    assert hf.videomae.layernorm is None
    hf.save_pretrained(tmp_path / "hf")
    convert("hf-videomae", tmp_path / "hf", tmp_path / "om")
    assert json.loads((tmp_path / "om" / "config.json").read_text())["encoder"]["final_norm"] is False
    check_parity(hf, tmp_path / "om", f"mean-pooling-pretraining-{attn}")
    enc = OmniMaskModel.from_pretrained(tmp_path / "om").eval()  # the encoder of the same checkpoint
    clip, mask = torch.randn(2, 4, 3, 32, 32), tube_mask(hf.config, 2, 0.75)
    with torch.no_grad():
        ref = hf.videomae(clip, bool_masked_pos=mask).last_hidden_state
        got = enc({"video": clip.transpose(1, 2)}, masks={"video": mask}).last_hidden_state
    assert_close(f"mean-pooling-pretraining-{attn}-encoder", ref, got)


def to_official_finetuned(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A classifier in MCG-NJU's fine-tuned names: no ``encoder.`` prefix, ``classifier`` -> ``head``."""
    return {re.sub(r"^classifier\.", "head.", k.removeprefix("encoder.")): v for k, v in to_official(state).items()}


@pytest.mark.parametrize("layout", ["hf", "official"])
def test_classifier_checkpoint(layout: str, tmp_path: Path) -> None:
    """Mean pooling, fc_norm, linear head -> encoder without final norm + classifier_head.pt, loaded
    as the fine-tuning runner builds its classifier. Official files: fc_norm eps 1e-6, keys ``head.*``."""
    eps = 1e-5 if layout == "hf" else 1e-6
    hf = randomize(VideoMAEForVideoClassification(VideoMAEConfig(**MEAN_POOLING, num_labels=5, layer_norm_eps=eps)))
    hf.fc_norm.eps = eps  # transformers: PyTorch's 1e-5; MCG-NJU: 1e-6
    if layout == "hf":
        hf.save_pretrained(tmp_path / "src")
        convert("hf-videomae", tmp_path / "src", tmp_path / "om")
    else:
        sd = to_official_finetuned(hf.state_dict())
        assert {"fc_norm.weight", "head.weight", "blocks.1.attn.q_bias"} <= set(sd) and "norm.weight" not in sd
        torch.save({"model": sd, "epoch": 29}, tmp_path / "checkpoint-best.pth")
        convert("videomae", tmp_path / "checkpoint-best.pth", tmp_path / "om", num_frames=4, image_size=32, num_heads=4)
    saved = torch.load(tmp_path / "om" / "classifier_head.pt", weights_only=True)
    assert (saved["modality"], saved["pool"], saved["num_classes"], saved["fc_norm_eps"]) == ("video", "mean", 5, eps)
    model = ClassifierModel(OmniMaskModel.from_pretrained(tmp_path / "om"), "video", 5, FinetuneConfig(pool="mean"))
    model.fc_norm.load_state_dict(saved["fc_norm"])
    model.fc_norm.eps = saved["fc_norm_eps"]
    model.head.load_state_dict(saved["head"])
    assert json.loads((tmp_path / "om" / "config.json").read_text())["encoder"]["final_norm"] is False
    clip = torch.randn(3, 4, 3, 32, 32)
    with torch.no_grad():
        ref, got = hf(pixel_values=clip).logits, model.eval().logits({"video": clip.transpose(1, 2)})
    assert_close(f"{layout}-classifier", ref, got)


def test_first_token_classifiers_are_refused(tmp_path: Path) -> None:
    """Without mean pooling VideoMAE classifies the first patch token (it has no [CLS]); omnimask cannot."""
    hf = randomize(VideoMAEForVideoClassification(VideoMAEConfig(**BASE, num_labels=5)))
    hf.save_pretrained(tmp_path / "hf")
    with pytest.raises(ConversionError, match=r"classifier\.weight.*first patch token"):
        convert("hf-videomae", tmp_path / "hf", tmp_path / "om")
    torch.save({"model": to_official_finetuned(hf.state_dict())}, tmp_path / "cls.pth")
    with pytest.raises(ConversionError, match=r"head\.weight.*first patch token"):
        convert("videomae", tmp_path / "cls.pth", tmp_path / "om2", num_frames=4, image_size=32, num_heads=4)


# --------------------------------------------------------------------------------- official layout


def hf_official_like(**overrides) -> VideoMAEForPreTraining:
    """An HF model computing exactly what the official one does: LayerNorm eps 1e-6 everywhere."""
    hf = hf_pretraining(**{"layer_norm_eps": 1e-6, **overrides})
    hf.decoder.norm.eps = 1e-6  # transformers' decoder norm uses PyTorch's 1e-5; the official one 1e-6
    return hf


OFFICIAL_OPTIONS = dict(num_frames=4, image_size=32, num_heads=4, decoder_num_heads=2)


@pytest.mark.parametrize("wrapper", ["model", "module-prefixed", "bare-dir"])
def test_official_layout_parity(wrapper: str, tmp_path: Path) -> None:
    hf = hf_official_like()
    sd = to_official(hf.state_dict())
    assert (
        "encoder.blocks.1.attn.qkv.weight" in sd
        and "encoder.blocks.1.attn.q_bias" in sd
        and "decoder.head.weight" in sd
    )
    if wrapper == "model":
        src = tmp_path / "checkpoint.pth"
        torch.save({"model": sd}, src)
    elif wrapper == "module-prefixed":  # DDP-wrapped, saved with its training args
        import argparse

        src = tmp_path / "checkpoint-799.pth"
        torch.save(
            {"module": {f"module.{k}": v for k, v in sd.items()}, "epoch": 799, "args": argparse.Namespace(lr=1.5e-4)},
            src,
        )
    else:
        (tmp_path / "ckpt").mkdir()
        torch.save(sd, tmp_path / "ckpt" / "pretrain.pth")
        src = tmp_path / "ckpt"
    convert("videomae", src, tmp_path / "om", **OFFICIAL_OPTIONS)
    check_parity(hf, tmp_path / "om", f"official-{wrapper}")
    cfg = json.loads((tmp_path / "om" / "config.json").read_text())
    assert cfg["encoder"]["norm_eps"] == 1e-6 and cfg["modalities"]["video"]["decoder"].get("final_norm_eps") is None


def test_official_layout_via_cli_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    hf = hf_official_like(num_frames=8, image_size=48, patch_size=16, tubelet_size=1, norm_pix_loss=False)
    torch.save({"model": to_official(hf.state_dict())}, tmp_path / "ckpt.pth")
    opts = ["num_frames=8", "image_size=48", "norm_pix=false", "num_heads=4", "decoder-num-heads=2", "mask_ratio=0.5"]
    argv = ["convert", "--from", "videomae", str(tmp_path / "ckpt.pth"), str(tmp_path / "om")]
    assert cli_main(argv + [a for o in opts for a in ("--option", o)]) == 0
    assert capsys.readouterr().out.startswith("converted videomae:")
    cfg = json.loads((tmp_path / "om" / "config.json").read_text())
    video = cfg["modalities"]["video"]
    assert video["tokenizer"]["num_frames"] == 8 and video["tokenizer"]["tubelet_size"] == 1
    assert video["objective"]["norm"] == "none" and video["masking"]["ratio"] == 0.5
    check_parity(hf, tmp_path / "om", "official-cli-f8-img48-p16-t1-rawpix", ratio=0.5)


def test_official_heads_from_size_table_and_encoder_only(tmp_path: Path) -> None:
    # ViT-S widths (encoder 384 / 6 heads, decoder 192 / 3 heads), one block each: no head options needed
    hf = hf_official_like(
        std=0.03,
        hidden_size=384,
        num_attention_heads=6,
        intermediate_size=1536,
        num_hidden_layers=1,
        decoder_hidden_size=192,
        decoder_num_attention_heads=3,
        decoder_intermediate_size=768,
        image_size=32,
        patch_size=16,
    )
    sd = to_official(hf.state_dict())
    torch.save({"model": sd}, tmp_path / "s.pth")
    convert("videomae", tmp_path / "s.pth", tmp_path / "om", num_frames=4, image_size=32)
    cfg = json.loads((tmp_path / "om" / "config.json").read_text())
    assert cfg["encoder"]["num_heads"] == 6 and cfg["modalities"]["video"]["decoder"]["num_heads"] == 3
    check_parity(hf, tmp_path / "om", "official-vit-s-widths")
    # encoder only (decoder tensors dropped) -> OmniMaskModel with the same encoder
    torch.save({"model": {k: v for k, v in sd.items() if k.startswith("encoder.")}}, tmp_path / "enc.pth")
    convert("videomae", tmp_path / "enc.pth", tmp_path / "enc", num_frames=4, image_size=32)
    assert json.loads((tmp_path / "enc" / "config.json").read_text())["architectures"] == ["OmniMaskModel"]
    full = OmniMaskModel.from_pretrained(tmp_path / "om").state_dict()
    enc = OmniMaskModel.from_pretrained(tmp_path / "enc").state_dict()
    assert enc.keys() == full.keys() and all(torch.equal(enc[k], full[k]) for k in enc)


def test_official_pos_embed(tmp_path: Path) -> None:
    hf = hf_official_like()
    sd = to_official(hf.state_dict())
    n = 2 * 4 * 4
    torch.save({"model": {**sd, "encoder.pos_embed": sincos_1d_interleaved(32, n)[None]}}, tmp_path / "fixed.pth")
    convert("videomae", tmp_path / "fixed.pth", tmp_path / "om", **OFFICIAL_OPTIONS)
    check_parity(hf, tmp_path / "om", "official-stored-sincos-pos")
    learned = sincos_1d_interleaved(32, n)[None] + 0.01 * torch.randn(1, n, 32)
    torch.save({"model": {**sd, "encoder.pos_embed": learned}}, tmp_path / "learned.pth")
    with pytest.raises(ConversionError, match=r"encoder\.pos_embed.*learned.*differs"):
        convert("videomae", tmp_path / "learned.pth", tmp_path / "om2", **OFFICIAL_OPTIONS)
    with pytest.raises(ConversionError, match=r"encoder\.pos_embed.*shape \(1, 32, 32\).*num_frames=8"):
        convert("videomae", tmp_path / "fixed.pth", tmp_path / "om3", **{**OFFICIAL_OPTIONS, "num_frames": 8})


def test_official_errors(tmp_path: Path) -> None:
    hf = hf_official_like()
    sd = to_official(hf.state_dict())
    torch.save({"model": sd}, tmp_path / "ok.pth")
    with pytest.raises(ConversionError, match=r"width 32 .*num_heads=N"):  # tiny widths are no VideoMAE size
        convert("videomae", tmp_path / "ok.pth", tmp_path / "om")
    with pytest.raises(ConversionError, match=r"'num_frame'.*Did you mean 'num_frames'"):
        convert("videomae", tmp_path / "ok.pth", tmp_path / "om", num_frame=4)
    with pytest.raises(ConversionError, match=r"num_frames.*positive integer"):
        convert("videomae", tmp_path / "ok.pth", tmp_path / "om", **{**OFFICIAL_OPTIONS, "num_frames": "sixteen"})
    with pytest.raises(ConversionError, match="num_frames 5 is not a multiple of tubelet_size 2"):
        convert("videomae", tmp_path / "ok.pth", tmp_path / "om", **{**OFFICIAL_OPTIONS, "num_frames": 5})
    torch.save({"model": {k: v for k, v in sd.items() if k != "encoder.blocks.1.attn.v_bias"}}, tmp_path / "no_v.pth")
    with pytest.raises(ConversionError, match=r"blocks\.1\.attn\.qkv\.bias.*v_bias"):
        convert("videomae", tmp_path / "no_v.pth", tmp_path / "om", **OFFICIAL_OPTIONS)
    torch.save({"model": {**sd, "encoder.blocks.0.gamma_1": torch.ones(32)}}, tmp_path / "ls.pth")
    with pytest.raises(ConversionError, match=r"encoder\.blocks\.0\.gamma_1.*LayerScale"):
        convert("videomae", tmp_path / "ls.pth", tmp_path / "om", **OFFICIAL_OPTIONS)
    torch.save({"model": {**sd, "decoder.head.weight": sd["decoder.head.weight"][:100]}}, tmp_path / "head.pth")
    with pytest.raises(ConversionError, match=r"decoder\.head\.weight predicts 100 values"):
        convert("videomae", tmp_path / "head.pth", tmp_path / "om", **OFFICIAL_OPTIONS)
    (tmp_path / "two").mkdir()
    torch.save(sd, tmp_path / "two" / "a.pth")
    torch.save(sd, tmp_path / "two" / "b.pth")
    with pytest.raises(ConversionError, match=r"exactly one weights file.*a\.pth.*b\.pth"):
        convert("videomae", tmp_path / "two", tmp_path / "om", **OFFICIAL_OPTIONS)


# --------------------------------------------------------------------------------- errors, options, CLI


def test_bad_model_type(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.json").write_text(json.dumps({"model_type": "vit_mae", "hidden_size": 64}))
    with pytest.raises(ConversionError, match=r"config\.json.*'vit_mae'.*'videomae'"):
        convert("hf-videomae", tmp_path / "src", tmp_path / "om")


def test_missing_extra_and_unsupported(reference, tmp_path: Path) -> None:
    hf, _ = reference
    cfg = hf.config
    state = hf.state_dict()
    no_k = {k: v for k, v in state.items() if k != "videomae.encoder.layer.1.attention.attention.key.weight"}
    with pytest.raises(ConversionError, match=r"blocks\.1\.attn\.qkv\.weight.*'key'"):
        convert("hf-videomae", write_hf_dir(tmp_path / "no_k", cfg, no_k), tmp_path / "om")
    no_norm = {k: v for k, v in state.items() if k != "decoder.norm.weight"}
    with pytest.raises(ConversionError, match=r"lacks tensors.*decoders\.video\.norm\.weight"):
        convert("hf-videomae", write_hf_dir(tmp_path / "no_norm", cfg, no_norm), tmp_path / "om")
    # the final encoder norm must agree with use_mean_pooling, both ways
    no_final = {k: v for k, v in state.items() if not k.startswith("videomae.layernorm.")}
    with pytest.raises(ConversionError, match=r"no final encoder LayerNorm \(videomae\.layernorm.*pooling: false"):
        convert("hf-videomae", write_hf_dir(tmp_path / "no_final", cfg, no_final), tmp_path / "om")
    with pytest.raises(ConversionError, match=r"has a final encoder LayerNorm.*use_mean_pooling: true"):
        convert("hf-videomae", write_hf_dir(tmp_path / "pool", VideoMAEConfig(**MEAN_POOLING), state), tmp_path / "om")
    extra = {**state, "videomae.pooler.dense.weight": torch.zeros(32, 32)}
    with pytest.raises(ConversionError, match=r"videomae\.pooler\.dense\.weight"):
        convert("hf-videomae", write_hf_dir(tmp_path / "extra", cfg, extra), tmp_path / "om")
    head = {**state, "fc_norm.weight": torch.ones(32), "classifier.weight": torch.zeros(5, 32)}
    with pytest.raises(ConversionError, match=r"classifier\.weight.*classification head"):
        convert("hf-videomae", write_hf_dir(tmp_path / "head", cfg, head), tmp_path / "om")
    no_bias_cfg = VideoMAEConfig(**{**BASE, "qv_bias": False})  # the weights still carry q/v biases
    with pytest.raises(ConversionError, match=r"qkv\.bias.*no place.*config\.json"):
        convert("hf-videomae", write_hf_dir(tmp_path / "bias", no_bias_cfg, state), tmp_path / "om")
    wrong_shape = VideoMAEConfig(**{**BASE, "patch_size": 4})
    with pytest.raises(ConversionError, match=r"shapes disagree.*tokenizers\.video\.proj\.weight"):
        convert("hf-videomae", write_hf_dir(tmp_path / "shape", wrong_shape, state), tmp_path / "om")
    act = VideoMAEConfig(**{**BASE, "hidden_act": "gelu_new"})
    with pytest.raises(ConversionError, match="gelu_new"):
        convert("hf-videomae", write_hf_dir(tmp_path / "act", act, state), tmp_path / "om")
    with pytest.raises(
        ConversionError, match=r"'hf-videomae' does not accept option\(s\) \['num_frames'\]; it accepts no options"
    ):
        convert("hf-videomae", tmp_path / "act", tmp_path / "om", num_frames=16)
    with pytest.raises(KeyError, match="hf-videomae"):
        convert("no-such-format", tmp_path, tmp_path / "om")


def test_processor_stats_and_loss_note(reference, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The processor's mean/std are carried over; predictions stay exact. transformers un-normalises the
    target with ImageNet stats regardless, omnimask with the processor's: with norm_pix_loss the two
    losses differ only through the 1e-6 eps (per-channel normalisation cancels the affine map)."""
    hf, _ = reference
    src = write_hf_dir(tmp_path / "src", hf.config, hf.state_dict())
    (src / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    with caplog.at_level(logging.WARNING, logger="omnimask.convert.hf_videomae"):
        convert("hf-videomae", src, tmp_path / "om")
    assert "not ImageNet's" in caplog.text
    cfg = json.loads((tmp_path / "om" / "config.json").read_text())
    assert (
        cfg["modalities"]["video"]["processor"]["mean"] == [0.5] * 3
        and cfg["modalities"]["video"]["processor"]["std"] == [0.5] * 3
    )
    om = OmniMaskForPreTraining.from_pretrained(tmp_path / "om").eval()
    clip, mask = torch.randn(2, 4, 3, 32, 32), tube_mask(hf.config, 2, 0.75)
    with torch.no_grad():
        ref = hf(pixel_values=clip, bool_masked_pos=mask)
        out = om({"video": clip.transpose(1, 2)}, masks={"video": mask})
    assert float((out.pred["video"][mask].reshape(2, -1, 384) - ref.logits).abs().max()) < 1e-5
    assert torch.allclose(out.loss, ref.loss, rtol=1e-4)


def test_raw_pixels_without_rgb(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """transformers cannot compute norm_pix_loss=False on non-RGB input; the weights still convert."""
    hf = hf_pretraining(num_channels=1, norm_pix_loss=False)
    hf.save_pretrained(tmp_path / "hf")
    with pytest.raises(ValueError, match="unnormalize"):
        hf(pixel_values=torch.randn(1, 4, 1, 32, 32), bool_masked_pos=tube_mask(hf.config, 1, 0.75))
    with caplog.at_level(logging.WARNING, logger="omnimask.convert.hf_videomae"):
        convert("hf-videomae", tmp_path / "hf", tmp_path / "om")
    assert "cannot un-normalise" in caplog.text
    objective = json.loads((tmp_path / "om" / "config.json").read_text())["modalities"]["video"]["objective"]
    assert objective == {"name": "mse", "norm": "none", "unnormalize_input": False}


def test_cli_and_option_parsing(reference, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    hf, expected = reference
    hf.save_pretrained(tmp_path / "hf")
    assert cli_main(["convert", "--from", "hf-videomae", str(tmp_path / "hf"), str(tmp_path / "om")]) == 0
    line = capsys.readouterr().out.strip()
    assert (
        line.startswith("converted hf-videomae:")
        and f"({sum(v.numel() for v in expected.values()):,} parameters)" in line
    )
    got = load_file(str(tmp_path / "om" / "model.safetensors"))
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
    # an option the format does not take: error status, the option named
    assert (
        cli_main(
            [
                "convert",
                "--from",
                "hf-videomae",
                str(tmp_path / "hf"),
                str(tmp_path / "om2"),
                "--option",
                "num_frames=8",
            ]
        )
        == 2
    )
    assert "num_frames" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["convert", "--from", "videomae", "a.pth", "out", "--option", "num_frames"])
    assert [parse_option_value(v) for v in ("16", "0.9", "TRUE", "false", "224x224")] == [
        16,
        0.9,
        True,
        False,
        "224x224",
    ]
    assert parse_option("decoder-num-heads=3") == ("decoder_num_heads", 3)
    assert set(format_options("videomae")) >= {"num_frames", "image_size", "norm_pix", "num_heads", "decoder_num_heads"}
    assert format_options("hf-videomae") == {} and format_options("hf-vitmae") == {}
