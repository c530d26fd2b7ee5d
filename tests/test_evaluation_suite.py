"""The evaluation suite: kNN and the linear probe on constructed features with known answers, the
spread over label subsets, the fine-tuning grid, and ``omnimask eval`` on tiny checkpoints."""

import json
import math
from pathlib import Path

import pytest
import torch

from omnimask import OmniMaskConfig, OmniMaskForPreTraining, OmniMaskModel
from omnimask.cli import main as cli_main
from omnimask.evaluation import (
    EvalConfig,
    best_cell,
    compare_encoders,
    finetune_grid,
    format_report,
    knn_accuracy,
    knn_predict,
    logistic_probe_accuracy,
    mean_std,
)
from omnimask.run_config import load_yaml
from omnimask.runners import evaluate
from omnimask.runners.evaluate import random_encoder, resolve_data

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "recipes/configs/image/mae_vit_test.yaml"
VL_CFG = REPO / "recipes/configs/vl/m3ae_test.yaml"


def _on_circle(degrees: list[float]) -> torch.Tensor:
    rad = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([rad.cos(), rad.sin()], dim=1)


def _clusters(n_per: int, classes: int, dim: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c = a point near 5 * e_c (plus a constant offset: the features are not centred)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per)
    x = 5 * torch.eye(dim)[y] + 1.0 + spread * torch.randn(len(y), dim, generator=g)
    return x, y


# ---- kNN --------------------------------------------------------------------------------------


def test_knn_on_well_separated_clusters_is_perfect_and_chance_on_shuffled_labels():
    (xtr, ytr), (xte, yte) = _clusters(20, 4, 8, 0.3, seed=0), _clusters(10, 4, 8, 0.3, seed=1)
    assert knn_accuracy(xtr, ytr, xte, yte, k=5) == 100.0
    shuffled = ytr[torch.randperm(len(ytr), generator=torch.Generator().manual_seed(0))]
    assert knn_accuracy(xtr, shuffled, xte, yte, k=5) < 60.0


def test_knn_weighting_one_close_wrong_neighbour_against_two_farther_right_ones():
    """Query A (label 1) at 0 degrees: a class-0 sample at cos 0.99 (8.1 deg), two class-1 samples
    at cos 0.9 (+-25.8 deg), a class-0 sample opposite (outside k=3). Weights exp(sim / T):
    T=0.07: e^(0.99/0.07) = e^14.14 beats 2 e^(0.9/0.07) = 2 e^12.86 (ratio e^1.29 / 2 = 1.8): A -> 0, wrong.
    T=1:    e^0.99 = 2.69 loses to 2 e^0.9 = 4.92: A -> 1, right.
    Query B (label 1) at -40 deg is nearest to a class-1 sample (cos 0.970) and right either way."""
    a8, a26 = math.degrees(math.acos(0.99)), math.degrees(math.acos(0.9))
    train = _on_circle([a8, a26, -a26, 180.0])
    labels = torch.tensor([0, 1, 1, 0])
    test, truth = _on_circle([0.0, -40.0]), torch.tensor([1, 1])
    assert knn_accuracy(train, labels, test, truth, k=3, temperature=0.07) == 50.0
    assert knn_accuracy(train, labels, test, truth, k=3, temperature=1.0) == 100.0
    assert knn_accuracy(train, labels, test, truth, k=1, temperature=1.0) == 50.0  # the nearest alone
    # features are L2-normalised: scaling a row changes nothing
    assert knn_accuracy(train * torch.tensor([[3.0], [0.5], [7.0], [1.0]]), labels, test * 4, truth, k=3) == 50.0


