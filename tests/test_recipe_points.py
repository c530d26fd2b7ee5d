"""The point-cloud recipe: the paper config carries Point-MAE's defaults; the tiny config runs on the
embedded shapes end to end (pretraining, picture, held-out evaluation); bad clouds are named or
counted; masking that needs coordinates cannot be made in the loader."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnimask import OmniMaskConfig, OmniMaskForPreTraining, OmniMaskProcessor
from omnimask.runners.pretrain import load_recipe
from omnimask.runners.pretrain import main as recipe_main

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "recipes/configs/points/point_mae_test.yaml"


@pytest.fixture(autouse=True)
def _data_env(embedded_data_dir, monkeypatch):
    monkeypatch.setenv("OMNIMASK_DATA_DIR", str(embedded_data_dir))


def test_paper_config_has_point_mae_defaults():
    cfg = load_recipe(REPO / "recipes/configs/points/point_mae_shapenet.yaml")
    config = OmniMaskConfig(**cfg.model)
    pts = config.modalities["points"]
    assert (
        pts["tokenizer"]["num_points"] == 1024
        and pts["tokenizer"]["num_groups"] == 64
        and pts["tokenizer"]["group_size"] == 32
    )
    assert pts["masking"] == {"name": "random", "ratio": 0.6, "count": "hidden"}
    assert pts["decoder"]["depth"] == 4 and pts["decoder"]["num_heads"] == 6 and pts["decoder"]["predict"] == "hidden"
    assert pts["objective"]["name"] == "chamfer" and pts["objective"]["norm"] == "l2"
    enc = config.encoder
    assert (enc["dim"], enc["depth"], enc["num_heads"], enc["pos_every_block"], enc["cls_token"]) == (
        384,
        12,
        6,
        True,
        False,
    )
    assert cfg.optim.lr == 1e-3 and cfg.optim.weight_decay == 0.05 and cfg.optim.warmup_epochs == 10
    assert cfg.train.epochs == 300 and cfg.train.batch_size == 128 and cfg.data["points"]["format"] == "shapenet"
    model = OmniMaskForPreTraining(config)
    encoder_params = sum(p.numel() for p in model.omnimask.parameters())
    assert 21.5e6 < encoder_params < 22.5e6  # Point-MAE's encoder: ~22.1M parameters


def test_point_recipe_runs_pretraining_pictures_and_evaluation(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "--config",
        str(TEST_CFG),
        f"train.output_dir={out}",
        "eval.enabled=true",
        "eval.labels_per_class=2",
        "eval.repeats=1",
        "eval.epochs=1",
        "eval.finetune=false",
    ]
    assert recipe_main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["eval"]) == {"pretrained (omnimask)", "random init"}
    assert 0 <= summary["eval"]["random init"]["probe_all"] <= 100
    with Image.open(out / "reconstruction_points.png") as img:
        assert img.width == 3 * 160  # three views per sample
    proc = OmniMaskProcessor.from_pretrained(out / "final")
    model = OmniMaskForPreTraining.from_pretrained(out / "final")
    batch = proc(points=[np.random.default_rng(0).normal(size=(500, 3)) * 3])
    assert batch["points"].shape == (1, 128, 3) and model(batch).loss.isfinite()
    assert "pretraining gain" in capsys.readouterr().out


def test_bad_cloud_stops_with_its_name_or_is_counted(tmp_path, capsys):
    root = tmp_path / "clouds"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            np.save(root / c / f"{i}.npy", np.random.default_rng(i).normal(size=(200, 3)).astype(np.float32))
    (root / "a" / "2.npy").write_bytes(b"not a numpy file")
    args = [
        "--config",
        str(TEST_CFG),
        f"train.output_dir={tmp_path / 'run'}",
        f"data.points.root={root}",
        "data.points.eval={embedded: shapes}",
        "train.max_steps=2",
        "train.batch_size=4",
    ]
    assert recipe_main(args) == 3  # a data error (docs/cli.md#exit-codes)
    err = capsys.readouterr().err
    assert "2.npy" in err and "on_error=skip" in err
    assert recipe_main(args + ["data.points.on_error=skip"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["skipped_samples"] >= 1


def test_coordinate_masking_in_the_loader_is_refused(tmp_path, capsys):
    args = [
        "--config",
        str(TEST_CFG),
        f"train.output_dir={tmp_path}",
        "model.modalities.points.masking={name: nearest_block, ratio: 0.6}",
        "train.masks_in_loader=true",
    ]
    assert recipe_main(args) == 2
    assert "masks_in_loader" in capsys.readouterr().err
    assert recipe_main(args[:-1] + ["train.max_steps=2"]) == 0  # the model draws it from the centres
