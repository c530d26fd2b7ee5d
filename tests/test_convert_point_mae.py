"""Point-MAE checkpoints -> omnimask: same predictions, loss and features for the same cloud and mask.

The reference is ``point_mae_reference.py`` (Point-MAE's architecture written out from its
description with the official module names; the original needs CUDA extensions). Every weight and
BatchNorm statistic is random, so a misplaced tensor cannot hide behind an init.
"""

from __future__ import annotations

import pytest
import torch

import point_mae_reference as ref
from omnimask import OmniMaskForPreTraining, OmniMaskModel
from omnimask.cli import main as cli_main
from omnimask.convert import ConversionError, convert

OPTS = dict(num_points=96, num_groups=16, num_heads=4, drop_path=0.0)


def clouds(batch: int = 3, n: int = 96, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, 3, generator=g)
    x = x / x.norm(dim=-1, keepdim=True).amax(1, keepdim=True)  # unit sphere, as Point-MAE's loader
    x[:, 5] = 0.01  # |p|^2 = 3e-4 <= 1e-3: pointnet2's FPS never picks it as a centre
    return x


def hidden_mask(batch: int, groups: int = 16, ratio: float = 0.6, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(batch, groups, dtype=torch.bool)
    for b in range(batch):
        m[b, torch.randperm(groups, generator=g)[: int(ratio * groups)]] = True
    return m


def save_official(model: torch.nn.Module, path, ddp: bool = True) -> None:
    state = {("module." if ddp else "") + k: v for k, v in model.state_dict().items()}
    torch.save({"base_model": state, "epoch": 300, "metrics": {"acc": 0.0}, "optimizer": {"state": {}}}, path)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pmae")
    model = ref.randomize_(ref.PointMAE(), seed=3)
    save_official(model, tmp / "ckpt-last.pth")
    dst = convert("point-mae", tmp / "ckpt-last.pth", tmp / "out", **OPTS)
    return model, OmniMaskForPreTraining.from_pretrained(dst)


@pytest.mark.parametrize("train_mode", [False, True], ids=["eval", "train-batchnorm"])
def test_pretraining_checkpoint_gives_the_same_predictions_and_loss(pretrained, train_mode):
    reference, ours = pretrained
    reference.train(train_mode)
    ours.train(train_mode)
    x, mask = clouds(), hidden_mask(3)
    with torch.no_grad():
        ref_loss, rebuilt = reference(x, mask)
        out = ours({"points": x}, masks={"points": mask})
    pred = out.pred["points"].reshape(rebuilt.shape)  # hidden groups in ascending index order, like center[mask]
    assert (pred - rebuilt).abs().max() < 2e-5
    assert abs(float(out.loss) - float(ref_loss)) < 2e-5 * max(1.0, float(ref_loss))
    assert torch.equal(out.mask["points"], mask)


def test_converted_model_groups_like_pointnet2(pretrained):
    _, ours = pretrained
    x = clouds()
    groups, centres = ours.omnimask.tokenizers["points"].group(x)
    ref_groups, ref_centres = ref.Group(16, 8)(x)
    assert torch.equal(centres, ref_centres)
    assert torch.allclose(groups.sort(2).values, ref_groups.sort(2).values)  # same sets; order within a group is free
    assert not (centres == 0.01).all(-1).any()  # the near-origin point is never a centre
    cfg = ours.config.modalities["points"]
    assert cfg["tokenizer"]["fps_min_norm_sq"] == 1e-3 and cfg["masking"]["count"] == "hidden"


def test_finetuned_checkpoint_converts_to_an_encoder_with_cls_position(tmp_path, caplog):
    reference = ref.randomize_(ref.PointTransformer(), seed=5).eval()
    save_official(reference, tmp_path / "ckpt-best.pth")
    with caplog.at_level("INFO"):
        # a fine-tuned file has no decoder head to read the group size from: it is an option (default 32)
        dst = convert("point-mae", tmp_path / "ckpt-best.pth", tmp_path / "enc", group_size=8, **OPTS)
    assert "classification head" in caplog.text
    ours = OmniMaskModel.from_pretrained(dst).eval()
    assert ours.cls_pos is not None and ours.config.encoder["pos_every_block"]
    x = clouds(seed=4)
    with torch.no_grad():
        expected = reference(x)
        got = ours({"points": x}).last_hidden_state
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 2e-5


def test_cli_converts_a_checkpoint_directory(tmp_path, capsys):
    save_official(ref.randomize_(ref.PointMAE(), seed=7), tmp_path / "ckpt-last.pth", ddp=False)
    args = ["convert", "--from", "point-mae", str(tmp_path), str(tmp_path / "out")]
    args += [f"--option={k}={v}" for k, v in OPTS.items()]
    assert cli_main(args) == 0
    model = OmniMaskForPreTraining.from_pretrained(tmp_path / "out")
    assert model.config.modalities["points"]["tokenizer"]["group_size"] == 8


def test_bad_checkpoints_are_named(tmp_path):
    model = ref.randomize_(ref.PointMAE())
    state = dict(model.state_dict())
    torch.save({"base_model": {"foo.weight": torch.zeros(2)}}, tmp_path / "a.pth")
    with pytest.raises(ConversionError, match="not a Point-MAE checkpoint"):
        convert("point-mae", tmp_path / "a.pth", tmp_path / "a", **OPTS)
    torch.save({"base_model": {**state, "MAE_encoder.extra.weight": torch.zeros(2)}}, tmp_path / "b.pth")
    with pytest.raises(ConversionError, match="MAE_encoder.extra.weight"):
        convert("point-mae", tmp_path / "b.pth", tmp_path / "b", **OPTS)
    missing = {k: v for k, v in state.items() if k != "decoder_pos_embed.0.bias"}
    torch.save({"base_model": missing}, tmp_path / "c.pth")
    with pytest.raises(ConversionError, match="decoder_pos_embed.points.0.bias"):
        convert("point-mae", tmp_path / "c.pth", tmp_path / "c", **OPTS)
    torch.save({"base_model": state}, tmp_path / "d.pth")
    with pytest.raises(ConversionError, match="num_heads"):
        convert(
            "point-mae", tmp_path / "d.pth", tmp_path / "d", num_groups=16, num_points=96
        )  # width 48: heads unknown
    with pytest.raises(ConversionError, match="group_size=4"):
        convert("point-mae", tmp_path / "d.pth", tmp_path / "e", group_size=4, **OPTS)
    with pytest.raises(ConversionError, match="mask_type"):
        convert("point-mae", tmp_path / "d.pth", tmp_path / "f", mask_type="blocks", **OPTS)
