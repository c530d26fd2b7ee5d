"""The video recipe: runs on the embedded moving digits, on a user's list file with one override,
with VideoMAE V2's dual masking, and reports skipped videos; the paper configs carry the defaults."""

from pathlib import Path

import pytest
from PIL import Image

from omnimask import OmniMaskConfig, OmniMaskForPreTraining, OmniMaskProcessor
from omnimask.cli import main as cli_main
from omnimask.modalities.video import embedded_video_root, read_video_list
from omnimask.runners.pretrain import load_recipe
from omnimask.runners.pretrain import main as recipe_main

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "recipes/configs/video/videomae_test.yaml"


@pytest.fixture(autouse=True)
def _data_env(embedded_data_dir, monkeypatch):
    monkeypatch.setenv("OMNIMASK_DATA_DIR", str(embedded_data_dir))


def test_paper_configs_have_videomae_defaults():
    cfg = load_recipe(REPO / "recipes/configs/video/videomae_vit_b_k400.yaml")
    video = OmniMaskConfig(**cfg.model).modalities["video"]
    assert video["tokenizer"]["num_frames"] == 16 and video["tokenizer"]["image_size"] == 224
    assert video["tokenizer"]["tubelet_size"] == 2 and video["tokenizer"]["patch_size"] == 16
    assert video["masking"] == {"name": "tube", "ratio": 0.9}
    assert video["decoder"]["depth"] == 4 and video["decoder"]["dim"] == 384 and not video["decoder"]["embed_bias"]
    assert video["objective"] == {"name": "mse", "norm": "patch_channel", "unnormalize_input": True}
    assert cfg.optim.base_lr == 1.5e-4 and cfg.optim.warmup_epochs == 40 and cfg.train.epochs == 800
    assert cfg.optim.betas == (0.9, 0.95) and cfg.optim.weight_decay == 0.05
    assert cfg.model["encoder"]["cls_token"] is False and cfg.data["video"]["stride"] == 4
    v2 = load_recipe(REPO / "recipes/configs/video/videomae_v2_vit_b_dual.yaml")
    masking = OmniMaskConfig(**v2.model).modalities["video"]["masking"]
    assert masking["name"] == "dual" and masking["decoder"] == {"name": "running_cell", "ratio": 0.5}
    assert v2.data["video"]["repeats"] == 4


def test_video_recipe_runs_on_the_embedded_videos(tmp_path, capsys):
    out = tmp_path / "run"
    assert recipe_main(["--config", str(TEST_CFG), f"train.output_dir={out}"]) == 0
    model = OmniMaskForPreTraining.from_pretrained(out / "final")
    assert model.config.modalities["video"]["tokenizer"]["num_frames"] == 4
    with Image.open(out / "reconstruction_video.png") as img:
        assert img.height > img.width  # one block of four frame strips per sample
    # the saved processor turns a video file into a clip the model takes
    proc = OmniMaskProcessor.from_pretrained(out / "final")
    path, _ = read_video_list(embedded_video_root() / "val.csv")[0]
    batch = proc(video=[path, path])
    assert batch["video"].shape == (2, 3, 4, 32, 32)
    assert model(batch).loss.isfinite()
    assert "Saved the pretrained model" in capsys.readouterr().out


def test_dual_masking_recipe_runs(tmp_path):
    masking = "{name: dual, encoder: {name: tube, ratio: 0.75}, decoder: {name: running_cell, ratio: 0.5}}"
    assert (
        recipe_main(
            [
                "--config",
                str(TEST_CFG),
                f"train.output_dir={tmp_path}",
                f"model.modalities.video.masking={masking}",
                "train.max_steps=2",
            ]
        )
        == 0
    )
    assert (tmp_path / "reconstruction_video.png").is_file()


def _user_list(tmp_path: Path, broken: bool) -> Path:
    """A list of a few embedded videos (absolute and relative paths) plus, optionally, a broken file."""
    items = read_video_list(embedded_video_root() / "train.csv")[:12]
    lines = [f"{p} {label}" for p, label in items]
    if broken:
        (tmp_path / "broken.mp4").write_bytes(b"this is not a video" * 100)
        lines.insert(3, "broken.mp4 0")
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_user_list_file_with_one_override_and_the_skip_policy(tmp_path, capsys):
    good = _user_list(tmp_path, broken=False)
    assert (
        recipe_main(["--config", str(TEST_CFG), f"train.output_dir={tmp_path / 'a'}", f"data.video.list_file={good}"])
        == 0
    )
    broken = _user_list(tmp_path, broken=True)
    # stop (the default): the error names the file
    assert (
        recipe_main(
            [
                "--config",
                str(TEST_CFG),
                f"train.output_dir={tmp_path / 'b'}",
                f"data.video.list_file={broken}",
                "train.epochs=3",
                "~train.max_steps",
            ]
        )
        != 0
    )
    captured = capsys.readouterr()
    assert "broken.mp4" in captured.err
    # skip and count: the run finishes and reports how many reads it skipped
    assert (
        recipe_main(
            [
                "--config",
                str(TEST_CFG),
                f"train.output_dir={tmp_path / 'c'}",
                f"data.video.list_file={broken}",
                "data.video.on_error=skip",
                "train.epochs=3",
                "~train.max_steps",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    summary = (tmp_path / "c" / "summary.json").read_text()
    assert '"skipped_samples": 3' in summary  # one bad file, read once per epoch
    assert "skipped 3 unreadable" in out


def test_bad_list_lines_are_reported_with_line_numbers(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a.mp4 1\nnot-a-pair\n")
    assert recipe_main(["--config", str(TEST_CFG), f"train.output_dir={tmp_path}", f"data.video.list_file={bad}"]) == 2
    assert "bad.csv:1" in capsys.readouterr().err  # the first problem: a.mp4 does not exist


def test_cli_lists_the_video_recipe(capsys):
    assert cli_main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("video", "tube", "running_cell", "dual", "video_mae", "videomae_vit_b_k400.yaml", "hf-videomae"):
        assert word in out
