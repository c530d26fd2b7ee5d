"""Mixed-source training (issue 12): the mixing plan, any subset of modalities per batch, masking
schedules and budgets, resume, and DDP with sources that leave modalities out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from omnimask import OmniMaskConfig, OmniMaskForPreTraining
from omnimask.data.mixing import MixedDataset, collate_mixed
from omnimask.masking.budget import BudgetConfig, RatioSchedule, draw_budget, split_budget
from omnimask.registry import ConfigError
from omnimask.training import MixedBatchSampler, Mixing, OptimConfig, TrainConfig, Trainer

ENC = {"dim": 32, "depth": 1, "num_heads": 2, "modality_embed": True}
IMG = {"tokenizer": {"image_size": 16, "patch_size": 4}, "decoder": {"dim": 16, "depth": 1, "num_heads": 2}}
SIG = {"decoder": {"dim": 16, "depth": 1, "num_heads": 2}}


class Toy(torch.utils.data.Dataset):
    """``n`` items of the given modalities, a fixed function of the index."""

    def __init__(self, n: int, keys: tuple[str, ...]) -> None:
        self.n, self.keys = n, keys

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        shapes = {"image": (3, 16, 16), "signal": (2, 64)}
        return {k: torch.randn(*shapes[k], generator=g) for k in self.keys} | {"label": i % 3}


def _model(**extra) -> OmniMaskForPreTraining:
    torch.manual_seed(0)
    return OmniMaskForPreTraining(OmniMaskConfig(encoder=ENC, modalities={"image": IMG, "signal": SIG}, **extra))


# ---- the plan --------------------------------------------------------------------------------------
def test_source_frequencies_follow_the_weights():
    sampler = MixedBatchSampler([50, 50, 50], [1.0, 2.0, 5.0], [4, 4, 4], 1, 4000, 100, seed=3)
    counts = np.bincount([sampler.source_of_step(t) for t in range(4000)], minlength=3)
    expected = np.array([1, 2, 5]) / 8 * 4000
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 13.8  # the 99.9 % point of chi-square with 2 degrees of freedom


def test_per_step_keeps_every_micro_batch_and_rank_on_one_source():
    sizes, weights, batches = [3000, 4000, 5000], [1.0, 1.0, 1.0], [2, 3, 4]  # no epoch ends within a step
    ranks = [MixedBatchSampler(sizes, weights, batches, 3, 20, 5, seed=1, rank=r, world_size=2) for r in (0, 1)]
    for step in range(20):
        per_rank = [s.step_batches(step) for s in ranks]
        sources = {src for mb in per_rank for batch in mb for src, _, _ in batch}
        assert len(sources) == 1
        src = sources.pop()
        assert all(len(batch) == batches[src] for mb in per_rank for batch in mb)
        seen = [i for mb in per_rank for batch in mb for _, i, _ in batch]
        assert len(seen) == len(set(seen))  # ranks and micro-batches take different samples


def test_per_sample_mixes_sources_and_walks_each_source_epoch_by_epoch():
    sampler = MixedBatchSampler([6, 9], [1.0, 1.0], [5], 1, 40, 10, mode="per_sample", seed=0)
    batches = [b for t in range(40) for b in sampler.step_batches(t)]
    assert any(len({s for s, _, _ in b}) == 2 for b in batches)
    stream = [i for b in batches for s, i, _ in b if s == 0]
    for e in range(len(stream) // 6):  # every pass over source 0 is a permutation of it
        assert sorted(stream[6 * e : 6 * e + 6]) == list(range(6))


def test_bad_weights_are_named():
    with pytest.raises(ValueError, match="positive"):
        MixedBatchSampler([5, 5], [1.0, 0.0], [2, 2], 1, 4, 2)


# ---- any subset of modalities ---------------------------------------------------------------------
def test_a_batch_without_a_modality_equals_the_single_modality_model():
    both = _model()
    torch.manual_seed(1)
    alone = OmniMaskForPreTraining(OmniMaskConfig(encoder=ENC, modalities={"image": IMG}))
    missing, unexpected = alone.load_state_dict(both.state_dict(), strict=False)
    assert not missing and all("signal" in k for k in unexpected)
    x, noise = torch.randn(3, 3, 16, 16), {"image": torch.rand(3, 16)}
    a, b = both({"image": x}, noise=noise), alone({"image": x}, noise=noise)
    assert set(a.losses) == {"image"}
    torch.testing.assert_close(a.loss, b.loss, rtol=0, atol=0)


def test_present_flags_make_absent_samples_padding():
    model = _model()
    x, s = torch.randn(4, 3, 16, 16), torch.randn(2, 2, 64)
    present = {"signal": torch.tensor([False, True, False, True])}
    out = model({"image": x, "signal": s}, present=present)
    assert out.loss_mask["signal"][[0, 2]].sum() == 0 and out.loss_mask["signal"][[1, 3]].any(1).all()
    # the present samples alone give the same signal loss (same noise on their rows)
    noise = {"image": torch.rand(4, 16), "signal": torch.rand(4, 8)}
    full = model({"image": x, "signal": s}, present=present, noise=noise)
    sub = model({"image": x[[1, 3]], "signal": s}, noise={k: v[[1, 3]] for k, v in noise.items()})
    torch.testing.assert_close(full.losses["signal"], sub.losses["signal"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="present"):
        model({"image": x, "signal": s}, present={"signal": torch.tensor([True, True, True, False])})


def test_collate_mixed_stacks_each_modality_over_its_samples():
    items = [{"image": torch.zeros(3, 16, 16), "source": 0}, {"signal": torch.ones(2, 64), "source": 1}]
    batch = collate_mixed(["image", "signal"])(items)
    assert batch["image"].shape == (1, 3, 16, 16) and batch["present"]["image"].tolist() == [True, False]
    assert batch["signal"].shape == (1, 2, 64) and batch["source"].tolist() == [0, 1]


def test_a_sample_missing_a_declared_modality_is_named():
    ds = MixedDataset([Toy(4, ("image",)), Toy(4, ("image",))], ["a", "b"], [("image",), ("image", "signal")])
    with pytest.raises(ValueError, match=r"data.sources.b: item 1 has no \['signal'\]"):
        ds[5]


# ---- schedules and budgets ------------------------------------------------------------------------
def test_schedules_give_the_configured_ratio():
    lin = RatioSchedule(shape="linear", start=0.5, end=0.9, ramp=(0.25, 0.75))
    assert [round(lin.at(p), 6) for p in (0.0, 0.25, 0.5, 0.75, 1.0)] == [0.5, 0.5, 0.7, 0.9, 0.9]
    cos = RatioSchedule(shape="cosine", start=0.4, end=0.8)
    assert cos.at(0.5) == pytest.approx(0.6) and cos.at(0.25) == pytest.approx(0.4 + 0.4 * (1 - np.cos(np.pi / 4)) / 2)
    with pytest.raises(ConfigError, match="mask_schedule"):
        OmniMaskConfig(modalities={"image": {"mask_schedule": {"shape": "linear", "start": 1.5}}})


def test_trainer_moves_the_scheduled_ratio_with_the_steps(tmp_path):
    img = {**IMG, "mask_schedule": {"shape": "linear", "start": 0.5, "end": 0.9}}
    torch.manual_seed(0)
    model = OmniMaskForPreTraining(OmniMaskConfig(encoder=ENC, modalities={"image": img}))
    seen = []
    train = TrainConfig(epochs=1, batch_size=4, num_workers=0, output_dir=str(tmp_path), progress=False)
    trainer = Trainer(
        model,
        Toy(20, ("image",)),
        train,
        OptimConfig(warmup_epochs=0),
        hooks=[lambda t, s, o: seen.append(model.maskings["image"].ratio)],
    )
    trainer.fit()
    assert seen == pytest.approx([0.5 + 0.4 * k / 5 for k in range(5)])


def test_dirichlet_budgets_sum_exactly_and_follow_alpha():
    cfg = BudgetConfig(visible=20, target=30, alpha={"a": 1.0, "b": 3.0})
    counts = {"a": 200, "b": 200}  # room enough that no cap bends the split
    g = torch.Generator().manual_seed(0)
    vis, tgt = [], []
    for _ in range(3000):
        v, t = draw_budget(cfg, counts, g)
        assert sum(v.values()) == 20 and sum(t.values()) == 30
        assert all(t[k] <= counts[k] - v[k] for k in counts)
        vis.append(v["a"] / 20)
        tgt.append(t["a"] / 30)
    assert np.mean(vis) == pytest.approx(0.25, abs=0.02) and np.mean(tgt) == pytest.approx(0.25, abs=0.02)
    assert split_budget(7, np.array([0.5, 0.5]), np.array([2, 10])).tolist() == [2, 5]


def test_cross_modal_prediction_hides_one_modality_entirely():
    budget = {"visible": 16, "target": 8, "alpha": {"image": 1, "signal": 0}, "target_alpha": {"image": 0, "signal": 1}}
    model = _model(budget=budget)
    out = model({"image": torch.randn(2, 3, 16, 16), "signal": torch.randn(2, 2, 64)})
    assert out.mask["signal"].all() and not out.mask["image"].any()
    assert out.loss_mask["signal"].sum(1).tolist() == [8, 8] and out.loss_mask["image"].numel() == 0
    out.loss.backward()


def test_a_budget_larger_than_the_tokens_is_named():
    with pytest.raises(ConfigError, match="budget.visible is 99"):
        _model(budget={"visible": 99})


# ---- the trainer over mixed sources ---------------------------------------------------------------
def _mixed_run(tmp_path: Path, max_steps: int, resume: bool = False, mode: str = "per_step") -> tuple[list, dict]:
    model = _model()
    ds = MixedDataset([Toy(24, ("image",)), Toy(16, ("signal",)), Toy(16, ("image", "signal"))], ["i", "s", "b"],
                      [("image",), ("signal",), ("image", "signal")])  # fmt: skip
    train = TrainConfig(epochs=2, max_steps=max_steps, batch_size=4, accum_steps=2, num_workers=0,
                        output_dir=str(tmp_path), progress=False, checkpoint_every=3)  # fmt: skip
    trainer = Trainer(
        model, ds, train, OptimConfig(warmup_epochs=0, lr=1e-3), mixing=Mixing([1.0, 1.0, 1.0], [2, 4, 2], mode)
    )
    result = trainer.fit(resume=resume)
    return result.losses, result.sources


@pytest.mark.parametrize("mode", ["per_step", "per_sample"])
def test_mixed_training_resumes_exactly(tmp_path, mode):
    full, sources = _mixed_run(tmp_path / "full", 7, mode=mode)
    first, _ = _mixed_run(tmp_path / "cut", 3, mode=mode)
    rest, again = _mixed_run(tmp_path / "cut", 7, resume=True, mode=mode)
    assert first + rest == full and again == sources
    assert sum(v["samples"] for v in sources.values()) > 0


DDP_SCRIPT = r"""
import json, os, sys, torch
from dataclasses import dataclass
sys.path.insert(0, sys.argv[3])
from test_mixing import Toy
from omnimask.data.mixing import MixedDataset
from omnimask.training import Mixing, OptimConfig, TrainConfig, Trainer, cleanup

