"""Fine-tuning: the runner trains a classifier on the embedded data from scratch or from a
pretrained directory, the loss and metrics match hand computations, layer decay scales the lr,
and masking during fine-tuning removes tokens in training only."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from omnimask import OmniMaskConfig, OmniMaskModel
from omnimask.runners.finetune import ClassifierModel, FinetuneConfig, load_finetune_recipe, mean_average_precision
from omnimask.runners.finetune import main as finetune_main
from omnimask.runners.pretrain import main as recipe_main
from omnimask.training.optim import layer_decay_groups

REPO = Path(__file__).resolve().parents[1]
FT_CFG = REPO / "recipes/configs/audio/audiomae_finetune_test.yaml"


@pytest.fixture
def audio_env(embedded_audio_dir, monkeypatch):
    monkeypatch.setenv("OMNIMASK_DATA_DIR", str(embedded_audio_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_encoder(**enc) -> OmniMaskModel:
    return OmniMaskModel(
        OmniMaskConfig(
            encoder={"dim": 32, "depth": 3, "num_heads": 2, **enc},
            modalities={"image": {"tokenizer": {"image_size": 16, "patch_size": 4}}},
        )
    )


def test_runner_from_scratch_and_from_a_pretrained_directory(tmp_path, audio_env, capsys):
    assert finetune_main(["--config", str(FT_CFG), f"train.output_dir={tmp_path / 'scratch'}"]) == 0
    summary = json.loads((tmp_path / "scratch" / "summary.json").read_text())
    assert summary["num_classes"] == 10 and 0 <= summary["val"]["top1"] <= 100 and summary["val"]["samples"] == 359
    assert (tmp_path / "scratch" / "final" / "classifier_head.pt").is_file()
    # pretrain briefly, then fine-tune it with a longer clip (positions follow the new grid)
    pre = tmp_path / "pre"
    assert (
        recipe_main(["--config", str(REPO / "recipes/configs/audio/audiomae_test.yaml"), f"train.output_dir={pre}"])
        == 0
    )
    args = [
        "--config",
        str(FT_CFG),
        f"init={pre / 'final'}",
        f"train.output_dir={tmp_path / 'ft'}",
        "model={modalities: {audio: {tokenizer: {target_length: 64}}}}",
    ]
    assert finetune_main(args) == 0
    enc = OmniMaskModel.from_pretrained(tmp_path / "ft" / "final")
    assert enc.config.modalities["audio"]["tokenizer"]["target_length"] == 64 and enc.config.encoder["drop_path"] == 0.1
    assert "Held-out top1" in capsys.readouterr().out
    bad = [
        "--config",
        str(FT_CFG),
        f"init={pre / 'final'}",
        f"train.output_dir={tmp_path / 'bad'}",
        "model={encoder: {dim: 48}}",
    ]
    assert finetune_main(bad) == 2


def test_classifier_loss_is_cross_entropy_soft_targets_or_bce():
    torch.manual_seed(0)
    model = ClassifierModel(small_encoder(), "image", 4, FinetuneConfig(label_smoothing=0.1)).eval()
    x, y = torch.randn(3, 3, 16, 16), torch.tensor([0, 3, 1])
    out = model({"image": x}, labels=y)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, y, label_smoothing=0.1))
    soft = torch.tensor([[0.7, 0.3, 0, 0], [0, 0, 0.5, 0.5], [1.0, 0, 0, 0]])
    assert torch.allclose(model({"image": x}, labels=soft).loss, -(soft * out.logits.log_softmax(-1)).sum(-1).mean())
    bce = ClassifierModel(small_encoder(), "image", 4, FinetuneConfig(loss="bce")).eval()
    multi = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0]])
    o = bce({"image": x}, labels=multi)
    assert torch.allclose(o.loss, F.binary_cross_entropy_with_logits(o.logits, multi))


def test_layer_decay_scales_each_block():
    model = ClassifierModel(small_encoder(), "image", 4, FinetuneConfig())
    groups = layer_decay_groups(model, 0.05, 0.5)
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert scale_of[id(named["head.weight"])] == 1.0
    assert scale_of[id(named["encoder.encoder.blocks.2.mlp.fc1.weight"])] == 0.5
    assert scale_of[id(named["encoder.encoder.blocks.0.mlp.fc1.weight"])] == 0.125
    assert scale_of[id(named["encoder.tokenizers.image.proj.weight"])] == 0.0625
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay_of[id(named["encoder.cls_token"])] == 0.0 and decay_of[id(named["head.weight"])] == 0.05


def test_masking_removes_tokens_in_training_only():
    cfg = FinetuneConfig(masking={"name": "random", "ratio": 0.5})
    model = ClassifierModel(small_encoder(), "image", 4, cfg)
    seen = []
    model.encoder.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    x = torch.randn(2, 3, 16, 16)
    model.train()({"image": x})
    model.eval()({"image": x})
    assert seen == [1 + 8, 1 + 16]  # [CLS] + half the 16 patches while training; all of them in eval


def test_mean_average_precision_on_known_rankings():
    targets = torch.tensor([[1.0, 0], [0, 1], [1, 0], [0, 0]])
    perfect = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.8, 0.3], [0.1, 0.2]])
    assert mean_average_precision(perfect, targets) == pytest.approx(100.0)
    # class 0: positives ranked 1st and 3rd -> AP = (1 + 2/3) / 2; class 1: its positive ranked 2nd -> 1/2
    mixed = torch.tensor([[0.9, 0.9], [0.2, 0.5], [0.3, 0.1], [0.5, 0.0]])
    assert mean_average_precision(mixed, targets) == pytest.approx(100 * ((1 + 2 / 3) / 2 + 0.5) / 2)


def test_recipe_sections_are_checked():
    with pytest.raises(Exception, match="finetune.loss"):
        load_finetune_recipe(FT_CFG, ["finetune.loss=mse"])
    with pytest.raises(Exception, match="finetun.*does not exist"):
        load_finetune_recipe(FT_CFG, ["finetun.loss=ce"])
    cfg = load_finetune_recipe(REPO / "recipes/configs/audio/audiomae_esc50_finetune.yaml")
    assert cfg.model["modalities"]["audio"]["tokenizer"]["target_length"] == 512
    assert cfg.data["audio"]["freqm"] == 96 and cfg.data["audio"]["timem"] == 24 and cfg.finetune.layer_decay == 0.75
    spc = load_finetune_recipe(REPO / "recipes/configs/audio/audiomae_speechcommands_finetune.yaml")
    assert spc.model["modalities"]["audio"]["tokenizer"]["target_length"] == 128


def test_omnimask_list_files_configs_under_their_recipe():
    from omnimask.cli import list_recipes

    recipes = list_recipes()
    assert "configs/points/point_mae_shapenet.yaml" in recipes["point_mae"]
    assert "configs/audio/audiomae_esc50_finetune.yaml" in recipes["finetune"]
    assert not any("finetune" in c for c in recipes["audio_mae"])


def test_renamed_keys_passes_labels_through_without_loading_items():
    from omnimask.data.wrappers import RenamedKeys

    class Items:
        targets = [3, 1]

        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise AssertionError("items must not be loaded for their labels")

    assert RenamedKeys(Items(), {"audio": "clip"}).targets == [3, 1]
    assert not hasattr(RenamedKeys([{"x": 1}], {"x": "y"}), "targets")
    assert RenamedKeys([{"x": 1, "label": 0}], {"x": "y"})[0] == {"y": 1, "label": 0}