def test_knn_predict_matches_a_direct_loop_and_batching_changes_nothing():
    g = torch.Generator().manual_seed(3)
    xtr, ytr, xte = (
        torch.randn(50, 6, generator=g),
        torch.randint(0, 5, (50,), generator=g),
        torch.randn(23, 6, generator=g),
    )
    k, t = 7, 0.1
    expected = []
    for q in xte:
        sim = torch.nn.functional.cosine_similarity(xtr.double(), q.double()[None], dim=1)
        top = sim.topk(k).indices
        votes = torch.zeros(5, dtype=torch.float64)
        for i in top.tolist():
            votes[ytr[i]] += math.exp(float(sim[i]) / t)
        expected.append(int(votes.argmax()))
    assert knn_predict(xtr, ytr, xte, k, t).tolist() == expected
    assert knn_predict(xtr, ytr, xte, k, t, batch=4).tolist() == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.ones(5, 3), torch.zeros(5), torch.ones(2, 3), torch.zeros(2), 0), "k must be at least 1"),
        (
            (torch.ones(5, 3), torch.zeros(5), torch.ones(2, 3), torch.zeros(2), 6),
            "k=6 is larger than the training set",
        ),
        ((torch.ones(5, 3), torch.zeros(4), torch.ones(2, 3), torch.zeros(2), 1), "one label per training row"),
        ((torch.ones(5, 3), torch.zeros(5), torch.ones(2, 3), torch.zeros(3), 1), "one label per test row"),
        ((torch.ones(5, 3), torch.zeros(5), torch.ones(2, 4), torch.zeros(2), 1), "feature sizes differ"),
        ((torch.ones(5), torch.zeros(5), torch.ones(2, 3), torch.zeros(2), 1), r"expected \(N, D\)"),
    ],
)
def test_knn_rejects_bad_inputs_with_a_message(args, message):
    with pytest.raises(ValueError, match=message):
        knn_accuracy(*args)


# ---- linear probe, spreads ---------------------------------------------------------------------


def test_logistic_probe_is_perfect_on_separable_features_and_exact_under_known_test_label_noise():
    (xtr, ytr), (xte, yte) = _clusters(15, 3, 6, 0.2, seed=0), _clusters(20, 3, 6, 0.2, seed=1)
    assert logistic_probe_accuracy(xtr, ytr, xte, yte) == 100.0
    noisy = yte.clone()
    flipped = torch.arange(0, 60, 5)  # 12 of 60 test labels made wrong: exactly 80 % can be right
    noisy[flipped] = (noisy[flipped] + 1) % 3
    assert logistic_probe_accuracy(xtr, ytr, xte, noisy) == pytest.approx(80.0)
    with pytest.raises(ValueError, match="labels"):
        logistic_probe_accuracy(xtr, ytr[:-1], xte, yte)


def test_mean_std_is_the_sample_deviation():
    assert mean_std([10.0, 20.0]) == pytest.approx((15.0, math.sqrt(50.0)))
    assert mean_std([2.0, 4.0, 9.0]) == pytest.approx((5.0, math.sqrt((9 + 1 + 16) / 2)))
    assert mean_std([7.0]) == (7.0, 0.0)
    with pytest.raises(ValueError):
        mean_std([])


def _tiny_encoder(seed: int = 0) -> OmniMaskModel:
    torch.manual_seed(seed)
    config = OmniMaskConfig(
        encoder={"dim": 32, "depth": 1, "num_heads": 2},
        modalities={"image": {"tokenizer": {"image_size": 16, "patch_size": 8}}},
    )
    return OmniMaskModel(config)


def _colours(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c = a bright colour channel c over noise (3 classes)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 3, 16, 16, generator=g) * 0.3
    x[torch.arange(n), y] += 1.5
    return x, y


FAST = dict(labels_per_class=3, repeats=2, epochs=2, batch_size=9, lr=3e-3, warmup_epochs=1, knn_k=5)


