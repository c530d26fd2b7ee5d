"""Faults (issue 15): SIGTERM/SIGINT stop with a checkpoint that resumes exactly, a process killed
during a save leaves the previous checkpoint loadable, a non-finite loss on one rank stops every
rank naming the step and the rank, and a sample that fails in a loader worker is named.

The subprocess tests use the tiny ToyAE of test_training (CPU, gloo, two processes under torchrun
where it matters); each takes a few seconds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import IterableDataset

from omnimask.cli import EXIT_DATA, error_line, exit_code
from omnimask.data.errors import DataReadError
from omnimask.data.mixing import MixedDataset
from omnimask.runners.common import runner_main
from omnimask.training import (
    Mixing,
    NonFiniteLossError,
    Trainer,
    TrainingInterrupted,
    list_checkpoints,
    load_checkpoint,
)
from test_training import OPTIM, NoisyData, ToyAE, _cfg, _model

TESTS = Path(__file__).parent
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(TESTS.parent / "src"), str(TESTS)]),
    "OMP_NUM_THREADS": "1",
}


def _latest(out: Path) -> str:
    return (out / "checkpoints" / "latest").read_text().strip()


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the child ended ({proc.returncode}) early: {proc.communicate()[1][-3000:]}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"no {path.name} after {timeout} s")
        time.sleep(0.05)


def _torchrun(script: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 script args`` on a free port (retried only when it was taken)."""
    for _ in range(3):
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={port}", str(script), *args]  # fmt: skip
        proc = subprocess.run(cmd, env=ENV, timeout=timeout, capture_output=True, text=True)
        if not any(e in proc.stderr for e in ("EADDRINUSE", "address already in use")):
            return proc
    return proc


# ---- SIGTERM / SIGINT ------------------------------------------------------------------------------
SIGTERM_CHILD = """
import sys, time
from pathlib import Path
import test_training as T
from omnimask.training import Trainer

out = Path(sys.argv[1])

def hook(trainer, step, _):
    if step == 2:  # tell the test we are running, then wait for its signal (so the stop step is known)
        (out / "ready").write_text("1")
        end = time.monotonic() + 30
        while trainer.stop_requested is None and time.monotonic() < end:
            time.sleep(0.01)

cfg = T._cfg(out, num_workers=2, max_steps=6, checkpoint_every=100, metrics_every=1)
Trainer(T._model(), T.NoisyData(), cfg, T.OPTIM, hooks=[hook]).fit()  # TrainingInterrupted: exit 143
"""


def test_sigterm_saves_a_checkpoint_that_resumes_exactly(tmp_path):
    """SIGTERM to the whole process group (the trainer and its two loader workers, as a scheduler
    sends it): a checkpoint at the step in progress, exit status 143, then --resume continues with
    the losses of an uninterrupted run and one metrics row per step."""
    script, out = tmp_path / "child.py", tmp_path / "run"
    script.write_text(SIGTERM_CHILD)
    out.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    _wait_for(out / "ready", proc)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "interrupted by SIGTERM after optimizer step 3" in err and "step_00000003" in err
    assert _latest(out) == "step_00000003"
    assert load_checkpoint(out, ToyAE())["step"] == 3

    cfg = dict(num_workers=2, max_steps=6, checkpoint_every=100, metrics_every=1)
    full = Trainer(_model(), NoisyData(), _cfg(tmp_path / "full", **cfg), OPTIM).fit()
    rest = Trainer(_model(seed=7), NoisyData(), _cfg(out, **cfg), OPTIM).fit(resume=True)
    assert rest.start_step == 3 and rest.losses == full.losses[3:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows] == full.losses


