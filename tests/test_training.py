"""Training pieces: optimizer groups, lr schedule, sampler, checkpoints and exact resume."""

from __future__ import annotations

import json
import math
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import save_model
from torch import nn
from torch.utils.data import DataLoader, Dataset

from omnimask.training import (
    CheckpointError,
    NonFiniteLossError,
    OptimConfig,
    ResumableSampler,
    SeededDataset,
    TrainConfig,
    Trainer,
    apply_lr,
    build_optimizer,
    capture_rng_state,
    list_checkpoints,
    load_checkpoint,
    lr_at,
    param_groups,
    resolve_checkpoint,
    restore_rng_state,
    save_checkpoint,
)

DIM = 8


class ToyAE(nn.Module):
    """Linear masked autoencoder whose masking and dropout draw from the global torch RNG."""

    modalities = ["x"]

    def __init__(self, nan_at_call: int | None = None) -> None:
        super().__init__()
        self.enc, self.norm, self.dec = nn.Linear(DIM, 16), nn.LayerNorm(16), nn.Linear(16, DIM)
        self.drop = nn.Dropout(0.2)
        self.mask_token = nn.Parameter(torch.zeros(1, DIM))
        self.pos_embed = nn.Parameter(torch.randn(1, DIM) * 0.02)
        self.nan_at_call, self.calls = nan_at_call, 0

    def forward(self, inputs: dict[str, torch.Tensor]) -> SimpleNamespace:
        x = inputs["x"]
        mask = torch.rand(x.shape, device=x.device) < 0.5
        xin = torch.where(mask, self.mask_token.expand_as(x), x) + self.pos_embed
        pred = self.dec(self.drop(self.norm(self.enc(xin)).relu())).float()
        loss = ((pred - x) ** 2 * mask).sum() / mask.sum().clamp(min=1)
        self.calls += 1
        if self.nan_at_call is not None and self.calls >= self.nan_at_call:
            loss = loss * float("nan")
        return SimpleNamespace(loss=loss, losses={"x": loss})  # the model-output contract


class PretrainedToy(ToyAE):
    def save_pretrained(self, directory: str) -> None:  # preferred by save_checkpoint; adds a config
        save_model(self, os.path.join(directory, "model.safetensors"))
        Path(directory, "config.json").write_text(json.dumps({"dim": DIM}))


class NoisyData(Dataset):
    """Fixed points plus augmentation noise from torch, numpy and python ``random``."""

    def __init__(self, n: int = 36) -> None:
        self.data = torch.randn(n, DIM, generator=torch.Generator().manual_seed(123))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        noise = 0.1 * torch.rand(DIM) + 0.01 * float(np.random.rand()) + 0.01 * random.random()
        return {"x": self.data[i] + noise, "label": i % 3, "index": i}


def _cfg(out: Path, **kw) -> TrainConfig:
    base = dict(
        epochs=3,
        max_steps=6,
        batch_size=4,
        accum_steps=2,
        num_workers=0,
        log_every=1,
        checkpoint_every=100,
        keep_checkpoints=2,
        device="cpu",
        progress=False,
    )
    return TrainConfig(output_dir=str(out), **{**base, **kw})


OPTIM = OptimConfig(base_lr=1e-2, warmup_epochs=1.0, min_lr=1e-4, clip_grad=1.0)


def _model(seed: int = 0, **kw) -> ToyAE:
    torch.manual_seed(seed)
    return ToyAE(**kw)