def test_compare_encoders_reports_knn_and_the_spread_of_every_few_label_number():
    train, val = _colours(30, seed=1), _colours(30, seed=2)
    cfg = EvalConfig(**FAST)
    report = compare_encoders({"a": _tiny_encoder(0), "b": _tiny_encoder(1)}, "image", train, val, cfg, progress=False)
    for entry in report.values():
        assert {"knn", "probe_all", "probe_few", "probe_few_mean", "probe_few_std", "finetune", "finetune_mean"} <= set(
            entry
        )
        assert len(entry["finetune"]) == len(entry["probe_few"]) == len(entry["finetune_train"]) == 2
        assert (entry["finetune_mean"], entry["finetune_std"]) == pytest.approx(mean_std(entry["finetune"]))
        assert (entry["probe_few_mean"], entry["probe_few_std"]) == pytest.approx(mean_std(entry["probe_few"]))
        assert entry["knn"] >= 90.0  # the colour is in every patch: even random features separate it
    text = format_report(report, 3)
    assert "kNN, all labels" in text and "±" in text and "gain (points)" in text
    gain = f"{report['a']['knn'] - report['b']['knn']:+.1f}"
    assert text.splitlines()[-1].split()[2] == gain


def test_the_grid_cell_of_the_protocols_settings_is_the_protocols_fine_tuning():
    train, val = _colours(30, seed=1), _colours(30, seed=2)
    cfg = EvalConfig(**{**FAST, "knn": False, "linear_probe": False})
    enc = _tiny_encoder()
    cells = finetune_grid(enc, "image", train, val, cfg, lrs=(1e-3, 3e-3), epochs=(2,))
    assert [(c["lr"], c["epochs"]) for c in cells] == [(1e-3, 2), (3e-3, 2)]
    report = compare_encoders({"x": enc}, "image", train, val, cfg, progress=False)["x"]
    same = cells[1]  # lr 3e-3, 2 epochs: the protocol's settings
    assert same["val"] == report["finetune"] and same["train_acc"] == report["finetune_train"]
    assert (same["val_mean"], same["val_std"]) == pytest.approx(mean_std(same["val"]))
    assert best_cell(cells)["val_mean"] == max(c["val_mean"] for c in cells)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        finetune_grid(enc, "image", train, val, cfg, lrs=(1e-3,), epochs=(0,))


def test_random_init_is_the_encoder_pretraining_started_from():
    config = OmniMaskConfig(**json.loads(json.dumps(_tiny_encoder().config.to_dict())))
    torch.manual_seed(5)
    started = OmniMaskForPreTraining(config).omnimask.state_dict()
    again = random_encoder(config, 5).state_dict()
    assert all(torch.equal(started[k], again[k]) for k in started)


class _Stop(Exception):
    """Raised by a spy once it has seen the models a runner compares."""