@dataclass
class Out:  # DDP finds the loss's graph through dataclass fields, as in the real model's output
    loss: torch.Tensor
    losses: dict

class PerModality(torch.nn.Module):
    # deterministic (no masking draws), one head per modality: an image step leaves the signal head unused
    modalities = ["image", "signal"]
    def __init__(self):
        super().__init__()
        self.heads = torch.nn.ModuleDict({"image": torch.nn.Linear(768, 4), "signal": torch.nn.Linear(128, 4)})
    def forward(self, inputs, **_):
        losses = {k: (self.heads[k](x.flatten(1)) - 1.0).pow(2).mean() for k, x in inputs.items()}
        return Out(sum(losses.values()), losses)

world = int(os.environ.get("WORLD_SIZE", "1"))
torch.manual_seed(0)
model = PerModality()
ds = MixedDataset([Toy(24, ("image",)), Toy(24, ("signal",))], ["i", "s"], [("image",), ("signal",)])
batch = 4 // world
train = TrainConfig(epochs=1, max_steps=6, batch_size=batch, num_workers=0, output_dir=sys.argv[1], progress=False,
                    checkpoint_every=0)
trainer = Trainer(model, ds, train, OptimConfig(warmup_epochs=0, lr=1e-2, weight_decay=0.0),
                  mixing=Mixing([1.0, 1.0], [batch, batch]))
result = trainer.fit()
if trainer.rank == 0:
    state = {k: v.tolist() for k, v in model.state_dict().items()}
    json.dump({"losses": result.losses, "state": state, "sources": result.sources}, open(sys.argv[2], "w"))
cleanup()  # leave the process group before exiting, as every torchrun script should
"""


def test_two_process_per_step_mixing_matches_one_process(tmp_path):
    """gloo, 2 processes x 2 samples against 1 process x 4 on the same global batches; half the
    steps leave one head unused, which DDP must not wait for."""
    script = tmp_path / "run.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tests = str(Path(__file__).parent)
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "o1"), str(tmp_path / "one.json"), tests],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(29500 + os.getpid() % 1000), str(script), str(tmp_path / "o2"), str(tmp_path / "two.json"), tests],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two.json").read_text())
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-4, atol=1e-5)
    for k in a["state"]:
        np.testing.assert_allclose(a["state"][k], b["state"][k], rtol=1e-4, atol=1e-5)
    assert a["sources"] == b["sources"] and all(v["samples"] > 0 for v in a["sources"].values())