def test_param_groups_and_lr_scaling(caplog):
    model = _model()
    groups = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    no_decay = {names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert decay == {"enc.weight", "dec.weight"}  # 1-D params and named tokens are not decayed
    assert no_decay == {"enc.bias", "dec.bias", "norm.weight", "norm.bias", "mask_token", "pos_embed"}
    with caplog.at_level("INFO"):
        opt = build_optimizer(model, OptimConfig(base_lr=1e-3, betas=(0.8, 0.9)), effective_batch=512)
    assert all(g["lr"] == pytest.approx(2e-3) for g in opt.param_groups)
    assert opt.param_groups[0]["betas"] == (0.8, 0.9)
    assert "effective batch 512" in caplog.text
    opt = build_optimizer(model, OptimConfig(lr=3e-4), effective_batch=512)
    assert all(g["lr"] == 3e-4 for g in opt.param_groups)


def test_warmup_cosine_values():
    kw = dict(base=1.0, min_lr=0.1, warmup_epochs=10, epochs=110)
    assert lr_at(0, **kw) == 0.0
    assert lr_at(5, **kw) == pytest.approx(0.5)
    assert lr_at(10, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.55)  # cosine midpoint
    assert lr_at(110, **kw) == pytest.approx(0.1)
    assert lr_at(200, **kw) == pytest.approx(0.1)
    opt = torch.optim.SGD(
        [{"params": [nn.Parameter(torch.zeros(1))], "lr_scale": 0.5}, {"params": [nn.Parameter(torch.zeros(1))]}],
        lr=1.0,
    )
    apply_lr(opt, 0.2)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.2]


def test_sampler_deterministic_and_epoch_dependent():
    a, b = ResumableSampler(20, seed=3), ResumableSampler(20, seed=3)
    assert list(a) == list(b)
    first = [i for i, _ in a]
    assert sorted(first) == list(range(20))
    a.set_epoch(1)
    assert [i for i, _ in a] != first
    seeds = [s for _, s in a]
    assert len(set(seeds)) == 20 and all(0 <= s < 2**63 for s in seeds)


def test_sampler_set_start_and_rank_sharding():
    s = ResumableSampler(16, seed=5)
    s.set_epoch(2)
    full = list(s)
    s.set_start(6)
    assert list(s) == full[6:] and len(s) == 10
    s.set_epoch(3)  # a new epoch starts from its beginning
    assert len(s) == 16 and list(s) != full
    shards = [[i for i, _ in ResumableSampler(10, seed=1, rank=r, world_size=3)] for r in range(3)]
    assert [len(x) for x in shards] == [3, 3, 3] and len(set(sum(shards, []))) == 9  # disjoint, 1 dropped
    padded = [[i for i, _ in ResumableSampler(10, seed=1, drop_last=False, rank=r, world_size=3)] for r in range(3)]
    assert [len(x) for x in padded] == [4, 4, 4] and set(sum(padded, [])) == set(range(10))


def test_seeded_dataset_independent_of_workers():
    ds = SeededDataset(NoisyData(24))

    def load(workers: int) -> torch.Tensor:
        sampler = ResumableSampler(len(ds), seed=7)
        loader = DataLoader(
            ds, batch_size=4, sampler=sampler, num_workers=workers, generator=torch.Generator().manual_seed(0)
        )
        return torch.cat([b["x"] for b in loader])

    torch.manual_seed(0)
    before = torch.get_rng_state()
    x0 = load(0)
    assert torch.equal(torch.get_rng_state(), before)  # the training RNG stream is untouched
    assert torch.equal(x0, load(2))


def _opt(model: nn.Module) -> torch.optim.Optimizer:
    opt = build_optimizer(model, OPTIM, 8)
    model({"x": torch.randn(4, DIM)}).loss.backward()
    opt.step()
    return opt


def test_checkpoint_atomic_latest_and_pruning(tmp_path):
    opt = _opt(model := _model())
    (tmp_path / "checkpoints" / ".tmp_step_00000099_crash").mkdir(parents=True)  # a crashed save
    for step in (1, 2, 3):
        path = save_checkpoint(
            tmp_path,
            model=model,
            optimizer=opt,
            step=step,
            epoch=0,
            step_in_epoch=step,
            extra={"note": "hi", "sizes": [1, 2]},
            keep=2,
        )
    assert path.name == "step_00000003"
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002", "step_00000003"]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_00000003"
    assert resolve_checkpoint(tmp_path) == path and resolve_checkpoint(path) == path
    state = torch.load(path / "training_state.pt", weights_only=True)
    assert state["step"] == 3 and state["extra"] == {"note": "hi", "sizes": [1, 2]}
    assert set(state["rng"][0]) >= {"torch", "numpy", "python"}
    assert sorted(os.listdir(path)) == ["model.safetensors", "state", "training_state.pt"]
    assert (path / "state" / ".metadata").is_file()  # the DCP shards of model and optimizer


