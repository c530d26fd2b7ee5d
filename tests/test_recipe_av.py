"""The cav_mae recipe: the published config as CAV-MAE states it, and a tiny run end to end on the
embedded audio-visual part (train, save, reload, retrieval both ways and a joint linear probe)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import torch

from omnimask import OmniMaskForPreTraining, OmniMaskModel
from omnimask.runners.pretrain import load_recipe

ROOT = Path(__file__).parents[1]
CONFIGS = ROOT / "recipes" / "configs" / "av"


def test_published_config_is_cav_mae_base():
    cfg = load_recipe(CONFIGS / "cav_mae_vit_b_as2m.yaml")
    m = cfg.model_config
    enc = m.encoder_config
    assert (enc.dim, enc.depth, enc.num_heads, enc.modality_specific_depth) == (768, 12, 12, 11)
    assert enc.modality_norms and not enc.cls_token and enc.norm_eps == 1e-5
    audio, image = m.modalities["audio"], m.modalities["image"]
    assert audio["tokenizer"]["target_length"] == 1024 and audio["tokenizer"]["pos_embed"] == "cav_mae"
    assert audio["processor"]["mean"] == [-5.081] and audio["processor"]["std"] == [4.4849]
    assert audio["masking"]["ratio"] == image["masking"]["ratio"] == 0.75
    assert audio["objective"]["norm"] == image["objective"]["norm"] == "patch"
    assert m.joint_decoder["dim"] == 512 and m.joint_decoder["depth"] == 8 and m.joint_decoder["num_heads"] == 16
    assert m.contrastive == {"name": "infonce", "modalities": ["audio", "image"], "weight": 0.01,
                             "temperature": 0.05, "symmetric": False, "tokens": "visible"}  # fmt: skip
    o = cfg.optim
    assert (o.name, o.lr, tuple(o.betas), o.weight_decay, o.warmup_epochs) == ("adam", 5e-5, (0.95, 0.999), 5e-7, 0)
    assert (o.schedule, o.step_start, o.step_every, o.step_gamma, cfg.train.epochs) == ("step", 10, 5, 0.5, 25)


def test_tiny_run_reports_retrieval_and_a_joint_probe(tmp_path, capsys):
    out = tmp_path / "run"
    recipe = runpy.run_path(str(ROOT / "recipes" / "cav_mae.py"))  # the script's own default and entry point
    assert Path(recipe["DEFAULT_CONFIG"]).name == "cav_mae_tiny_digits.yaml"
    assert recipe["main"](["--config", str(CONFIGS / "cav_mae_test.yaml"), f"train.output_dir={out}"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and set(summary["final_losses"]) == {"audio", "image", "contrastive"}
    for name in ("pretrained (omnimask)", "random init"):
        r = summary["eval"][name]
        assert {"a2i_R@1", "i2a_R@10", "a2i_MedR", "i2a_MedR", "joint_probe"} <= set(r)
        assert 0 <= r["a2i_R@1"] <= r["a2i_R@5"] <= r["a2i_R@10"] <= 100 and 1 <= r["i2a_MedR"] <= 48
    assert "Held-out evaluation on 48 image-audio pairs" in capsys.readouterr().out
    model = OmniMaskForPreTraining.from_pretrained(out / "final")
    enc = OmniMaskModel.from_pretrained(out / "final")
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(enc(audio=x).pooler_output, model.omnimask(audio=x).pooler_output)
