"""The vision-language recipe: M3AE's defaults in the paper config, a run on the embedded captioned
digits with retrieval and masked-token accuracy at the end, and paired-data errors."""

import json
from pathlib import Path

import pytest
import torch

from omnimask import OmniMaskConfig
from omnimask.modalities.text.pairs import PairsDataConfig, build_pairs_dataset
from omnimask.runners.pretrain import load_recipe
from omnimask.runners.pretrain import main as recipe_main

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "recipes/configs/vl/m3ae_test.yaml"


@pytest.fixture(autouse=True)
def _data_env(embedded_data_dir, monkeypatch):
    monkeypatch.setenv("OMNIMASK_DATA_DIR", str(embedded_data_dir))


def test_paper_config_has_m3ae_defaults():
    cfg = load_recipe(REPO / "recipes/configs/vl/m3ae_vit_b_cc12m.yaml")
    mods = OmniMaskConfig(**cfg.model).modalities
    assert mods["image"]["masking"]["ratio"] == 0.75 and mods["text"]["masking"]["ratio"] == 0.75
    assert mods["image"]["loss_weight"] == 1.0 and mods["text"]["loss_weight"] == 0.5
    assert mods["image"]["objective"]["norm"] == "none" and mods["text"]["objective"]["name"] == "cross_entropy"
    assert mods["image"]["tokenizer"]["image_size"] == 256 and mods["text"]["tokenizer"]["max_length"] == 64
    assert cfg.optim.base_lr == 1.5e-4 and cfg.optim.betas == (0.9, 0.95) and cfg.train.epochs == 100


