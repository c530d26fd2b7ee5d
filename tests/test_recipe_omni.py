"""The omni recipe: one model over the five embedded sources in one run, one checkpoint for all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omnimask import OmniMaskForPreTraining, OmniMaskModel, OmniMaskProcessor
from omnimask.cli import main as cli_main
from omnimask.registry import ConfigError
from omnimask.runners.pretrain import load_recipe

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "recipes/configs/omni/omni_test.yaml"


@pytest.fixture(scope="module")
def omni_run(tmp_path_factory, embedded_data_dir, monkeypatch_module):
    from omnimask.data import ensure_embedded_dataset

    ensure_embedded_dataset(embedded_data_dir, parts=("audio",), progress=False)  # every part in one root
    monkeypatch_module.setenv("OMNIMASK_DATA_DIR", str(embedded_data_dir))
    out = tmp_path_factory.mktemp("omni")
    code = cli_main(["train", "omni", "--config", str(TEST_CFG), f"train.output_dir={out}"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_one_run_trains_every_source_and_evaluates_each(omni_run):
    summary = json.loads((omni_run / "summary.json").read_text())
    assert set(summary["sources"]) == {"digits", "clips", "melodies", "captions", "strokes"}
    assert sum(v["samples"] for v in summary["sources"].values()) > 0
    assert set(summary["eval"]) == set(summary["sources"])
    for name in ("digits", "clips", "melodies", "strokes"):
        assert set(summary["eval"][name]) == {"pretrained (omnimask)", "random init"}
    assert "i2t_R@1" in summary["eval"]["captions"]["pretrained (omnimask)"]
    for key in ("image_digits", "image_captions", "video", "audio", "points"):
        assert (omni_run / f"reconstruction_{key}.png").is_file()


def test_the_checkpoint_serves_any_subset_of_modalities(omni_run):
    final = omni_run / "final"
    model = OmniMaskForPreTraining.from_pretrained(final)
    assert sorted(model.modalities) == ["audio", "image", "points", "text", "video"]
    processor = OmniMaskProcessor.from_pretrained(final)
    encoder = OmniMaskModel.from_pretrained(final).eval()
    audio = torch.randn(2, 1, 96, 64)
    points = torch.randn(2, 512, 3)
    with torch.no_grad():
        alone = encoder({"audio": audio}).pooler_output
        both = encoder({"audio": audio, "points": points})
        assert alone.shape == (2, 32) and set(both.hidden) == {"audio", "points"}
        out = model({"points": points})
    assert set(out.losses) == {"points"}
    # every modality's preprocessing comes back with the weights
    batch = processor(text=["a red seven on black"], points=[torch.rand(700, 3).numpy()])
    assert batch["text"].shape == (1, 32) and batch["points"].shape == (1, 512, 3)


def _load(**over):
    overrides = [f"{k}={v}" for k, v in over.items()]
    return load_recipe(TEST_CFG, overrides)


def test_bad_sources_are_named():
    with pytest.raises(ConfigError, match=r"data.sources.digits.weight must be a positive number, got -1"):
        _load(**{"data.sources.digits.weight": -1})
    with pytest.raises(ConfigError, match=r"data.sources.extra: the model has no modality 'audio'"):
        load_recipe(TEST_CFG, ["~model.modalities.audio", "~data.sources.melodies", "data.sources.extra={audio: {}}"])
    with pytest.raises(ConfigError, match=r"data.sources.odd must name exactly one"):
        _load(**{"data.sources.odd": "{image: {}, video: {}}"})
    with pytest.raises(ConfigError, match="data.mixing.mode must be one of"):
        _load(**{"data.mixing.mode": "shuffled"})
