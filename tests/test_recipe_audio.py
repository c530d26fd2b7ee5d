"""The audio recipe: AudioMAE's defaults in the paper config, a run on the embedded melodies with the
saved processor reading a file or a waveform, bad lists and files named or counted, and the
``omnimask audio-stats`` command."""

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from omnimask import OmniMaskConfig, OmniMaskForPreTraining, OmniMaskProcessor
from omnimask.cli import main as cli_main
from omnimask.modalities.audio import embedded_audio_root
from omnimask.runners.common import build_dataset
from omnimask.runners.pretrain import load_recipe
from omnimask.runners.pretrain import main as recipe_main

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "recipes/configs/audio/audiomae_test.yaml"


@pytest.fixture(autouse=True)
def _data_env(embedded_audio_dir, monkeypatch):
    monkeypatch.setenv("OMNIMASK_DATA_DIR", str(embedded_audio_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per-clip audio work is many small ops
    yield
    torch.set_num_threads(threads)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_paper_config_has_audiomae_defaults():
    cfg = load_recipe(REPO / "recipes/configs/audio/audiomae_vit_b_as2m.yaml")
    audio = OmniMaskConfig(**cfg.model).modalities["audio"]
    assert audio["tokenizer"]["target_length"] == 1024 and audio["tokenizer"]["num_mel_bins"] == 128
    assert audio["masking"] == {"name": "random", "ratio": 0.8}
    dec = audio["decoder"]
    assert (dec["name"], dec["depth"], dec["dim"], dec["num_heads"]) == ("local_window", 16, 512, 16)
    assert list(dec["window_size"]) == [4, 4] and list(dec["shift_size"]) == [2, 0]
    assert audio["objective"]["norm"] == "patch"
    assert audio["processor"]["mean"] == [-4.2677393] and abs(audio["processor"]["std"][0] - 2 * 4.5689974) < 1e-6
    assert cfg.optim.base_lr == 2e-4 and cfg.optim.weight_decay == 1e-4 and cfg.optim.warmup_epochs == 3
    assert cfg.train.epochs == 33 and cfg.train.batch_size * 8 == 512
    assert cfg.data["audio"]["multi_label"] and cfg.data["audio"]["roll_mag"]


def test_audio_recipe_runs_and_its_processor_reads_files_and_waveforms(tmp_path, capsys):
    out = tmp_path / "run"
    assert recipe_main(["--config", str(TEST_CFG), f"train.output_dir={out}"]) == 0
    assert (out / "reconstruction_audio.png").is_file()
    proc = OmniMaskProcessor.from_pretrained(out / "final")
    model = OmniMaskForPreTraining.from_pretrained(out / "final")
    wav = sorted((embedded_audio_root() / "val").rglob("*.wav"))[0]
    t = np.arange(24000) / 48000
    batch = proc(audio=[wav, (np.sin(2 * np.pi * 440 * t), 48000)])
    assert batch["audio"].shape == (2, 1, 32, 32) and torch.isfinite(batch["audio"]).all()
    assert model(batch).loss.isfinite()
    with pytest.raises(ValueError, match="sample_rate"):
        proc(audio=[np.zeros(100)])
    assert "Saved the pretrained model" in capsys.readouterr().out


def test_recipe_reads_a_path_label_list_and_names_or_counts_a_broken_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = []
    for i, rate in enumerate((8000, 22050, 44100, 48000)):
        lines.append(f"{write_wav(tmp_path / f'c{i}.wav', 0.3 * rng.standard_normal(rate // 2), rate)} {i % 2}")
    (tmp_path / "empty.wav").write_bytes(b"")
    lst = tmp_path / "train.txt"
    lst.write_text("\n".join(lines + [f"{tmp_path / 'empty.wav'} 1"]) + "\n")
    args = [
        "--config",
        str(TEST_CFG),
        f"train.output_dir={tmp_path / 'run'}",
        f"data.audio.list_file={lst}",
        "train.batch_size=5",
        "train.max_steps=1",
    ]
    assert recipe_main(args) == 3  # a data error (docs/cli.md#exit-codes)
    assert "empty.wav" in capsys.readouterr().err
    assert recipe_main(args + ["data.audio.on_error=skip"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["skipped_samples"] >= 1


def test_json_list_errors_name_the_entry(tmp_path):
    (tmp_path / "labels.csv").write_text("index,mid,display_name\n0,/m/a,a\n")
    write_wav(tmp_path / "x.wav", np.zeros(1600), 16000)
    (tmp_path / "train.json").write_text(json.dumps({"data": [{"wav": "x.wav", "labels": "/m/a"}, {"labels": "/m/a"}]}))
    cfg = OmniMaskConfig(**load_recipe(TEST_CFG).model)
    with pytest.raises(ValueError, match=r"data\[1\].*wav"):
        build_dataset(cfg, {"audio": {"list_file": str(tmp_path / "train.json")}}, "audio", "train")
    with pytest.raises(ValueError, match="val_list_file"):
        build_dataset(cfg, {"audio": {"list_file": str(tmp_path / "train.json")}}, "audio", "val")


def test_embedded_json_gives_int_labels_and_the_tokenizer_shape():
    cfg = OmniMaskConfig(**load_recipe(TEST_CFG).model)
    ds = build_dataset(cfg, {"audio": {}}, "audio", "val")
    item = ds[0]
    assert item["audio"].shape == (1, 32, 32) and isinstance(item["label"], int)
    assert set(ds.targets) == set(range(10))


def test_audio_stats_command(tmp_path, capsys):
    out = tmp_path / "stats.json"
    assert (
        cli_main(
            [
                "audio-stats",
                str(embedded_audio_root() / "val.json"),
                "--num-mel-bins",
                "32",
                "--max-clips",
                "20",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    stats = json.loads(out.read_text())
    assert stats["clips"] == 20 and stats["num_mel_bins"] == 32 and -20 < stats["mean"] < 5 and stats["std"] > 0
    assert "std doubled" in capsys.readouterr().err


def test_balanced_sampling_uses_the_datasets_weights(tmp_path):
    from omnimask.runners.pretrain import load_recipe
    from omnimask.training import Trainer

    cfg = load_recipe(
        TEST_CFG, [f"train.output_dir={tmp_path}", "train.balanced_sampling=true", "train.epoch_samples=24"]
    )
    config = OmniMaskConfig(**cfg.model)
    ds = build_dataset(config, {"audio": {}}, "audio", "train")
    trainer = Trainer(OmniMaskForPreTraining(config), ds, cfg.train, cfg.optim)
    assert torch.allclose(trainer.sampler.weights, ds.sample_weights().double())
    assert trainer.steps_per_epoch == 24 // cfg.train.batch_size
    assert (
        recipe_main(
            [
                "--config",
                str(TEST_CFG),
                f"train.output_dir={tmp_path / 'run'}",
                "train.balanced_sampling=true",
                "train.epoch_samples=16",
                "train.max_steps=2",
            ]
        )
        == 0
    )
    # a dataset without weights is refused with the reason
    image_cfg = load_recipe(REPO / "recipes/configs/image/mae_vit_test.yaml", ["train.balanced_sampling=true"])
    with pytest.raises(ValueError, match="sample_weights"):
        Trainer(
            OmniMaskForPreTraining(OmniMaskConfig(**image_cfg.model)),
            torch.utils.data.TensorDataset(torch.zeros(8)),
            image_cfg.train,
            image_cfg.optim,
            modalities=["image"],
        )
