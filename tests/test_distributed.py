"""Scale-out (issue 15): 2-process DDP and FSDP2 runs equal a 1-process run on the same global batch,
checkpoints resume on a different number of processes, an FSDP run exports the whole model, and the
recipe command runs under torchrun with ``train.strategy=fsdp``.

The model is the real pretraining model at test size (the image recipe's test config: a 2-block
encoder, a 1-block decoder); masks come from per-sample seeds (``train.mask_seeding: sample``), so
the same samples get the same masks whichever process trains them. One torchrun launch runs every
2-process scenario (CPU, gloo); the 1-process references run in the test process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from omnimask import OmniMaskForPreTraining
from omnimask.registry import ConfigError
from omnimask.runners.pretrain import load_recipe
from omnimask.training import OptimConfig, SeededDataset, TrainConfig, Trainer, load_checkpoint
from omnimask.training.strategy import blocks_of, enable_activation_checkpointing

ROOT = Path(__file__).parents[1]
TEST_CONFIG = ROOT / "recipes" / "configs" / "image" / "mae_vit_test.yaml"
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
    "OMP_NUM_THREADS": "1",
}
OPTIM = OptimConfig(base_lr=2e-3, warmup_epochs=0.5, clip_grad=1.0)


class Images(Dataset):
    """32 fixed random 32x32 images (the tiny image model's input)."""

    def __init__(self, n: int = 32) -> None:
        self.x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(7))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.x[i] + 0.1 * torch.randn(3, 32, 32)}  # augmentation: seeded per sample


def tiny_model() -> OmniMaskForPreTraining:
    torch.manual_seed(0)
    return OmniMaskForPreTraining(load_recipe(TEST_CONFIG).model_config)


def train_cfg(out: Path, **kw) -> TrainConfig:
    base = dict(epochs=2, max_steps=4, batch_size=8, num_workers=0, output_dir=str(out), checkpoint_every=2,
                log_every=1, progress=False, tensorboard=False, metrics_every=0, mask_seeding="sample")  # fmt: skip
    return TrainConfig(**{**base, **kw})


# Every 2-process scenario, in one launch. Global batch 8 in each: DDP 4 per process; FSDP 2 per
# process x 2 accumulation steps (so gradient sync is skipped on the first micro-batch).
CHILD = """
import json, os, sys
from pathlib import Path
import torch
import test_distributed as T
from omnimask.training import Trainer, cleanup, init_distributed

out = Path(sys.argv[1])
rank = init_distributed()[0]

def run(name, resume=False, **kw):
    trainer = Trainer(T.tiny_model(), T.Images(), T.train_cfg(out / name, **kw), T.OPTIM)
    result = trainer.fit(resume=resume)
    whole = trainer.full_model()  # every rank (FSDP gathers); rank 0 gets the model
    if rank == 0:
        whole.save_pretrained(out / name / "final")
        (out / name / "losses.json").write_text(json.dumps(result.losses))

run("ddp", batch_size=4)
run("fsdp", strategy="fsdp", batch_size=2, accum_steps=2)
run("one_to_two", resume=str(out / "single_part" / "checkpoints" / "step_00000002"), batch_size=4, strategy="fsdp")
run("fsdp_bf16", strategy="fsdp", batch_size=4, bf16=True, activation_checkpointing=True, cpu_offload=True)
cleanup()
"""


