"""``train.mask_repeats`` (issue 14): each loaded sample is used k times per step, each copy masked
differently; loading and augmentation are paid once.

The model is a small image MAE (32x32 images, 4x4 patches: 64 tokens, 16 visible), so two random
masks of one sample coincide with probability 1 / C(64, 16) ~ 2e-15: distinct copies are a fact,
not luck.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from omnimask import OmniMaskConfig, OmniMaskForPreTraining
from omnimask.registry import ConfigError
from omnimask.training import OptimConfig, TrainConfig, Trainer
from omnimask.training.repeat import repeat_rows, repeat_seed

OPTIM = OptimConfig(base_lr=1e-3, warmup_epochs=0.5)
K = 4


class Images(Dataset):
    """Fixed random 32x32 images plus seeded augmentation noise; counts ``__getitem__`` calls."""

    def __init__(self, n: int = 16) -> None:
        self.x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(7))
        self.calls: list[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        self.calls.append(i)
        return {"image": self.x[i] + 0.1 * torch.randn(3, 32, 32)}


class Recording(OmniMaskForPreTraining):
    """The pretraining model, recording the rows and the masks of every forward."""

    def forward(self, inputs=None, **kw):  # type: ignore[override]
        out = super().forward(inputs, **kw)
        self.seen.append((inputs["image"].detach().clone(), out.mask["image"].clone()))
        return out


def model(cls: type = Recording) -> OmniMaskForPreTraining:
    torch.manual_seed(0)
    config = OmniMaskConfig(
        encoder=dict(dim=32, depth=1, num_heads=2),
        modalities={
            "image": {
                "tokenizer": {"image_size": 32, "patch_size": 4, "in_chans": 3},
                "masking": {"name": "random", "ratio": 0.75},
                "decoder": {"name": "transformer", "dim": 16, "depth": 1, "num_heads": 2},
            }
        },
    )
    m = cls(config)
    m.seen = []
    return m


def cfg(out: Path, **kw) -> TrainConfig:
    base = dict(epochs=1, max_steps=2, batch_size=4, num_workers=0, output_dir=str(out), checkpoint_every=0,
                log_every=0, progress=False, tensorboard=False, metrics_every=0, mask_seeding="sample")  # fmt: skip
    return TrainConfig(**{**base, **kw})


def run(out: Path, data: Dataset | None = None, **kw) -> tuple[OmniMaskForPreTraining, list[float]]:
    m = model()
    result = Trainer(m, data if data is not None else Images(), cfg(out, **kw), OPTIM).fit()
    return m, result.losses


def assert_copies_distinct(masks: torch.Tensor, k: int) -> None:
    for i in range(masks.shape[0] // k):
        rows = masks[i * k : (i + 1) * k]
        assert all(not torch.equal(rows[a], rows[b]) for a in range(k) for b in range(a + 1, k)), f"sample {i}"


@pytest.mark.parametrize("seeding", ["sample", "rank"])
def test_copies_get_distinct_masks_and_reproduce(tmp_path, seeding):
    data = Images()
    m, losses = run(tmp_path / "a", data, mask_repeats=K, mask_seeding=seeding)
    assert len(data.calls) == 2 * 4 and len(set(data.calls)) == 8  # each sample loaded once in the epoch
    assert len(m.seen) == 2
    for images, masks in m.seen:
        assert images.shape[0] == masks.shape[0] == 4 * K  # the model sees k rows per sample
        for i in range(4):  # the k rows of a sample are the same augmented image
            assert all(torch.equal(images[i * K], images[i * K + r]) for r in range(K))
        assert_copies_distinct(masks, K)
    again, losses_again = run(tmp_path / "b", mask_repeats=K, mask_seeding=seeding)
    assert losses_again == losses
    assert all(torch.equal(a[1], b[1]) for a, b in zip(m.seen, again.seen))  # the same k masks on a rerun


def test_copy_zero_keeps_the_sample_mask_and_k1_is_the_plain_run(tmp_path):
    plain, plain_losses = run(tmp_path / "plain")
    one, one_losses = run(tmp_path / "one", mask_repeats=1)
    assert one_losses == plain_losses  # bit for bit
    assert all(torch.equal(a[1], b[1]) for a, b in zip(plain.seen, one.seen))
    # With k = 2 the first step's copy 0 of each sample has the mask the plain run drew for it.
    two, _ = run(tmp_path / "two", mask_repeats=2, max_steps=1)
    assert torch.equal(two.seen[0][1][0::2], plain.seen[0][1])
    assert not torch.equal(two.seen[0][1][1::2], plain.seen[0][1])


def test_throughput_counts_loaded_samples(tmp_path):
    trainer = Trainer(model(), Images(), cfg(tmp_path, mask_repeats=K, batch_size=2, accum_steps=2), OPTIM)
    assert trainer.effective_batch == 4 and trainer.steps_per_epoch == 4  # loaded samples, not rows


def test_repeat_seed_is_a_function_of_seed_and_copy():
    assert repeat_seed(123, 0) == 123
    seeds = [repeat_seed(123, r) for r in range(8)]
    assert len(set(seeds)) == 8 and seeds == [repeat_seed(123, r) for r in range(8)]
    assert repeat_seed(124, 1) != repeat_seed(123, 1)


def test_repeat_rows_keeps_present_flags_and_rows_consistent():
    # Three samples; the second lacks "a" (a mixed batch): "a" holds 2 rows, "b" 3.
    a, b = torch.tensor([[1.0], [3.0]]), torch.tensor([[1.0], [2.0], [3.0]])
    present = {"a": torch.tensor([True, False, True])}
    seeds = {"b": torch.tensor([10, 20, 30])}
    inputs, extra = repeat_rows({"a": a, "b": b}, {"present": present, "mask_seeds": seeds}, 2)
    assert inputs["a"].flatten().tolist() == [1, 1, 3, 3] and inputs["b"].flatten().tolist() == [1, 1, 2, 2, 3, 3]
    assert extra["present"]["a"].tolist() == [True, True, False, False, True, True]
    got = extra["mask_seeds"]["b"].tolist()
    assert got == [10, repeat_seed(10, 1), 20, repeat_seed(20, 1), 30, repeat_seed(30, 1)]
    # The flagged rows of the repeated batch are the repeated samples that carry "a".
    rows_of = torch.nonzero(extra["present"]["a"]).flatten().tolist()
    assert [inputs["b"][r].item() for r in rows_of] == inputs["a"].flatten().tolist()


class Supervised(nn.Module):
    modalities = ["image"]
    label_key = "label"

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3 * 32 * 32, 2)

    def forward(self, inputs, labels=None):
        loss = nn.functional.cross_entropy(self.head(inputs["image"].flatten(1)), labels)
        return SimpleNamespace(loss=loss, losses={"ce": loss})


class WithMasks(Images):
    def __getitem__(self, i: int) -> dict:
        return {**super().__getitem__(i), "masks": {"image": torch.arange(64) % 4 != 0}}


def test_bad_settings_name_the_key(tmp_path):
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ConfigError, match=r"train.mask_repeats must be an integer >= 1, got"):
            Trainer(model(), Images(), cfg(tmp_path, mask_repeats=bad), OPTIM)
    with pytest.raises(ConfigError, match="train.mask_repeats: 2 needs masks drawn by the model.*masks_in_loader"):
        Trainer(model(), Images(), cfg(tmp_path, mask_repeats=2, masks_in_loader=True, mask_seeding="auto"), OPTIM)
    with pytest.raises(ConfigError, match="train.mask_repeats: 3 applies to masked pretraining"):
        Trainer(Supervised(), Images(), cfg(tmp_path, mask_repeats=3, mask_seeding="auto"), OPTIM)
    with pytest.raises(ConfigError, match=r"train.mask_repeats: 2 needs masks drawn by the model.*\['masks'\]"):
        Trainer(model(), WithMasks(), cfg(tmp_path, mask_repeats=2, mask_seeding="rank"), OPTIM).fit()