def test_vl_recipe_trains_on_pairs_and_reports_retrieval(tmp_path, capsys):
    out = tmp_path / "run"
    assert recipe_main(["--config", str(TEST_CFG), f"train.output_dir={out}"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for name in ("pretrained (omnimask)", "random init"):
        r = summary["eval"][name]
        keys = {"i2t_R@1", "t2i_R@10", "i2t_MedR", "masked_token_acc", "masked_token_acc_with_image", "joint_probe"}
        assert keys <= set(r) and 0 <= r["t2i_R@10"] <= 100 and 1 <= r["i2t_MedR"] <= 359
        assert 0 <= r["joint_probe"] <= 100  # the embedded pairs carry the digit: a linear probe on joint features
    assert (out / "reconstruction_image.png").is_file()
    assert "Held-out evaluation on 359 image-text pairs" in capsys.readouterr().out


def test_paired_dataset_items_and_errors():
    cfg = OmniMaskConfig(**load_recipe(TEST_CFG).model)
    ds = build_pairs_dataset(PairsDataConfig(), cfg.modalities, "val")
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["text"].shape == (32,) and item["text"].dtype == torch.long
    assert item["text"][0] != 0 and (item["text"] == 0).any()  # a caption, then padding
    with pytest.raises(ValueError, match="format"):
        build_pairs_dataset(PairsDataConfig(format="parquet"), cfg.modalities, "train")
    with pytest.raises(ValueError, match="data.pairs.path is required"):
        build_pairs_dataset(PairsDataConfig(format="jsonl"), cfg.modalities, "train")
    with pytest.raises(ValueError, match="no modality 'caption'"):
        build_pairs_dataset(PairsDataConfig(text="caption"), cfg.modalities, "train")
    small = dict(cfg.modalities)
    small["text"] = {**small["text"], "tokenizer": {**small["text"]["tokenizer"], "vocab_size": 100}}
    with pytest.raises(ValueError, match="vocab_size is 100"):
        build_pairs_dataset(PairsDataConfig(), small, "train")


def test_saved_model_carries_its_tokenizer(tmp_path):
    from omnimask import OmniMaskForPreTraining, OmniMaskProcessor
    from omnimask.modalities.text import TextTokenizer

    model = OmniMaskForPreTraining(OmniMaskConfig(**load_recipe(TEST_CFG).model))
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "tokenizer_text").is_dir()
    proc = OmniMaskProcessor.from_pretrained(tmp_path / "m")
    ids = proc(text=["a handwritten seven", "The digit 3."])["text"]
    expected, _, _ = TextTokenizer.default().batch(["a handwritten seven", "The digit 3."], 32)
    assert torch.equal(ids, expected)
    assert torch.isfinite(OmniMaskForPreTraining.from_pretrained(tmp_path / "m")({"text": ids}).loss)
    # the saved copy is what a later load uses, wherever the original file went
    reloaded = OmniMaskForPreTraining.from_pretrained(tmp_path / "m")
    reloaded.save_pretrained(tmp_path / "again")
    assert OmniMaskProcessor.from_pretrained(tmp_path / "again")(text=["seven"])["text"].shape == (1, 32)


def _write_shards(root: Path, items: list, per_shard: int) -> list[Path]:
    """webdataset-style shards (<key>.png + <key>.txt) from caption items."""
    import io
    import tarfile

    root.mkdir(parents=True, exist_ok=True)
    shards = []
    for s in range(0, len(items), per_shard):
        path = root / f"shard-{s // per_shard:03d}.tar"
        with tarfile.open(path, "w") as tar:
            for j, it in enumerate(items[s : s + per_shard]):
                for suffix, data in ((".png", Path(it.image).read_bytes()), (".txt", it.captions[0].encode())):
                    info = tarfile.TarInfo(f"{s + j:05d}{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        shards.append(path)
    return shards


def test_vl_recipe_trains_on_tar_shards_end_to_end(tmp_path):
    """format: tar streams in training (no len(): train.epoch_samples sets the epoch), pictures come
    from the stream, and the held-out evaluation reads a JSONL list (val_format)."""
    from omnimask.modalities.text import embedded_caption_items

    shards = _write_shards(tmp_path / "shards", embedded_caption_items("train")[:96], per_shard=32)
    val = tmp_path / "val.jsonl"
    val.write_text(
        "".join(
            json.dumps({"image": it.image, "captions": list(it.captions)}) + "\n"
            for it in embedded_caption_items("val")[:40]
        )
    )
    out = tmp_path / "run"
    common = ["data.pairs.format=tar", f"data.pairs.path={tmp_path / 'shards'}", "train.epoch_samples=64",
              f"train.output_dir={out}", "train.max_steps=3"]  # fmt: skip
    assert recipe_main(["--config", str(TEST_CFG), *common, "eval.enabled=false"]) == 0
    assert (out / "reconstruction_image.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3
    # with a held-out list the run evaluates; without one the error says what to add
    out2 = tmp_path / "run2"
    args = ["--config", str(TEST_CFG), *common[:-2], f"train.output_dir={out2}", "train.max_steps=2"]
    assert recipe_main([*args, f"data.pairs.val_path={val}", "data.pairs.val_format=jsonl"]) == 0
    assert "i2t_R@1" in json.loads((out2 / "summary.json").read_text())["eval"]["pretrained (omnimask)"]
    with pytest.raises(ValueError, match="val_format=jsonl"):
        build_pairs_dataset(
            PairsDataConfig(format="tar", path=str(shards[0])), load_recipe(TEST_CFG).model_config.modalities, "val"
        )


def test_a_stream_needs_epoch_samples(tmp_path, capsys):
    from omnimask.modalities.text import embedded_caption_items

    _write_shards(tmp_path / "shards", embedded_caption_items("train")[:32], per_shard=32)
    args = ["--config", str(TEST_CFG), "data.pairs.format=tar", f"data.pairs.path={tmp_path / 'shards'}",
            "eval.enabled=false", f"train.output_dir={tmp_path / 'run'}"]  # fmt: skip
    assert recipe_main(args) == 2
    assert "train.epoch_samples" in capsys.readouterr().err
