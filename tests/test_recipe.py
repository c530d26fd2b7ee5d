"""Integration: the image MAE recipe on the embedded digits, resume exactness with the real model,
the CLI, and the evaluation protocol."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from omnimask import OmniMaskConfig, OmniMaskForPreTraining, OmniMaskModel
from omnimask.cli import main as cli_main
from omnimask.evaluation import EvalConfig, compare_encoders, few_label_subset
from omnimask.registry import ConfigError
from omnimask.run_config import load_yaml
from omnimask.runners.common import build_dataset
from omnimask.runners.finetune import load_finetune_recipe
from omnimask.runners.pretrain import load_recipe
from omnimask.runners.pretrain import main as recipe_main
from omnimask.training import OptimConfig, TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "recipes/configs/image/mae_vit_test.yaml"


@pytest.fixture(scope="session")
def data_dir(embedded_data_dir):
    """The embedded dataset, built once per session in a temporary directory (tests/conftest.py)."""
    return embedded_data_dir


@pytest.fixture(autouse=True)
def _data_env(data_dir, monkeypatch):
    monkeypatch.setenv("OMNIMASK_DATA_DIR", str(data_dir))


def test_every_shipped_recipe_config_validates():
    configs = sorted((REPO / "recipes/configs").rglob("*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        if "finetune" in load_yaml(path):  # a fine-tuning recipe (recipes/finetune.py)
            ft = load_finetune_recipe(path)
            if ft.init is None and "encoder" in ft.model:
                OmniMaskConfig(**ft.model)
            continue
        cfg = load_recipe(path)
        OmniMaskConfig(**cfg.model)


def test_paper_config_has_mae_defaults():
    cfg = load_recipe(REPO / "recipes/configs/image/mae_vit_b16_in1k.yaml")
    image = OmniMaskConfig(**cfg.model).modalities["image"]
    assert cfg.optim.base_lr == 1.5e-4 and cfg.optim.betas == (0.9, 0.95) and cfg.optim.weight_decay == 0.05
    assert cfg.optim.warmup_epochs == 40 and cfg.train.epochs == 800
    assert image["masking"] == {"name": "random", "ratio": 0.75}
    assert image["objective"]["norm"] == "patch"
    assert image["decoder"]["dim"] == 512 and image["decoder"]["depth"] == 8
    assert cfg.model["encoder"]["dim"] == 768 and cfg.model["encoder"]["depth"] == 12


def test_recipe_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert recipe_main(["--config", str(TEST_CFG), f"train.output_dir={out}"]) == 0
    final = out / "final"
    model = OmniMaskForPreTraining.from_pretrained(final)
    assert model.config.modalities["image"]["tokenizer"]["image_size"] == 32
    assert isinstance(OmniMaskModel.from_pretrained(final), OmniMaskModel)
    png = out / "reconstruction_image.png"
    with Image.open(png) as img:
        assert img.width > 4 * 32 and img.height >= 32  # four panels per row
    assert (out / "checkpoints" / "latest").is_file()
    assert "Saved the pretrained model" in capsys.readouterr().out


def test_recipe_config_errors_are_reported(tmp_path, capsys):
    assert recipe_main(["--config", str(TEST_CFG), f"train.output_dir={tmp_path}", "optim.base_lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "base_lrr" in err and "base_lr" in err
    assert (
        recipe_main(
            ["--config", str(TEST_CFG), f"train.output_dir={tmp_path}", "model.modalities.image.decoder.name=cnn"]
        )
        == 2
    )
    assert "unknown decoder 'cnn'" in capsys.readouterr().err
    assert recipe_main(["--config", str(TEST_CFG), f"data.image.root={tmp_path / 'nowhere'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="data"):
        load_recipe(TEST_CFG, ["data.audio={}"])


def _losses(model_seed_dir: Path, max_steps: int, resume: bool) -> list[float]:
    cfg = load_recipe(TEST_CFG)
    config = OmniMaskConfig(**cfg.model)
    torch.manual_seed(0)
    model = OmniMaskForPreTraining(config)
    dataset = torch.utils.data.Subset(build_dataset(config, cfg.data, "image", "train"), range(96))
    train = TrainConfig(
        epochs=3,
        max_steps=max_steps,
        batch_size=16,
        accum_steps=2,
        num_workers=0,
        output_dir=str(model_seed_dir),
        checkpoint_every=2,
        progress=False,
        log_every=0,
    )
    return Trainer(model, dataset, train, OptimConfig(base_lr=1e-3, warmup_epochs=1)).fit(resume=resume).losses


def test_resume_reproduces_the_uninterrupted_loss_sequence(tmp_path):
    full = _losses(tmp_path / "a", 6, False)
    first = _losses(tmp_path / "b", 3, False)  # stops mid-epoch (3 steps per epoch x 2 epochs = 6)
    rest = _losses(tmp_path / "b", 6, True)
    assert len(full) == 6 and first + rest == full


def test_cli_list_and_errors(capsys):
    assert cli_main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("image", "random", "block", "transformer", "mse", "hf-vitmae", "image_mae", "mae_vit_b16_in1k.yaml"):
        assert word in out
    assert cli_main(["train", "imag_mae"]) == 2  # a usage error (docs/cli.md#exit-codes)
    assert "unknown recipe 'imag_mae'" in capsys.readouterr().err


def test_cli_train_is_the_recipe_script(tmp_path):
    assert (
        cli_main(["train", "image_mae", "--config", str(TEST_CFG), f"train.output_dir={tmp_path}", "train.max_steps=1"])
        == 0
    )
    assert (tmp_path / "final" / "model.safetensors").is_file()


def test_few_label_protocol_learns_an_easy_task():
    """Two classes (dark vs bright images) are separable from a random encoder after fine-tuning."""
    torch.manual_seed(0)
    config = OmniMaskConfig(
        encoder={"dim": 32, "depth": 1, "num_heads": 2},
        modalities={"image": {"tokenizer": {"image_size": 16, "patch_size": 8}}},
    )
    y = torch.arange(40) % 2
    x = torch.randn(40, 3, 16, 16) * 0.3 + (y.float() * 2 - 1)[:, None, None, None]
    idx = few_label_subset(y, 5, seed=0)
    assert sorted(y[idx].tolist()) == [0] * 5 + [1] * 5
    cfg = EvalConfig(
        labels_per_class=5, repeats=1, epochs=15, batch_size=10, lr=3e-3, warmup_epochs=1, linear_probe=True
    )
    report = compare_encoders({"random": OmniMaskModel(config)}, "image", (x, y), (x, y), cfg, progress=False)
    assert report["random"]["finetune_mean"] >= 90.0
    assert report["random"]["probe_all"] >= 90.0 and report["random"]["probe_few_mean"] >= 90.0
    assert len(report["random"]["finetune"]) == len(report["random"]["probe_few"]) == 1
    with pytest.raises(ValueError, match="fewer than labels_per_class"):
        few_label_subset(y, 50, seed=0)


def test_recipe_with_block_masking_on_own_folder_without_val(tmp_path, data_dir):
    """A user's ImageFolder without a val split trains (pictures from training images) with block masking."""
    import shutil

    own = tmp_path / "own"
    for digit in ("3", "7"):
        shutil.copytree(data_dir / "v1/image/train" / digit, own / digit)
    out = tmp_path / "run"
    argv = ["--config", str(TEST_CFG), f"train.output_dir={out}", f"data.image.root={own}", "train.max_steps=2"]
    # the model config is validated and built once, when the recipe is loaded: change it there
    masking = "model.modalities.image.masking={name: block, ratio: 0.5, min_block: 2}"
    cfg = load_recipe(TEST_CFG, [*argv[2:], masking])
    from omnimask.runners.pretrain import run

    summary = run(cfg)
    assert Path(summary["reconstruction"]).is_file()
    assert (
        OmniMaskForPreTraining.from_pretrained(out / "final").config.modalities["image"]["masking"]["name"] == "block"
    )


def test_recipe_rejects_model_typos_and_missing_checkpoints(tmp_path, capsys):
    with pytest.raises(ConfigError, match="encoderr"):
        load_recipe(TEST_CFG, ["model.encoderr={}"])
    assert recipe_main(["--config", str(TEST_CFG), f"train.output_dir={tmp_path}", "--resume"]) == 4  # no checkpoint
    assert str(tmp_path) in capsys.readouterr().err
