"""The few-label fine-tuning of the evaluation protocol: a Trainer run (layer decay, warm-up + cosine)
that learns a separable task and not a shuffled one, is reproducible and writes no checkpoint where
the user can see it; and a torchrun rank evaluating alone does not wait for the others."""

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import omnimask.evaluation.classification as classification
from omnimask import OmniMaskConfig, OmniMaskModel
from omnimask.evaluation import EvalConfig, compare_encoders, few_label_subset, finetune_accuracy
from omnimask.training import Trainer

CLASSES = 4
CFG = dict(labels_per_class=5, repeats=2, epochs=8, batch_size=10, lr=3e-3, warmup_epochs=1, linear_probe=False)


def _encoder() -> OmniMaskModel:
    torch.manual_seed(0)
    config = OmniMaskConfig(
        encoder={"dim": 32, "depth": 1, "num_heads": 2},
        modalities={"image": {"tokenizer": {"image_size": 16, "patch_size": 8}}},
    )
    return OmniMaskModel(config)


def _colours(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c < 3 = a bright colour channel c, class 3 = a dark image, over noise: separable."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % CLASSES
    x = torch.randn(n, 3, 16, 16, generator=g) * 0.3
    for i, c in enumerate(y.tolist()):
        if c < 3:
            x[i, c] += 1.5
        else:
            x[i] -= 1.0
    return x, y


def test_few_label_finetune_learns_separable_classes_but_not_shuffled_labels():
    (x, y), val = _colours(80, seed=1), _colours(80, seed=2)
    idx = few_label_subset(y, 5, seed=0)
    cfg = EvalConfig(**CFG)
    enc = _encoder()
    assert finetune_accuracy(enc, "image", (x[idx], y[idx]), val, cfg, seed=0) >= 95.0
    shuffled = y[idx][torch.randperm(len(idx), generator=torch.Generator().manual_seed(0))]
    assert finetune_accuracy(enc, "image", (x[idx], shuffled), val, cfg, seed=0) <= 50.0  # chance: 25 %


def test_same_seed_same_result_and_the_protocol_reaches_the_trainer(monkeypatch):
    seen = []

    class Spy(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self)

    monkeypatch.setattr(classification, "Trainer", Spy)
    (x, y), val = _colours(40, seed=1), _colours(40, seed=2)
    cfg = EvalConfig(**CFG)
    enc = _encoder()
    first = compare_encoders({"random": enc}, "image", (x, y), val, cfg, progress=False)
    torch.manual_seed(123)  # the result depends on the protocol's seeds only, not on the caller's RNG
    second = compare_encoders({"random": enc}, "image", (x, y), val, cfg, progress=False)
    assert first == second and len(first["random"]["finetune"]) == cfg.repeats
    assert len(seen) == 2 * cfg.repeats
    t = seen[0]
    assert (t.train_cfg.epochs, t.train_cfg.batch_size, t.train_cfg.seed) == (cfg.epochs, cfg.batch_size, cfg.seed)
    assert seen[1].train_cfg.seed == cfg.seed + 1  # one seed per label subset, as before
    assert (t.optim_cfg.lr, t.optim_cfg.warmup_epochs, t.optim_cfg.min_lr) == (cfg.lr, cfg.warmup_epochs, 0.0)
    assert isinstance(t.optimizer, torch.optim.AdamW)
    scales = sorted({g["lr_scale"] for g in t.optimizer.param_groups})
    assert scales == pytest.approx([cfg.layer_decay**2, cfg.layer_decay, 1.0])  # depth 1: layer decay
    assert all(g["betas"] == (0.9, 0.999) for g in t.optimizer.param_groups)
    assert {g["weight_decay"] for g in t.optimizer.param_groups} == {0.0, cfg.weight_decay}
    assert t.total_steps == cfg.epochs * (CLASSES * cfg.labels_per_class // cfg.batch_size)


def test_finetune_leaves_no_checkpoint_behind(tmp_path, monkeypatch):
    work, scratch = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    (x, y), val = _colours(40, seed=1), _colours(40, seed=2)
    cfg = EvalConfig(**{**CFG, "repeats": 1, "epochs": 2, "batch_size": 64})  # a batch larger than the subset
    report = compare_encoders({"random": _encoder()}, "image", (x, y), val, cfg, progress=False)
    assert 0.0 <= report["random"]["finetune_mean"] <= 100.0
    assert list(work.iterdir()) == [] and list(scratch.iterdir()) == []


DDP_SCRIPT = """
import sys
from datetime import timedelta
import torch, torch.distributed as dist
sys.path.insert(0, sys.argv[1])
from test_eval_finetune import _encoder, _colours
from omnimask.evaluation import EvalConfig, finetune_accuracy
from omnimask.training import cleanup, init_distributed

rank, world, _ = init_distributed(timeout_s=60)
assert world == 2
if rank == 0:  # as the pretraining runner: rank 0 evaluates while the others are done
    (x, y), val = _colours(20, seed=1), _colours(20, seed=2)
    cfg = EvalConfig(epochs=2, batch_size=10, warmup_epochs=1)
    acc = finetune_accuracy(_encoder(), "image", (x, y), val, cfg, seed=0)
    assert 0.0 <= acc <= 100.0 and dist.is_initialized() and dist.get_world_size() == 2
dist.barrier()
cleanup()
"""


def test_one_torchrun_rank_finetunes_alone(tmp_path):
    script = tmp_path / "rank0_eval.py"
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"), OMP_NUM_THREADS="1")
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    cmd += [f"--master_port={port}", str(script), str(Path(__file__).parent)]
    proc = subprocess.run(cmd, env=env, timeout=120, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