@contextlib.contextmanager
def _python_sigint():
    """SIGINT as Python sets it in a terminal (KeyboardInterrupt) for the block, whatever the test
    process began with, and checked to be back in place after the run; the process's own after."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_sigint_in_process_stops_with_130_and_restores_the_handlers(tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def hook(trainer, step, _):
        if step == 2:  # Ctrl-C twice (a terminal and torchrun both forward it): still one clean stop
            for _ in range(2):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # let Python run the handler: pending identical signals can coalesce

    trainer = Trainer(_model(), NoisyData(), _cfg(tmp_path, checkpoint_every=100), OPTIM, hooks=[hook])
    with pytest.raises(TrainingInterrupted) as err:
        trainer.fit()
    assert isinstance(err.value, SystemExit) and err.value.code == 130 and err.value.step == 3
    assert err.value.checkpoint == str(tmp_path / "checkpoints" / "step_00000003")
    assert "SIGINT after optimizer step 3" in str(err.value)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before

    def impatient(trainer, step, _):
        if step == 1:  # the third signal does what it did before the run: KeyboardInterrupt
            for _ in range(3):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)

    # What SIGINT did before the run is the process's: Python's KeyboardInterrupt when started from a
    # terminal, but ignored (SIG_IGN) in a process started in the background by a shell without job
    # control ("pytest &", nohup), where the third signal is rightly ignored too. That is why this
    # part failed in full-suite runs started so; it sets Python's handler itself.
    with _python_sigint(), pytest.raises(KeyboardInterrupt):
        Trainer(_model(), NoisyData(), _cfg(tmp_path / "b"), OPTIM, hooks=[impatient]).fit()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_the_third_signal_runs_the_previous_handler_at_once():
    """Called where the signal arrived, not re-sent: a re-sent SIGINT can be handled later inside a
    finaliser, where its KeyboardInterrupt would be swallowed."""
    from omnimask.training.signals import StopSignals

    seen = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with StopSignals() as stop:
            for _ in range(2):
                stop._handle(signal.SIGTERM, None)
            assert stop.requested == signal.SIGTERM and seen == []
            stop._handle(signal.SIGTERM, None)
            assert seen == [signal.SIGTERM]  # synchronously, and the handler is the caller's again
            assert signal.getsignal(signal.SIGTERM) is not stop._handle
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with StopSignals() as stop:
            for _ in range(3):
                stop._handle(signal.SIGTERM, None)  # ignored before the run: still ignored, no exit
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_third_ctrl_c_swallowed_where_it_arrived_still_ends_the_run(tmp_path):
    """The handler can run inside a finaliser, where Python swallows its KeyboardInterrupt: the loop
    raises it again after the step instead of saving and going on."""
    steps = []

    def swallowed(trainer, step, _):
        steps.append(step)
        if step == 1:
            for _ in range(3):
                with contextlib.suppress(KeyboardInterrupt):  # what a finaliser does with it
                    trainer._signals._handle(signal.SIGINT, None)

    with _python_sigint():
        with pytest.raises(KeyboardInterrupt):
            Trainer(_model(), NoisyData(), _cfg(tmp_path), OPTIM, hooks=[swallowed]).fit()
        assert steps == [1] and not (tmp_path / "checkpoints" / "step_00000001").exists()


def test_runner_exits_with_the_signal_status(tmp_path):
    config = tmp_path / "r.yaml"
    config.write_text("{}\n")

    def run(*_):
        raise TrainingInterrupted(signal.SIGTERM, 5, "runs/x/checkpoints/step_00000005")

    with pytest.raises(SystemExit) as err:  # through runner_main's error mapping, to the interpreter
        runner_main(["--config", str(config)], description="test", run=run)
    assert err.value.code == 143


DDP_SIGTERM = """
import json, os, sys, time
from pathlib import Path
import test_training as T
from omnimask.training import Trainer, TrainingInterrupted, barrier, cleanup

out = Path(sys.argv[1])

def hook(trainer, step, _):
    if step == 2:
        tmp = out / f".pid{trainer.rank}"
        tmp.write_text(str(os.getpid()))
        tmp.rename(out / f"pid{trainer.rank}")  # whole when it appears
        end = time.monotonic() + 30
        while trainer.rank == 1 and trainer.stop_requested is None and time.monotonic() < end:
            time.sleep(0.01)  # only rank 1 gets the signal; rank 0 waits in step 3's all-reduce

trainer = Trainer(T._model(), T.NoisyData(40), T._cfg(out, max_steps=6, epochs=2), T.OPTIM, hooks=[hook])
try:
    trainer.fit()
except TrainingInterrupted as err:
    (out / f"rank{trainer.rank}.json").write_text(json.dumps({"code": err.code, "step": err.step}))
    barrier()  # both wrote their result before either exits (torchrun stops the other on an exit)
    cleanup()
    raise
