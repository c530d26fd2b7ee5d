"""Parity of ``omnimask convert --from hf-vitmae`` with transformers' ViTMAE, and its error paths.

HF models are built from configs and randomised here: a transformers 5.x ViTMAE built from a config
has all-zero position tables and tokens, so its fresh init is never used as a reference. Position
tables are filled with transformers' own sin-cos builder (independent of omnimask's).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import ViTMAEConfig, ViTMAEForPreTraining, ViTMAEModel
from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

from omnimask import OmniMaskForPreTraining, OmniMaskModel
from omnimask.convert import ConversionError, convert
from omnimask.convert.cli import add_convert_parser, run_convert
from omnimask.convert.hf_vitmae import vitmae_state_to_omnimask

BASE = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    image_size=32,
    patch_size=8,
    num_channels=3,
    decoder_hidden_size=32,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=4,
    decoder_intermediate_size=64,
    norm_pix_loss=True,
    mask_ratio=0.75,
)
OBSERVED: dict[str, float] = {}  # max |logits - pred| per case, printed with -s for the report


def mae_table(dim: int, side: int) -> torch.Tensor:
    """MAE's (1, 1+side^2, dim) table as transformers builds it (its halves rotated to MAE's layout)."""
    t = build_2d_sinusoidal_position_embedding(side, side, dim, cls_token=True)
    return torch.cat([t[..., dim // 2 :], t[..., : dim // 2]], dim=-1)[None]


def randomize(model: torch.nn.Module, fill_tables: bool = True) -> torch.nn.Module:
    """Random weights large enough for O(1) activations; LayerNorms around 1; correct (or zero) tables."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "position_embeddings" in name or "decoder_pos_embed" in name:
                p.copy_(mae_table(p.shape[-1], int((p.shape[1] - 1) ** 0.5)) if fill_tables else torch.zeros_like(p))
            elif "norm" in name and name.endswith("weight"):
                p.normal_(1.0, 0.1)
            else:
                p.normal_(0.0, 0.1)
    return model.eval()


def hf_pretraining(attn: str = "sdpa", fill_tables: bool = True, **overrides) -> ViTMAEForPreTraining:
    cfg = ViTMAEConfig(**{**BASE, **overrides})
    return randomize(ViTMAEForPreTraining._from_config(cfg, attn_implementation=attn), fill_tables)


def write_hf_dir(path: Path, config: ViTMAEConfig, state: dict[str, torch.Tensor]) -> Path:
    """A checkpoint directory with a given state dict (to build each key layout by hand)."""
    path.mkdir(parents=True, exist_ok=True)
    config.to_json_file(str(path / "config.json"))
    save_file({k: v.contiguous() for k, v in state.items()}, str(path / "model.safetensors"))
    return path


def to_legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """In-memory 5.x names -> the hub layout of facebook/vit-mae-* files."""
    out = {}
    for k, v in state.items():
        k = re.sub(r"^vit\.layers\.", "vit.encoder.layer.", k)
        k = re.sub(
            r"attention\.([qkv])_proj",
            lambda m: "attention.attention." + {"q": "query", "k": "key", "v": "value"}[m.group(1)],
            k,
        )
        k = (
            k.replace("attention.o_proj", "attention.output.dense")
            .replace("mlp.fc1", "intermediate.dense")
            .replace("mlp.fc2", "output.dense")
        )
        out[k] = v
    return out


