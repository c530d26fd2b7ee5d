"""MAE checkpoints (facebookresearch/mae) -> omnimask: same predictions, loss, mask and logits.

The reference is ``mae_reference.py`` (MAE written out from its description with the official
module names). Every weight is random (LayerNorms, biases, cls and mask tokens included), so a
misplaced tensor cannot hide behind an init; the sizes are none of MAE's, so head counts are
options, as they must be for unknown widths. Run with ``-s`` to see the max differences.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

import mae_reference as ref
from omnimask import OmniMaskForPreTraining, OmniMaskModel
from omnimask.cli import main as cli_main
from omnimask.convert import ConversionError, convert, format_options
from omnimask.runners.finetune import ClassifierModel, FinetuneConfig

# name -> (reference kwargs, converter options, mask ratio)
CASES = {
    "d64x3h4-p4-img32-dec48x2h3-normpix": (
        dict(
            img_size=32,
            patch_size=4,
            dim=64,
            depth=3,
            num_heads=4,
            decoder_dim=48,
            decoder_depth=2,
            decoder_num_heads=3,
            norm_pix_loss=True,
        ),
        dict(num_heads=4, decoder_num_heads=3, norm_pix_loss=True),
        0.75,
    ),
    "d96x2h6-p8-img48-dec32x1h2-mlp3-rawpix": (
        dict(
            img_size=48,
            patch_size=8,
            dim=96,
            depth=2,
            num_heads=6,
            decoder_dim=32,
            decoder_depth=1,
            decoder_num_heads=2,
            mlp_ratio=3.0,
        ),
        dict(num_heads=6, decoder_num_heads=2, mask_ratio=0.6),
        0.6,
    ),
}
OBSERVED: dict[str, tuple[float, float]] = {}


def save_official(model: torch.nn.Module, path: Path, **extra) -> Path:
    torch.save({"model": {k: v.detach().clone() for k, v in model.state_dict().items()}, **extra}, path)
    return path


def images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("case", list(CASES))
def test_pretraining_parity(case: str, tmp_path: Path) -> None:
    kwargs, options, ratio = CASES[case]
    mae = ref.randomize_(ref.MaskedAutoencoderViT(**kwargs), seed=1)
    dst = convert("mae", save_official(mae, tmp_path / "mae_visualize.pth"), tmp_path / "om", **options)
    om = OmniMaskForPreTraining.from_pretrained(dst).eval()
    x = images(3, kwargs["img_size"])
    noise = torch.rand(3, (kwargs["img_size"] // kwargs["patch_size"]) ** 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        loss, pred, mask = mae(x, noise, ratio)
        out = om({"image": x}, noise={"image": noise})
    diff, dloss = float((out.pred["image"] - pred).abs().max()), abs(float(out.loss) - float(loss))
    OBSERVED[case] = (diff, dloss)
    print(f"\n[{case}] max |pred diff| = {diff:.3g}, |loss diff| = {dloss:.3g} (loss {float(loss):.6f})")
    assert out.pred["image"].shape == pred.shape
    assert diff < 1e-5
    assert dloss < 1e-5 * max(1.0, float(loss))
    assert torch.equal(out.mask["image"], mask.bool())
    cfg = json.loads((dst / "config.json").read_text())
    image = cfg["modalities"]["image"]
    assert cfg["encoder"]["final_norm"] is True and cfg["encoder"]["norm_eps"] == 1e-6
    assert image["masking"] == {"name": "random", "ratio": ratio}
    assert image["objective"]["norm"] == ("patch" if kwargs.get("norm_pix_loss") else "none")
    assert image["tokenizer"]["image_size"] == [kwargs["img_size"]] * 2


def test_encoder_only_release_and_training_args(tmp_path: Path) -> None:
    """``mae_pretrain_vit_*.pth`` hold the encoder only; a training checkpoint carries its args."""
    kwargs, options, _ = CASES["d64x3h4-p4-img32-dec48x2h3-normpix"]
    mae = ref.randomize_(ref.MaskedAutoencoderViT(**kwargs), seed=3)
    enc_state = {k: v for k, v in mae.state_dict().items() if not k.startswith(("decoder_", "mask_token"))}
    torch.save({"model": enc_state}, tmp_path / "mae_pretrain.pth")
    dst = convert("mae", tmp_path / "mae_pretrain.pth", tmp_path / "enc", num_heads=4)
    assert json.loads((dst / "config.json").read_text())["architectures"] == ["OmniMaskModel"]
    om = OmniMaskModel.from_pretrained(dst).eval()
    x = images(2, 32, seed=4)
    with torch.no_grad():
        expected, _, _ = mae.forward_encoder(x, 0.0, torch.arange(64.0).expand(2, -1))  # ascending noise: no shuffle
        got = om({"image": x}).last_hidden_state
    diff = float((got - expected).abs().max())
    OBSERVED["encoder-only"] = (diff, 0.0)
    print(f"\n[encoder-only] max |last_hidden_state diff| = {diff:.3g}")
    assert got.shape == expected.shape and diff < 1e-5
    # a training checkpoint (DDP-prefixed, with its argparse args): norm_pix_loss / mask_ratio from the args
    args = argparse.Namespace(norm_pix_loss=True, mask_ratio=0.6, model="mae_vit_tiny")
    state = {f"module.{k}": v for k, v in mae.state_dict().items()}
    torch.save({"model": state, "epoch": 3, "args": args}, tmp_path / "checkpoint-3.pth")
    dst = convert("mae", tmp_path / "checkpoint-3.pth", tmp_path / "train", num_heads=4, decoder_num_heads=3)
    image = json.loads((dst / "config.json").read_text())["modalities"]["image"]
    assert image["objective"]["norm"] == "patch" and image["masking"]["ratio"] == 0.6
    dst = convert(
        "mae",
        tmp_path / "checkpoint-3.pth",
        tmp_path / "o",
        norm_pix_loss=False,
        **{k: v for k, v in options.items() if k != "norm_pix_loss"},
    )
    assert json.loads((dst / "config.json").read_text())["modalities"]["image"]["objective"]["norm"] == "none"


def load_classifier(dst: Path) -> ClassifierModel:
    """The converted encoder + head, assembled as the fine-tuning runner builds its classifier."""
    saved = torch.load(dst / "classifier_head.pt", weights_only=True)
    encoder = OmniMaskModel.from_pretrained(dst)
    model = ClassifierModel(encoder, saved["modality"], saved["num_classes"], FinetuneConfig(pool=saved["pool"]))
    model.fc_norm.load_state_dict(saved["fc_norm"])
    model.fc_norm.eps = saved["fc_norm_eps"]
    model.head.load_state_dict(saved["head"])
    return model.eval()


@pytest.mark.parametrize("kind", ["global_pool", "cls", "linear-probe"])
def test_finetuned_classifier_logits(kind: str, tmp_path: Path) -> None:
    vit = ref.VisionTransformer(
        img_size=48,
        patch_size=8,
        dim=96,
        depth=2,
        num_heads=6,
        num_classes=7,
        global_pool=kind == "global_pool",
        probe=kind == "linear-probe",
    )
    ref.randomize_(vit, seed=5)
    assert float(vit.pos_embed.detach()[0, 0].abs().max()) > 0  # the trained cls row: folded into cls_token
    args = argparse.Namespace(global_pool=kind == "global_pool", nb_classes=7)
    dst = convert("mae", save_official(vit, tmp_path / "ft.pth", args=args), tmp_path / "om", num_heads=6)
    cfg = json.loads((dst / "config.json").read_text())
    assert cfg["architectures"] == ["OmniMaskModel"] and cfg["encoder"]["final_norm"] is False
    model = load_classifier(dst)
    assert model.cfg.pool == ("mean" if kind == "global_pool" else "cls")
    x = images(4, 48, seed=6)
    with torch.no_grad():
        expected, got = vit(x), model.logits({"image": x})
    diff = float((got - expected).abs().max())
    OBSERVED[f"classifier-{kind}"] = (diff, 0.0)
    print(f"\n[classifier {kind}] max |logits diff| = {diff:.3g}")
    assert got.shape == (4, 7) and diff < 1e-5


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    kwargs, _, _ = CASES["d64x3h4-p4-img32-dec48x2h3-normpix"]
    save_official(ref.randomize_(ref.MaskedAutoencoderViT(**kwargs)), tmp_path / "ckpt.pth")
    argv = ["convert", "--from", "mae", str(tmp_path), str(tmp_path / "om")]
    argv += ["--option", "num_heads=4", "--option", "decoder-num-heads=3", "--option", "norm_pix_loss=true"]
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.startswith("converted mae:")
    assert (
        OmniMaskForPreTraining.from_pretrained(tmp_path / "om").config.modalities["image"]["decoder"]["num_heads"] == 3
    )
    assert set(format_options("mae")) == {"num_heads", "decoder_num_heads", "norm_pix_loss", "mask_ratio"}


def test_bad_checkpoints_are_named(tmp_path: Path) -> None:
    kwargs, options, _ = CASES["d64x3h4-p4-img32-dec48x2h3-normpix"]
    state = dict(ref.randomize_(ref.MaskedAutoencoderViT(**kwargs)).state_dict())

    def fails(name: str, sd: dict, match: str, **opts) -> None:
        torch.save({"model": sd}, tmp_path / f"{name}.pth")
        with pytest.raises(ConversionError, match=match):
            convert("mae", tmp_path / f"{name}.pth", tmp_path / name, **(opts or options))

    fails("foreign", {"foo.weight": torch.zeros(2)}, "not a MAE checkpoint")
    video = {**state, "patch_embed.proj.weight": torch.zeros(64, 3, 2, 4, 4)}
    fails("video", video, r"not a MAE checkpoint.*5-D")
    fails(
        "missing",
        {k: v for k, v in state.items() if k != "decoder_blocks.1.mlp.fc2.bias"},
        r"lacks tensors.*decoders\.image\.blocks\.1\.mlp\.fc2\.bias",
    )
    fails("extra", {**state, "blocks.0.ls1.gamma": torch.ones(64)}, r"blocks\.0\.ls1\.gamma.*LayerScale")
    fails("heads", state, r"width 64 .*num_heads=N", decoder_num_heads=3)
    fails("dec-heads", state, r"decoder width 48 .*decoder_num_heads=N", num_heads=4)
    fails("no-pos", {k: v for k, v in state.items() if k != "pos_embed"}, "pos_embed is missing")
    learned = {**state, "pos_embed": state["pos_embed"] + 0.01 * torch.randn_like(state["pos_embed"])}
    fails("learned", learned, r"pos_embed differs from MAE's fixed 2-D sin-cos table.*learned")
    dec_cls = state["decoder_pos_embed"].clone()
    dec_cls[:, 0] = 1.0
    fails("dec-cls", {**state, "decoder_pos_embed": dec_cls}, "decoder_pos_embed has a non-zero cls row")
    fails("ratio", state, r"mask_ratio must be a number", num_heads=4, decoder_num_heads=3, mask_ratio=1.5)
    fails(
        "norm-pix", state, r"norm_pix_loss must be true or false", num_heads=4, decoder_num_heads=3, norm_pix_loss="yes"
    )
    vit = dict(ref.randomize_(ref.VisionTransformer(global_pool=True)).state_dict())
    fails(
        "both-norms",
        {**vit, "norm.weight": torch.ones(64), "norm.bias": torch.zeros(64)},
        r"both the encoder's norm and fc_norm",
        num_heads=4,
    )
    fails(
        "with-decoder",
        {**state, "head.weight": torch.zeros(5, 64), "head.bias": torch.zeros(5)},
        "a classification head and a decoder",
    )
    with pytest.raises(ConversionError, match=r"'num_head'.*Did you mean 'num_heads'"):
        convert("mae", tmp_path / "foreign.pth", tmp_path / "x", num_head=4)