def _torchrun(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 args`` on a free port (retried only when it was taken)."""
    for _ in range(3):
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={port}", *args]  # fmt: skip
        proc = subprocess.run(cmd, env=ENV, timeout=timeout, capture_output=True, text=True, cwd=ROOT)
        if not any(e in proc.stderr for e in ("EADDRINUSE", "address already in use")):
            return proc
    return proc


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return OmniMaskForPreTraining.from_pretrained(path).state_dict()


def _assert_same_weights(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    worst = max((x - b[k]).abs().max().item() for k, x in a.items())
    assert worst <= atol, f"largest weight difference {worst:.2e}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The 1-process references and the 2-process launch: ``{name: (losses, weights dir)}``."""
    out = tmp_path_factory.mktemp("dist")
    got = {}
    single = Trainer(tiny_model(), Images(), train_cfg(out / "single"), OPTIM)
    result = single.fit()
    single.model.save_pretrained(out / "single" / "final")
    got["single"] = result.losses
    # The first two steps alone, for the 1 -> 2 resume.
    Trainer(tiny_model(), Images(), train_cfg(out / "single_part", max_steps=2), OPTIM).fit()
    script = out / "child.py"
    script.write_text(CHILD)
    proc = _torchrun(str(script), str(out))
    assert proc.returncode == 0, proc.stderr[-5000:]
    for name in ("ddp", "fsdp", "one_to_two", "fsdp_bf16"):
        got[name] = json.loads((out / name / "losses.json").read_text())
    return out, got


def test_ddp_and_fsdp_on_two_processes_equal_one_process(runs):
    out, got = runs
    single = got["single"]
    assert len(single) == 4 and single[-1] < single[0]
    for name in ("ddp", "fsdp"):
        assert got[name] == pytest.approx(single, rel=1e-5, abs=1e-6), name
        _assert_same_weights(_weights(out / name / "final"), _weights(out / "single" / "final"), atol=1e-5)


def test_fsdp_checkpoint_is_sharded_and_exports_the_whole_model(runs):
    out, _ = runs
    ckpt = out / "fsdp" / "checkpoints" / "step_00000004"
    shards = sorted(p.name for p in (ckpt / "state").iterdir())
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"]  # each process wrote its part
    assert not (ckpt / "model.safetensors").exists() and (ckpt / "config.json").is_file()
    code = subprocess.run([sys.executable, "-m", "omnimask", "export", str(out / "fsdp"), str(out / "exported")],
                          env=ENV, capture_output=True, text=True)  # fmt: skip
    assert code.returncode == 0, code.stderr
    _assert_same_weights(_weights(out / "exported"), _weights(out / "fsdp" / "final"), atol=0.0)


def test_resume_on_a_different_number_of_processes(runs):
    out, got = runs
    # 1 -> 2: steps 3-4 on two FSDP processes, from the 1-process checkpoint of step 2.
    assert got["one_to_two"] == pytest.approx(got["single"][2:], rel=1e-5, abs=1e-6)
    _assert_same_weights(_weights(out / "one_to_two" / "final"), _weights(out / "single" / "final"), atol=1e-5)
    # 2 -> 1: steps 3-4 in this process, from the 2-process FSDP checkpoint of step 2.
    shutil.rmtree(out / "fsdp" / "checkpoints" / "step_00000004")
    (out / "fsdp" / "checkpoints" / "latest").write_text("step_00000002\n")
    trainer = Trainer(tiny_model(), Images(), train_cfg(out / "two_to_one"), OPTIM)
    result = trainer.fit(resume=str(out / "fsdp"))
    assert result.start_step == 2 and result.losses == pytest.approx(got["single"][2:], rel=1e-5, abs=1e-6)
    _assert_same_weights(trainer.model.state_dict(), _weights(out / "single" / "final"), atol=1e-5)


def test_fsdp_with_bf16_activation_checkpointing_and_cpu_offload_trains(runs):
    _, got = runs
    bf16, single = got["fsdp_bf16"], got["single"]
    assert len(bf16) == 4 and all(torch.isfinite(torch.tensor(bf16)))
    assert bf16 == pytest.approx(single, rel=0.05)  # bf16 rounding, same samples, masks and schedule


def test_recipe_runs_under_torchrun_with_fsdp(tmp_path):
    """The command of the README: torchrun, the recipe script, its test config, strategy fsdp."""
    proc = _torchrun("recipes/image_mae.py", "--config", str(TEST_CONFIG), "train.strategy=fsdp",
                     f"train.output_dir={tmp_path}", timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-5000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["final_loss"] > 0
    model = OmniMaskForPreTraining.from_pretrained(tmp_path / "final")
    assert load_checkpoint(tmp_path, model)["step"] == 4  # the shards load into a plain model


def test_activation_checkpointing_gives_the_same_gradients():
    batch = {"image": torch.randn(4, 3, 32, 32)}
    seeds = {"image": torch.arange(4)}
    grads = []
    for recompute in (False, True):
        model = tiny_model()
        if recompute:
            assert enable_activation_checkpointing(model) == len(blocks_of(model)) == 3
        model(batch, mask_seeds=seeds).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n, g in grads[0].items():
        torch.testing.assert_close(grads[1][n], g, rtol=1e-5, atol=1e-7, msg=n)


def test_mask_seeds_depend_on_the_sample_only():
    ds = SeededDataset(Images(4), mask_keys=["image"])
    a, b = ds[(2, 123)], ds[(2, 123)]
    assert a["mask_seeds"] == b["mask_seeds"] and ds[(2, 124)]["mask_seeds"] != a["mask_seeds"]
    assert torch.equal(a["image"], b["image"])
    assert "mask_seeds" not in SeededDataset(Images(4))[(2, 123)]


def test_strategy_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"train.strategy must be one of \['ddp', 'fsdp'\], got 'zero3'"):
        Trainer(tiny_model(), Images(), train_cfg(tmp_path, strategy="zero3"), OPTIM)
    with pytest.raises(ConfigError, match="train.cpu_offload needs train.strategy: fsdp"):
        Trainer(tiny_model(), Images(), train_cfg(tmp_path, cpu_offload=True), OPTIM)
    with pytest.raises(ConfigError, match="train.mask_seeding must be auto, sample or rank, got 'global'"):
        Trainer(tiny_model(), Images(), train_cfg(tmp_path, mask_seeding="global"), OPTIM)
    with pytest.raises(ConfigError, match="mask_seeding: sample does not apply here: train.masks_in_loader"):
        Trainer(tiny_model(), Images(), train_cfg(tmp_path, masks_in_loader=True), OPTIM)


@pytest.mark.parametrize("weighted", [False, True])
def test_ranks_split_the_one_process_order(weighted):
    """Each step's samples over 2 ranks are the 1-process step's samples (also with balanced sampling),
    and their seeds (augmentation, masks) are the same."""
    from omnimask.training import ResumableSampler

    weights = torch.rand(40, generator=torch.Generator().manual_seed(1)) if weighted else None
    kw = dict(seed=3, weights=weights, epoch_samples=32 if weighted else None)
    one = list(ResumableSampler(40, **kw))
    ranks = [list(ResumableSampler(40, rank=r, world_size=2, **kw)) for r in range(2)]
    per_step = 8  # 1 process x 8 == 2 ranks x 4
    for step in range(len(one) // per_step):
        both = ranks[0][step * 4 : step * 4 + 4] + ranks[1][step * 4 : step * 4 + 4]
        assert sorted(both) == sorted(one[step * per_step : (step + 1) * per_step])


def test_repeated_samples_get_distinct_mask_seeds():
    class Repeated(Images):
        def __getitem__(self, i):
            return [Images.__getitem__(self, i) for _ in range(3)]

    items = SeededDataset(Repeated(4), mask_keys=["image"])[(1, 99)]
    seeds = [it["mask_seeds"]["image"] for it in items]
    assert len(set(seeds)) == 3 and seeds == [
        it["mask_seeds"]["image"] for it in SeededDataset(Repeated(4), ["image"])[(1, 99)]
    ]