def check_parity(hf: ViTMAEForPreTraining, dst: Path, case: str, batch: int = 2) -> None:
    cfg = hf.config
    om = OmniMaskForPreTraining.from_pretrained(dst)
    n = (cfg.image_size // cfg.patch_size) ** 2
    x = torch.randn(batch, cfg.num_channels, cfg.image_size, cfg.image_size)
    noise = torch.rand(batch, n)
    with torch.no_grad():
        ref = hf(pixel_values=x, noise=noise)
        out = om({"image": x}, noise={"image": noise})
    diff = float((ref.logits - out.pred["image"]).abs().max())
    OBSERVED[case] = diff
    print(f"\n[{case}] max |logits - pred| = {diff:.3g}, loss {float(ref.loss):.6f} vs {float(out.loss):.6f}")
    assert out.pred["image"].shape == ref.logits.shape
    assert diff < 1e-5
    assert torch.allclose(out.loss, ref.loss, rtol=1e-5, atol=0)
    assert torch.equal(out.mask["image"], ref.mask.bool()) and set(ref.mask.unique().tolist()) <= {0.0, 1.0}


CASES = {
    "p8-rgb-normpix-sdpa": ("sdpa", {}),
    "p8-rgb-normpix-eager": ("eager", {}),
    "p4-grey-no-normpix": ("sdpa", dict(image_size=16, patch_size=4, num_channels=1, norm_pix_loss=False)),
    "decoder-48x2x3-encoder-64x3x4": (
        "eager",
        dict(
            num_hidden_layers=3,
            intermediate_size=192,
            decoder_hidden_size=48,
            decoder_num_hidden_layers=2,
            decoder_num_attention_heads=3,
            decoder_intermediate_size=96,
        ),
    ),
    "no-qkv-bias": ("sdpa", dict(qkv_bias=False)),
    "mask-0.6-img48": ("sdpa", dict(mask_ratio=0.6, image_size=48)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_parity_after_save_pretrained(case: str, tmp_path: Path) -> None:
    attn, overrides = CASES[case]
    hf = hf_pretraining(attn, **overrides)
    assert hf.config._attn_implementation == attn
    hf.save_pretrained(tmp_path / "hf")
    convert("hf-vitmae", tmp_path / "hf", tmp_path / "om")
    check_parity(hf, tmp_path / "om", case)
    if not hf.config.qkv_bias:
        assert not any(k.endswith("qkv.bias") for k in load_file(str(tmp_path / "om" / "model.safetensors")))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[ViTMAEForPreTraining, dict[str, torch.Tensor]]:
    """One HF model and its conversion from the save_pretrained directory, for the layout tests."""
    torch.manual_seed(1)
    hf = hf_pretraining()
    root = tmp_path_factory.mktemp("ref")
    hf.save_pretrained(root / "hf")
    convert("hf-vitmae", root / "hf", root / "om")
    return hf, load_file(str(root / "om" / "model.safetensors"))


def _layout(name: str, hf: ViTMAEForPreTraining) -> dict[str, torch.Tensor]:
    memory = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    legacy = to_legacy(memory)
    if name == "in-memory":
        return memory
    if name == "legacy-hub":
        assert "decoder.decoder_layers.0.attention.attention.query.weight" in legacy
        return legacy
    if name == "decoder-encoder-quirk":
        return {k.replace("decoder.decoder_layers.", "decoder.decoder_encoder.layer."): v for k, v in legacy.items()}
    raise KeyError(name)


@pytest.mark.parametrize("layout", ["in-memory", "legacy-hub", "decoder-encoder-quirk", "bin", "sharded"])
def test_key_layouts_convert_identically(layout: str, reference, tmp_path: Path) -> None:
    hf, expected = reference
    src = tmp_path / "src"
    if layout == "bin":
        src.mkdir()
        hf.config.to_json_file(str(src / "config.json"))
        torch.save(_layout("legacy-hub", hf), src / "pytorch_model.bin")
    elif layout == "sharded":
        state = _layout("legacy-hub", hf)
        write_hf_dir(src, hf.config, {})
        (src / "model.safetensors").unlink()
        shards = {"model-00001-of-00002.safetensors": {}, "model-00002-of-00002.safetensors": {}}
        for i, (k, v) in enumerate(state.items()):
            shards[list(shards)[i % 2]][k] = v.contiguous()
        for fname, part in shards.items():
            save_file(part, str(src / fname))
        index = {"weight_map": {k: f for f, part in shards.items() for k in part}}
        (src / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        write_hf_dir(src, hf.config, _layout(layout, hf))
    convert("hf-vitmae", src, tmp_path / "om")
    got = load_file(str(tmp_path / "om" / "model.safetensors"))
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in got)
    if layout == "legacy-hub":  # one end-to-end check on top of the tensor equality
        check_parity(hf, tmp_path / "om", "legacy-hub")


def test_pure_function_and_processor(reference, tmp_path: Path) -> None:
    hf, expected = reference
    state = vitmae_state_to_omnimask(hf.state_dict(), hf.config.to_dict())
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state)
    # The encoder table's cls row is folded into cls_token (ViTMAE adds it there).
    assert torch.equal(
        state["omnimask.cls_token"], hf.vit.embeddings.cls_token + hf.vit.embeddings.position_embeddings[:, :1]
    )
    src = write_hf_dir(tmp_path / "src", hf.config, hf.state_dict())
    (src / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]})
    )
    cfg = json.loads((convert("hf-vitmae", src, tmp_path / "om") / "config.json").read_text())
    assert cfg["modalities"]["image"]["processor"] == {"mean": [0.5] * 3, "std": [0.25] * 3}
    assert cfg["modalities"]["image"]["objective"]["norm"] == "patch" and cfg["encoder"]["norm_eps"] == 1e-12