"""


def test_sigterm_on_one_rank_stops_both_at_one_step(tmp_path):
    script, out = tmp_path / "ddp.py", tmp_path / "run"
    script.write_text(DDP_SIGTERM)
    out.mkdir()
    for _ in range(3):
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={port}", str(script), str(out)]  # fmt: skip
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(out / "pid1", proc, timeout=90)
            break
        except AssertionError as e:
            if "address already in use" not in str(e) and "EADDRINUSE" not in str(e):
                raise
    os.kill(int((out / "pid1").read_text()), signal.SIGTERM)
    _, err = proc.communicate(timeout=90)
    results = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert results == [{"code": 143, "step": 3}] * 2, err[-3000:]
    assert _latest(out) == "step_00000003"
    state = load_checkpoint(out, ToyAE())
    assert state["step"] == 3 and state["extra"]["world_size"] == 2
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # rank 0 alone writes the metrics


# ---- kill -9 during a save -------------------------------------------------------------------------
KILL_CHILD = """
import os, sys, time
from pathlib import Path
import test_training as T
from omnimask.training import Trainer, checkpoint as C

out, phase = Path(sys.argv[1]), sys.argv[2]

def stall():
    (out / "stalled").write_text("1")
    time.sleep(120)  # killed here

def half_written(model, path, **kw):  # the weights file half written when the process dies
    REAL(model, path, **kw)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    stall()

REAL, REAL_SHARDS = C.save_model, C.dcp.save

def half_written_shards(state, checkpoint_id, **kw):  # a shard file half written
    REAL_SHARDS(state, checkpoint_id=checkpoint_id, **kw)
    shard = Path(checkpoint_id) / "__0_0.distcp"
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) // 2)
    stall()

def hook(trainer, step, _):
    if step == 3:  # the save at step 2 is whole; the one at step 4 dies
        if phase == "weights":
            C.save_model = half_written
        elif phase == "shards":
            C.dcp.save = half_written_shards
        else:  # the step folder is in place, `latest` not yet rewritten
            C._write_latest = lambda root, name: stall()

Trainer(T._model(), T.NoisyData(), T._cfg(out, max_steps=6, checkpoint_every=2), T.OPTIM, hooks=[hook]).fit()
"""


@pytest.mark.parametrize("phase", ["shards", "weights", "latest"])
def test_kill_9_during_a_save_keeps_the_previous_checkpoint(tmp_path, phase):
    script, out = tmp_path / "child.py", tmp_path / "run"
    script.write_text(KILL_CHILD)
    out.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), str(out), phase], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for(out / "stalled", proc)
    proc.kill()  # SIGKILL: no handler, no clean-up
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    root = out / "checkpoints"
    assert _latest(out) == "step_00000002"
    if phase in ("shards", "weights"):
        assert any(p.name.startswith(".tmp_step_00000004_") for p in root.iterdir())  # the half-written save
        assert [p.name for p in list_checkpoints(out)] == ["step_00000002"]
    else:
        assert (root / "step_00000004").is_dir()  # complete, but `latest` was not moved to it
    assert load_checkpoint(out, ToyAE())["step"] == 2

    full = Trainer(_model(), NoisyData(), _cfg(tmp_path / "full", max_steps=6, checkpoint_every=2), OPTIM).fit()
    rest = Trainer(_model(), NoisyData(), _cfg(out, max_steps=6, checkpoint_every=2), OPTIM).fit(resume=True)
    assert rest.start_step == 2 and rest.losses == full.losses[2:]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # the next save cleaned up
    assert _latest(out) == "step_00000006"


# ---- non-finite loss on one rank -------------------------------------------------------------------
DDP_NAN = """
import json, os, sys
from pathlib import Path
import test_training as T
from omnimask.runners.common import runner_main
from omnimask.training import NonFiniteLossError, Trainer, barrier, cleanup

out = Path(sys.argv[1])
rank = int(os.environ["RANK"])

class NaNOnRank1(T.NoisyData):  # rank 1's 5th and later samples are NaN: its step 3 (2 samples a step)
    calls = 0

    def __getitem__(self, i):
        item = super().__getitem__(i)
        self.calls += 1
        if rank == 1 and self.calls > 4:
            item["x"] = item["x"] * float("nan")
        return item

def run(config, overrides, resume):
    cfg = T._cfg(out, max_steps=6, epochs=2, batch_size=2, accum_steps=1, checkpoint_every=2)
    try:
        Trainer(T._model(), NaNOnRank1(40), cfg, T.OPTIM).fit(resume=resume)
    except NonFiniteLossError as err:
        (out / f"error{rank}.txt").write_text(str(err))
        raise