def _saved_model(config: OmniMaskConfig, path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    OmniMaskForPreTraining(config).save_pretrained(path)


def test_a_mixed_runs_per_source_baseline_is_the_encoder_it_started_from(tmp_path, monkeypatch):
    """``from_pretrained`` draws from the global RNG: the baseline must be built before it."""
    from omnimask.runners import pretrain

    config = OmniMaskConfig(**json.loads(json.dumps(_tiny_encoder().config.to_dict())))
    _saved_model(config, tmp_path / "final", seed=11)
    seen = {}

    def spy(encoders, *args, **kwargs):
        seen.update(encoders)
        raise _Stop

    monkeypatch.setattr(pretrain, "source_keys", lambda src: ("image",))
    monkeypatch.setattr(pretrain, "build_source", lambda *args: [])
    monkeypatch.setattr(pretrain, "encode_dataset", lambda *args: (torch.zeros(0), torch.zeros(0)))
    monkeypatch.setattr(pretrain, "compare_encoders", spy)
    cfg = pretrain.RecipeConfig(model=config.to_dict(), data={})
    cfg.train.seed = 3
    with pytest.raises(_Stop):
        pretrain._evaluate_source(
            cfg, config, tmp_path / "final", pretrain.RunSource(name="digits", key="image", config=None)
        )
    torch.manual_seed(3)
    started = OmniMaskForPreTraining(config).omnimask.state_dict()
    initial = seen["random init"].state_dict()
    assert all(torch.equal(started[k], initial[k]) for k in started)


def test_a_paired_runs_baseline_is_the_model_it_started_from(tmp_path, monkeypatch):
    from omnimask.runners import paired_eval

    config = OmniMaskConfig(**load_yaml(VL_CFG)["model"])
    _saved_model(config, tmp_path / "final", seed=11)
    seen = {}

    def spy(encoders, *args, **kwargs):
        seen.update(encoders)
        raise _Stop

    monkeypatch.setattr(paired_eval, "compare_retrieval", spy)
    items = [{"image": torch.zeros(1), "text": torch.zeros(1)}]
    with pytest.raises(_Stop):
        paired_eval.evaluate_pairs(config, tmp_path / "final", items, ("image", "text"), seed=3)
    torch.manual_seed(3)
    started = OmniMaskForPreTraining(config).omnimask.state_dict()
    initial = seen["random init"].state_dict()
    assert all(torch.equal(started[k], initial[k]) for k in started)


# ---- omnimask eval -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """The embedded image and caption parts, built once for this module."""
    from omnimask.data import ensure_embedded_dataset

    return ensure_embedded_dataset(tmp_path_factory.mktemp("embedded"), parts=("image", "captions"), progress=False)


@pytest.fixture(autouse=True)
def _data_env(request, monkeypatch):
    if "data_root" in request.fixturenames:
        monkeypatch.setenv("OMNIMASK_DATA_DIR", str(request.getfixturevalue("data_root")))


QUICK = ["--data", str(TEST_CFG), "--max-samples", "60", "--labels-per-class", "2", "--repeats", "2", "--epochs", "1"]


def _run(args: list[str], out: Path) -> dict:
    assert cli_main(["eval", *args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_eval_pretraining_folder_encoder_folder_and_random_init(tmp_path, data_root):
    config = OmniMaskConfig(**load_yaml(TEST_CFG)["model"])
    torch.manual_seed(0)
    pre = OmniMaskForPreTraining(config)
    pre.save_pretrained(tmp_path / "final")
    pre.omnimask.save_pretrained(tmp_path / "encoder")
    doc = _run([str(tmp_path / "final"), *QUICK, "--compare-random-init"], tmp_path / "a.json")
    assert doc["kind"] == "pretraining" and doc["protocols"] == ["knn", "probe", "finetune"]
    assert set(doc["results"]) == {"checkpoint", "random init"} and doc["n_train"] == doc["n_val"] == 60
    entry = doc["results"]["checkpoint"]
    for key in ("knn", "probe_all", "probe_few_mean", "probe_few_std", "finetune_mean", "finetune_std"):
        assert 0.0 <= entry[key] <= 100.0
    assert len(entry["finetune"]) == 2
    assert doc["gains"]["knn"] == pytest.approx(entry["knn"] - doc["results"]["random init"]["knn"])
    # the same weights as an encoder-only folder: the same numbers
    doc2 = _run([str(tmp_path / "encoder"), *QUICK, "--protocols", "knn,probe"], tmp_path / "b.json")
    assert doc2["kind"] == "encoder" and "finetune_mean" not in doc2["results"]["checkpoint"]
    assert doc2["results"]["checkpoint"]["knn"] == entry["knn"]
    assert doc2["results"]["checkpoint"]["probe_all"] == entry["probe_all"]
    # --random-init --seed 0 is the encoder this pretraining model started from: a different one
    doc3 = _run(
        [str(tmp_path / "final"), *QUICK, "--protocols", "knn", "--random-init", "--seed", "0"], tmp_path / "c.json"
    )
    assert doc3["results"]["random init"]["knn"] == entry["knn"]
    doc4 = _run([str(TEST_CFG), "--random-init", "--seed", "1", *QUICK[2:], "--protocols", "knn"], tmp_path / "d.json")
    assert doc4["kind"] == "recipe config" and doc4["data"] == str(TEST_CFG)
    assert doc4["results"]["random init"]["knn"] != entry["knn"]


def test_eval_training_output_dir_reads_its_latest_checkpoint(tmp_path, data_root):
    out = tmp_path / "run"
    args = ["train", "image_mae", "--config", str(TEST_CFG), f"train.output_dir={out}", "train.max_steps=1"]
    assert cli_main(args) == 0
    from_ckpt = _run([str(out), *QUICK, "--protocols", "knn,probe"], tmp_path / "a.json")
    from_final = _run([str(out / "final"), *QUICK, "--protocols", "knn,probe"], tmp_path / "b.json")
    assert from_ckpt["kind"] == "training checkpoint"
    assert from_ckpt["results"] == from_final["results"]


def test_eval_grid_on_the_random_init_of_a_recipe(tmp_path, data_root, capsys):
    grid = ["--grid", "--grid-lrs", "1e-3,3e-3", "--grid-epochs", "1"]
    doc = _run([str(TEST_CFG), "--random-init", *QUICK[2:], *grid], tmp_path / "g.json")
    assert "results" not in doc and [(c["lr"], c["epochs"]) for c in doc["grid"]] == [(1e-3, 1), (3e-3, 1)]
    assert all(len(c["train_acc"]) == len(c["val"]) == 2 for c in doc["grid"])
    assert "best held-out: lr" in capsys.readouterr().out
    assert cli_main(["eval", str(TEST_CFG), "--random-init", "--grid", "--grid-lrs", "fast"]) == 2
    assert "--grid-lrs: expected comma-separated numbers" in capsys.readouterr().err


def test_eval_retrieval_on_paired_data(tmp_path, data_root):
    doc = _run([str(VL_CFG), "--random-init", "--max-samples", "30"], tmp_path / "r.json")
    assert doc["protocols"] == ["retrieval"]
    recall = doc["results"]["random init"]
    assert {"i2t_R@1", "t2i_R@1", "i2t_MedR", "t2i_MedR"} <= set(recall)
    assert 0.0 <= recall["i2t_R@10"] <= 100.0


def test_eval_errors_exit_2_with_a_message(tmp_path, data_root, capsys, monkeypatch):
    def err(args: list[str]) -> str:
        assert cli_main(["eval", *args]) == 2
        return capsys.readouterr().err

    assert "no checkpoint at" in err([str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    assert "not a model omnimask eval can read" in err([str(tmp_path / "empty")])
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "vit_mae"}))
    assert "not an omnimask one" in err([str(tmp_path / "hf")])
    assert "holds no weights: add --random-init" in err([str(TEST_CFG)])
    assert "unknown protocol(s) ['knm']" in err([str(TEST_CFG), "--random-init", "--protocols", "knn,knm"])
    assert "retrieval needs paired data" in err([str(TEST_CFG), "--random-init", "--protocols", "retrieval"])
    assert "unknown recipe 'imag_mae'" in err([str(TEST_CFG), "--random-init", "--data", "imag_mae"])
    unlabelled = [{"image": torch.zeros(3, 32, 32)}] * 4
    monkeypatch.setattr(evaluate, "build_dataset", lambda *a: unlabelled)
    assert "carry no labels" in err([str(TEST_CFG), "--random-init"])


def test_without_data_the_shipped_recipe_of_the_same_modalities_is_used():
    image = OmniMaskConfig(**load_yaml(TEST_CFG)["model"])
    path, section = resolve_data(None, image)
    assert path.name == "mae_vit_tiny_digits.yaml" and "image" in section
    assert resolve_data(None, OmniMaskConfig(**load_yaml(VL_CFG)["model"]))[0].name == "m3ae_tiny_digits.yaml"
    assert resolve_data("image_mae", image)[0] == path