@pytest.mark.parametrize("prefixed", [False, True])
def test_encoder_only_checkpoint(prefixed: bool, tmp_path: Path) -> None:
    cfg = ViTMAEConfig(**{**BASE, "mask_ratio": 0.0})
    hf = randomize(ViTMAEModel(cfg))
    if prefixed:  # e.g. a pretraining checkpoint with its decoder stripped
        write_hf_dir(tmp_path / "hf", cfg, {"vit." + k: v for k, v in hf.state_dict().items()})
    else:
        hf.save_pretrained(tmp_path / "hf")
    convert("hf-vitmae", tmp_path / "hf", tmp_path / "om")
    assert json.loads((tmp_path / "om" / "config.json").read_text())["architectures"] == ["OmniMaskModel"]
    om = OmniMaskModel.from_pretrained(tmp_path / "om")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = hf(pixel_values=x, noise=torch.arange(16.0).expand(2, -1)).last_hidden_state  # no shuffle, nothing hidden
        got = om(image=x).last_hidden_state
    assert ref.shape == got.shape == (2, 17, 64)
    diff = float((ref - got).abs().max())
    OBSERVED[f"encoder-only{'-vit-prefix' if prefixed else ''}"] = diff
    print(f"\n[encoder-only prefixed={prefixed}] max |last_hidden_state diff| = {diff:.3g}")
    assert diff < 1e-5


def test_bad_model_type(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": 64}))
    with pytest.raises(ConversionError, match=r"config\.json.*'vit'"):
        convert("hf-vitmae", tmp_path / "src", tmp_path / "om")


def test_zero_or_wrong_position_tables(tmp_path: Path) -> None:
    hf = hf_pretraining(fill_tables=False)  # what a never-initialised 5.x model holds
    hf.save_pretrained(tmp_path / "zero")
    with pytest.raises(ConversionError, match="position table is all zeros"):
        convert("hf-vitmae", tmp_path / "zero", tmp_path / "om")
    hf = hf_pretraining()
    with torch.no_grad():
        hf.decoder.decoder_pos_embed[0, 3, 5] += 0.01
    hf.save_pretrained(tmp_path / "wrong")
    with pytest.raises(ConversionError, match="decoder position table differs"):
        convert("hf-vitmae", tmp_path / "wrong", tmp_path / "om")


def test_missing_weights_unknown_keys_and_activation(tmp_path: Path) -> None:
    cfg = ViTMAEConfig(**BASE)
    empty = tmp_path / "no_weights"
    empty.mkdir()
    cfg.to_json_file(str(empty / "config.json"))
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty))):
        convert("hf-vitmae", empty, tmp_path / "om")
    hf = hf_pretraining()
    state = {**hf.state_dict(), "vit.pooler.dense.weight": torch.zeros(64, 64)}
    with pytest.raises(ConversionError, match=r"vit\.pooler\.dense\.weight"):
        convert("hf-vitmae", write_hf_dir(tmp_path / "extra", cfg, state), tmp_path / "om")
    state = {k: v for k, v in hf.state_dict().items() if k != "vit.layers.1.attention.k_proj.weight"}
    with pytest.raises(ConversionError, match="key"):
        convert("hf-vitmae", write_hf_dir(tmp_path / "no_k", cfg, state), tmp_path / "om")
    bad_act = ViTMAEConfig(**{**BASE, "hidden_act": "gelu_new"})
    with pytest.raises(ConversionError, match="gelu_new"):
        convert("hf-vitmae", write_hf_dir(tmp_path / "act", bad_act, hf.state_dict()), tmp_path / "om")
    with pytest.raises(KeyError, match="hf-vitmae"):
        convert("no-such-format", tmp_path, tmp_path / "om")


def test_cli(reference, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    hf, expected = reference
    hf.save_pretrained(tmp_path / "hf")
    parser = argparse.ArgumentParser(prog="omnimask")
    add_convert_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["convert", "--from", "hf-vitmae", str(tmp_path / "hf"), str(tmp_path / "om")])
    assert args.func(args) == 0 and args.func is run_convert
    line = capsys.readouterr().out.strip()
    count = sum(v.numel() for v in expected.values())
    assert line.startswith("converted hf-vitmae:") and f"({count:,} parameters)" in line and "\n" not in line
    with pytest.raises(SystemExit):
        parser.parse_args(["convert", "--from", "nope", "a", "b"])