code = runner_main(["--config", sys.argv[2]], description="nan test", run=run)
(out / f"exit{rank}.txt").write_text(str(code))
barrier()
cleanup()
sys.exit(code)
"""


def test_non_finite_loss_on_one_rank_stops_every_rank(tmp_path):
    script, out, config = tmp_path / "ddp.py", tmp_path / "run", tmp_path / "r.yaml"
    script.write_text(DDP_NAN)
    config.write_text("{}\n")
    out.mkdir()
    proc = _torchrun(script, str(out), str(config))
    assert proc.returncode != 0
    for rank in (0, 1):
        assert (out / f"exit{rank}.txt").read_text() == "1", proc.stderr[-3000:]
        message = (out / f"error{rank}.txt").read_text()
        assert "non-finite loss nan at optimizer step 3 (epoch 0" in message
        assert "on rank 1 of 2" in message and "step_00000002" in message
    assert "training stopped: non-finite loss nan at optimizer step 3" in proc.stderr
    assert _latest(out) == "step_00000002"


def test_non_finite_loss_names_step_in_one_process(tmp_path):
    trainer = Trainer(_model(nan_at_call=5), NoisyData(), _cfg(tmp_path, accum_steps=1), OPTIM)
    with pytest.raises(NonFiniteLossError, match=r"step 5 \(epoch 0, step 5/9 of the epoch\); per-modality") as err:
        trainer.fit()
    assert err.value.step == 5 and err.value.ranks == [0]


# ---- a sample that fails to load -------------------------------------------------------------------
class ImageReadError(DataReadError):
    """What a reader raises (a DataReadError subclass), with the attribute the runner reads."""


class Unrebuildable(Exception):
    """An error that cannot be rebuilt from its message (what a loader worker sends back)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")


class Failing(NoisyData):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def __getitem__(self, i: int) -> dict:
        if i % 5 == 3:
            path = f"/data/img_{i}.png"
            if self.kind == "reader":
                err = ImageReadError(f"cannot read image {path}: truncated file")
                err.after_skipping = True
                raise err
            if self.kind == "custom":
                raise Unrebuildable(path, "bad header")
            raise ZeroDivisionError("division by zero")
        return super().__getitem__(i)


@pytest.mark.parametrize("kind", ["reader", "custom", "plain"])
def test_a_failing_loader_worker_names_the_sample(tmp_path, kind):
    trainer = Trainer(_model(), Failing(kind), _cfg(tmp_path, num_workers=2), OPTIM)
    with pytest.raises(Exception) as info:
        trainer.fit()
    err = info.value
    line = error_line(err)
    index = int(line.rsplit("training sample ", 1)[1].rstrip(")"))
    assert index % 5 == 3 and "Traceback" not in line and "DataLoader worker" not in line
    if kind == "reader":  # its own type and attributes: the runner's one-line error, exit status 3
        assert type(err) is ImageReadError and err.after_skipping and exit_code(err) == EXIT_DATA
        assert line == f"cannot read image /data/img_{index}.png: truncated file (training sample {index})"
    elif kind == "custom":
        assert line == f"Unrebuildable: /data/img_{index}.png: bad header (training sample {index})"
    else:
        assert type(err) is ZeroDivisionError and line == f"division by zero (training sample {index})"
    trace = str(err.__cause__)  # the worker's traceback, shown with --debug
    assert trace.startswith("in a DataLoader worker:") and 'test_faults.py", line' in trace


def test_a_failing_mixed_source_names_source_and_item(tmp_path):
    class Bad(NoisyData):
        def __getitem__(self, i):
            raise ZeroDivisionError("boom")

    data = MixedDataset([NoisyData(), Bad(12)], ["good", "bad"], [["x"], ["x"]])
    trainer = Trainer(_model(), data, _cfg(tmp_path, accum_steps=1), OPTIM, mixing=Mixing([1.0, 1.0], [4, 4]))
    with pytest.raises(ZeroDivisionError, match=r"boom \(training sample (\d+): source 'bad', item \d+\)"):
        trainer.fit()


class Stream(IterableDataset):
    def __iter__(self):
        for _ in range(5):  # the error falls in a partial batch, which drop_last would discard
            yield {"x": torch.randn(8)}
        raise ImageReadError("cannot read shard-000.tar member 5.png: truncated")


def test_a_failing_stream_raises_in_the_main_process(tmp_path):
    trainer = Trainer(_model(), Stream(), _cfg(tmp_path, num_workers=1, epoch_samples=32), OPTIM)
    with pytest.raises(ImageReadError, match=r"^cannot read shard-000.tar member 5.png: truncated$"):
        trainer.fit()