def test_checkpoint_roundtrip_restores_everything(tmp_path):
    opt = _opt(model := _model(0))
    torch.manual_seed(42)
    np.random.seed(1)
    random.seed(2)
    save_checkpoint(tmp_path, model=model, optimizer=opt, step=5, epoch=1, step_in_epoch=2, extra={}, keep=2)
    expect = (torch.rand(3), np.random.rand(3), random.random())
    other_opt = build_optimizer(other := _model(1), OPTIM, 8)
    state = load_checkpoint(tmp_path, other, other_opt)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1]) and expect[2] == got[2]
    state_now, again = capture_rng_state(), (torch.rand(2), np.random.rand(), random.random())
    restore_rng_state(state_now)
    assert torch.equal(again[0], torch.rand(2)) and again[1] == np.random.rand() and again[2] == random.random()
    assert (state["step"], state["epoch"], state["step_in_epoch"]) == (5, 1, 2)
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], other_opt.state_dict()["state"][0]["exp_avg"])


def test_checkpoint_save_pretrained_and_errors(tmp_path):
    model = PretrainedToy()
    path = save_checkpoint(tmp_path, model=model, optimizer=None, step=1, epoch=0, step_in_epoch=1, extra={}, keep=1)
    assert (path / "config.json").is_file()
    load_checkpoint(path, ToyAE())
    with pytest.raises(TypeError, match=r"extra\['obj'\]"):
        save_checkpoint(
            tmp_path, model=model, optimizer=None, step=2, epoch=0, step_in_epoch=2, extra={"obj": object()}, keep=1
        )
    with pytest.raises(
        CheckpointError, match=r"into Linear: RuntimeError: Missing key in checkpoint state_dict: model\.weight"
    ):
        load_checkpoint(path, nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match=str(tmp_path / "nothing")):
        load_checkpoint(tmp_path / "nothing", model)
    (path / "training_state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="training_state.pt"):
        load_checkpoint(tmp_path, model)


def test_resume_reproduces_losses_exactly(tmp_path):
    full = Trainer(_model(), NoisyData(), _cfg(tmp_path / "full"), OPTIM).fit()
    assert full.steps == 6 and len(full.losses) == 6 and full.epochs_done == 1  # 4 steps per epoch
    assert len(set(full.losses)) == 6
    first = Trainer(_model(), NoisyData(), _cfg(tmp_path / "split", max_steps=3), OPTIM).fit()
    assert first.last_checkpoint.endswith("step_00000003")
    # A different init proves the weights come from the checkpoint.
    second = Trainer(_model(seed=99), NoisyData(), _cfg(tmp_path / "split"), OPTIM).fit(resume=True)
    assert second.start_step == 3 and second.steps == 6
    assert first.losses + second.losses == full.losses


def test_resume_exact_with_workers(tmp_path):
    cfg = dict(num_workers=2, max_steps=5, checkpoint_every=2, keep_checkpoints=3)
    full = Trainer(_model(), NoisyData(), _cfg(tmp_path / "full", **cfg), OPTIM).fit()
    first = Trainer(_model(), NoisyData(), _cfg(tmp_path / "split", **cfg), OPTIM).fit()
    assert first.losses == full.losses  # worker processes do not change anything
    ckpt = tmp_path / "split" / "checkpoints" / "step_00000004"
    second = Trainer(_model(seed=5), NoisyData(), _cfg(tmp_path / "other", **cfg), OPTIM).fit(resume=str(ckpt))
    assert second.losses == full.losses[4:]


def test_non_finite_loss_stops_and_keeps_checkpoint(tmp_path):
    hook_steps: list[int] = []
    trainer = Trainer(
        _model(nan_at_call=7),
        NoisyData(),
        _cfg(tmp_path, checkpoint_every=2),
        OPTIM,
        hooks=[lambda tr, step, out: hook_steps.append(step)],
    )
    with pytest.raises(NonFiniteLossError, match=r"step 4 \(epoch 0.*'x': nan.*step_00000002") as err:
        trainer.fit()
    assert err.value.step == 4 and hook_steps == [1, 2, 3]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_00000002"
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002"]
    assert load_checkpoint(tmp_path, ToyAE())["step"] == 2


def test_bf16_and_hooks(tmp_path):
    seen: list[tuple[int, int]] = []
    trainer = Trainer(
        _model(),
        NoisyData(),
        _cfg(tmp_path, bf16=True, max_steps=2, accum_steps=1),
        OPTIM,
        hooks=[lambda tr, step, out: seen.append((step, tr.step))],
    )
    result = trainer.fit()
    assert seen == [(1, 1), (2, 2)] and all(math.isfinite(x) for x in result.losses) and result.samples_per_sec > 0


DDP_SCRIPT = """
import json, sys
from pathlib import Path
import test_training as T
from omnimask.training import Trainer, cleanup, is_main
out, max_steps, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
cfg = T._cfg(Path(out), max_steps=max_steps, epochs=2)
res = Trainer(T._model(), T.NoisyData(40), cfg, T.OPTIM).fit(resume=resume)
if is_main():
    Path(out, f"losses_{max_steps}_{int(resume)}.json").write_text(json.dumps(res.losses))
cleanup()
"""


def test_ddp_two_process_resume(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"), str(Path(__file__).parent)]),
        OMP_NUM_THREADS="1",
    )

    def run(out: str, steps: int, resume: int) -> list[float]:
        # The free port is released before torchrun binds it, so another process can take it in
        # between; only that rendezvous failure is retried (with a new port), nothing else.
        for _ in range(3):
            with socket.create_server(("127.0.0.1", 0)) as sock:  # a free port for the rendezvous
                port = sock.getsockname()[1]
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node=2",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                str(script),
                out,
                str(steps),
                str(resume),
            ]
            proc = subprocess.run(cmd, env=env, timeout=180, capture_output=True, text=True)
            if proc.returncode == 0 or not any(e in proc.stderr for e in ("EADDRINUSE", "address already in use")):
                break
        assert proc.returncode == 0, proc.stderr[-4000:]
        return json.loads(Path(out, f"losses_{steps}_{resume}.json").read_text())

    full = run(str(tmp_path / "full"), 4, 0)
    first = run(str(tmp_path / "split"), 2, 0)
    second = run(str(tmp_path / "split"), 4, 1)
    assert len(full) == 4 and first + second == full
    state = torch.load(tmp_path / "split" / "checkpoints" / "step_00000004" / "training_state.pt", weights_only=True)
    assert state["extra"]["world_size"] == 2 and len(state["rng"]) == 2


def test_weighted_sampler_draws_by_weight_and_resumes_exactly():
    w = torch.tensor([1.0, 0.0, 3.0, 0.0])
    s = ResumableSampler(4, seed=2, weights=w, epoch_samples=4000)  # more draws than items: with replacement
    idx = [i for i, _ in s]
    counts = torch.bincount(torch.tensor(idx), minlength=4).double() / len(idx)
    assert counts[1] == 0 and counts[3] == 0 and abs(float(counts[0]) - 0.25) < 0.03
    again = ResumableSampler(4, seed=2, weights=w, epoch_samples=4000)
    again.set_start(1000)
    assert [i for i, _ in again] == idx[1000:]  # a function of (seed, epoch): resumable
    s.set_epoch(1)
    assert [i for i, _ in s] != idx
    few = ResumableSampler(6, seed=0, weights=torch.ones(6), epoch_samples=4)  # enough items: no repeats
    picks = [i for i, _ in few]
    assert len(picks) == 4 and len(set(picks)) == 4
    with pytest.raises(ValueError, match="one weight per item"):
        ResumableSampler(3, weights=torch.ones(4))
    with pytest.raises(ValueError, match="not all zero"):
        ResumableSampler(2, weights=torch.zeros(2))
    with pytest.raises(ValueError, match="epoch_samples needs weights"):
        ResumableSampler(2, epoch_samples=5)
