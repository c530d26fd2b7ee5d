"""How a run stops: a scheduler's signal, a non-finite loss on any rank, a sample that cannot be loaded.

- **SIGTERM / SIGINT** (how schedulers preempt a job, and Ctrl-C): while :meth:`Trainer.fit` runs,
  :class:`StopSignals` only records the signal. The trainer folds it into the all-reduce every
  optimizer step already makes, so every rank learns of it at the same step; they finish that
  step, write a checkpoint and raise :class:`TrainingInterrupted`, a ``SystemExit`` with the
  conventional status ``128 + signal`` (130 for SIGINT, 143 for SIGTERM). A third signal gives up
  waiting and does what the signal did before the run (a KeyboardInterrupt, or the process ends).
- **Non-finite loss**: :func:`non_finite_error` builds the :class:`NonFiniteLossError` every rank
  raises at the same step, naming the step and the ranks whose own loss was NaN/inf.
- **A sample that fails to load**: a DataLoader worker hands an exception back to the main process
  as its type and a traceback *text*; a custom exception class often cannot be rebuilt from that
  text, and the one-line error would be the whole traceback. :class:`GuardedDataset` (and
  :class:`GuardedStream`, :class:`GuardedCollate`) catch the error where it happens and return it
  as the batch (a :class:`SampleFailure`); :func:`raise_failures` raises it again in the main
  process, with its own type and attributes, its message naming the sample.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
from torch.utils.data import Dataset, IterableDataset

from .distributed import all_reduce_sum

__all__ = [
    "TrainingInterrupted",
    "StopSignals",
    "ignore_stop_signals",
    "WORKER_GRACE_S",
    "NonFiniteLossError",
    "non_finite_error",
    "StepStats",
    "reduce_step",
    "SampleFailure",
    "GuardedDataset",
    "GuardedStream",
    "GuardedCollate",
    "raise_failures",
]

logger = logging.getLogger(__name__)


class TrainingInterrupted(SystemExit):
    """SIGTERM/SIGINT stopped training at ``step``, after writing ``checkpoint``.

    A ``SystemExit`` with ``code = 128 + signum`` (143 for SIGTERM, 130 for SIGINT): left uncaught,
    the process ends with that status, the way a process killed by the signal would report it, but
    with the checkpoint written. ``str(err)`` is the message.
    """

    def __init__(self, signum: int, step: int, checkpoint: str | None) -> None:
        super().__init__(128 + int(signum))
        self.signum, self.step, self.checkpoint = int(signum), step, checkpoint
        self.signal_name = signal.Signals(signum).name
        self.message = (
            f"training interrupted by {self.signal_name} after optimizer step {step}; checkpoint: "
            f"{checkpoint or 'none'}; continue with --resume (exit status {128 + int(signum)})"
        )

    def __str__(self) -> str:
        return self.message


class StopSignals:
    """While entered (in the main thread), SIGTERM and SIGINT set :attr:`requested` instead of
    ending the process; the previous handlers come back on exit.

    A process forked meanwhile inherits the handler and ignores the signals (the trainer's loader
    workers ignore them anyway, see :func:`ignore_stop_signals`).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested: int | None = None  # the first signal received
        self.received = 0
        self.escalated = False  # a third SIGINT went to Python's handler: KeyboardInterrupt is due
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()

    def __enter__(self) -> StopSignals:
        self.requested, self.received, self.escalated, self._pid = None, 0, False, os.getpid()
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:  # a forked loader worker
            return
        self.received += 1
        if self.requested is None:
            self.requested = signum
            logger.warning(
                "%s received: stopping after this optimizer step with a checkpoint", signal.Signals(signum).name
            )
        elif self.received >= 3:
            logger.warning("%s received a third time: not waiting for the checkpoint", signal.Signals(signum).name)
            previous = self._previous.get(signum)
            self._restore()
            if callable(previous):  # Python's own (KeyboardInterrupt) or the caller's: raised right here
                self.escalated = previous is signal.default_int_handler
                previous(signum, frame)
            elif previous != signal.SIG_IGN:  # the default action (the process ends)
                signal.raise_signal(signum)

    def raise_escalated(self) -> None:
        """Raise the third SIGINT's KeyboardInterrupt again from the caller's frame. A signal handler
        runs wherever the main thread is, and where that is a finaliser or a weakref callback Python
        swallows what it raises ("Exception ignored in ..."): the training loop calls this after
        every step so that the third Ctrl-C still ends the run."""
        if self.escalated:
            self.escalated = False
            raise KeyboardInterrupt


#: How long a loader worker outlives a stop signal: its rank may still need this step's batches.
WORKER_GRACE_S = 120.0


def ignore_stop_signals(worker_id: int = 0) -> None:
    """The ``worker_init_fn`` of the trainer's loaders: a loader worker outlives SIGTERM and SIGINT.

    torchrun stops a rank by signalling its whole process group, a scheduler may signal every
    process of a job, and a terminal's Ctrl-C reaches the foreground group: a worker killed at once
    would fail the batch its rank needs to finish the step and save. The trainer shuts its workers
    down before it saves; one still there :data:`WORKER_GRACE_S` after the signal (a worker stuck
    in a read that a ``terminate()`` meant to end) exits then.
    """
    for sig in StopSignals.SIGNALS:
        signal.signal(sig, _worker_signal)


def _worker_signal(signum: int, frame: Any) -> None:
    if not any(t.name == "omnimask-stop-grace" for t in threading.enumerate()):
        timer = threading.Timer(WORKER_GRACE_S, os._exit, args=(128 + signum,))
        timer.name, timer.daemon = "omnimask-stop-grace", True
        timer.start()


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; training stopped before the optimizer applied the step.

    ``ranks``: the ranks whose own loss was non-finite (``[0]`` in a single process).
    """

    def __init__(
        self,
        message: str,
        step: int,
        epoch: int,
        losses: dict[str, float],
        last_checkpoint: str | None,
        ranks: list[int] | None = None,
    ):
        super().__init__(message)
        self.step, self.epoch, self.losses, self.last_checkpoint = step, epoch, losses, last_checkpoint
        self.ranks = list(ranks or [])


@dataclass
class StepStats:
    """One optimizer step's stats, the same on every rank (see :func:`reduce_step`)."""

    loss: float  # mean over ranks
    losses: dict[str, float]  # per-modality means
    skipped: int  # unreadable samples skipped, summed over ranks
    stop: int | None  # the signal some rank got (SIGTERM before SIGINT), or None
    bad_ranks: list[int] | None  # a mean is NaN/inf: the ranks whose own loss was; None when finite


def reduce_step(
    total: torch.Tensor,
    parts: dict[str, torch.Tensor],
    skipped: torch.Tensor,
    *,
    rank: int = 0,
    world_size: int = 1,
    signum: int | None = None,
) -> StepStats:
    """Agree on a step over ranks with one all-reduce (and one host sync): this rank's loss
    ``total``, per-modality ``parts`` and ``skipped`` count, its non-finite flag and the signal it
    got (``signum``) travel in one vector."""
    names = sorted(parts)
    local = torch.stack([total, *(parts[n] for n in names)])
    flags = torch.zeros(world_size + 2, device=local.device)  # per rank: non-finite; then SIGTERM, SIGINT
    flags[rank] = (~torch.isfinite(local)).any().float()
    flags[-2], flags[-1] = float(signum == signal.SIGTERM), float(signum == signal.SIGINT)
    stats = torch.cat([local, skipped.reshape(1).to(local), flags])
    if world_size > 1:
        stats = all_reduce_sum(stats)
        stats[: len(local)] /= world_size
    values = stats.tolist()
    k = len(local)
    loss, losses, summed = values[0], dict(zip(names, values[1:k])), values[k + 1 :]
    stop = signal.SIGTERM if summed[-2] > 0 else signal.SIGINT if summed[-1] > 0 else None
    finite = math.isfinite(loss) and all(math.isfinite(v) for v in losses.values())
    bad = None if finite else [r for r, flag in enumerate(summed[:-2]) if flag > 0]
    return StepStats(loss, losses, round(values[k]), stop, bad)


def non_finite_error(
    got: StepStats,
    step: int,
    epoch: int,
    position: tuple[int, int],
    world_size: int,
    last_checkpoint: str | None,
) -> NonFiniteLossError:
    """The error for a non-finite mean loss at optimizer ``step`` (1-based; ``position``: the step
    within the epoch and the steps per epoch), naming the ranks whose own loss was non-finite."""
    ranks, where = got.bad_ranks or [], ""
    if world_size > 1:
        if ranks:
            where = f" on rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))} of {world_size}"
        else:  # every rank's own loss was finite: their sum overflowed
            where = f" (the mean over {world_size} ranks overflowed; each rank's loss was finite)"
    return NonFiniteLossError(
        f"non-finite loss {got.loss} at optimizer step {step} (epoch {epoch}, step {position[0]}/{position[1]} "
        f"of the epoch){where}; per-modality losses {got.losses}; the step was not applied and nothing was saved; "
        f"last good checkpoint: {last_checkpoint or 'none (no checkpoint written yet)'}. Lower the lr, set "
        "optim.clip_grad or check the data, then resume from that checkpoint.",
        step,
        epoch,
        got.losses,
        last_checkpoint,
        ranks=ranks,
    )


class _WorkerTraceback(Exception):
    """The traceback of an error raised in a DataLoader worker (the cause of the error re-raised)."""


class SampleFailure:
    """An error raised while loading a sample (or collating a batch), carried back as the batch.

    ``where`` names the sample (``training sample 7``); ``None`` when unknown (a stream, collation).
    """

    def __init__(self, error: BaseException, where: str | None) -> None:
        self.where, self.trace = where, traceback.format_exc()
        try:  # it crosses a process boundary: keep it only if it survives the trip
            pickle.loads(pickle.dumps(error))
            self.error: BaseException = error
        except Exception:  # noqa: BLE001 - any unpicklable error becomes a plain one with its text
            self.error = RuntimeError(f"{type(error).__name__}: {error}")

    def reraise(self) -> NoReturn:
        err = self.error
        if self.where and self.where not in str(err):
            if len(err.args) == 1 and isinstance(err.args[0], str):
                err.args = (f"{err.args[0]} ({self.where})",)
            elif hasattr(err, "add_note"):
                err.add_note(self.where)
        if err.__traceback__ is None:  # unpickled in the main process: show the worker's traceback
            raise err from _WorkerTraceback("in a DataLoader worker:\n" + self.trace)
        raise err


def _describe(dataset: Any, index: Any) -> str:
    """``training sample 7``, and for a mixed dataset the source and its item."""
    d = dataset
    while d is not None:
        if callable(getattr(d, "locate", None)) and hasattr(d, "names") and isinstance(index, int):
            try:
                s, i = d.locate(index)
                return f"training sample {index}: source {d.names[s]!r}, item {i}"
            except Exception:  # noqa: BLE001 - naming the sample must not hide the error
                break
        d = getattr(d, "dataset", None)
    return f"training sample {index}"


class GuardedDataset(Dataset):
    """``dataset[key]``, or a :class:`SampleFailure` naming the sample when it raises."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        try:
            return self.dataset[key]
        except Exception as err:  # noqa: BLE001 - re-raised in the main process by raise_failures
            index = key[0] if isinstance(key, (tuple, list)) else key
            return SampleFailure(err, _describe(self.dataset, index))


class GuardedStream(IterableDataset):
    """The items of a streaming dataset; after an error, that :class:`SampleFailure` for ever (so it
    fills a batch even with ``drop_last``; the main process raises at the first one)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __iter__(self) -> Iterator[Any]:
        items = iter(self.dataset)
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except Exception as err:  # noqa: BLE001 - re-raised in the main process by raise_failures
                failure = SampleFailure(err, None)
                while True:
                    yield failure
            yield item


class GuardedCollate:
    """``collate_fn(items)``; a failed item, or an error of the collation, becomes the batch."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any]) -> None:
        self.collate_fn = collate_fn

    def __call__(self, items: list[Any]) -> Any:
        for item in items:
            if isinstance(item, SampleFailure):
                return item
        try:
            return self.collate_fn(items)
        except Exception as err:  # noqa: BLE001 - re-raised in the main process by raise_failures
            return SampleFailure(err, None)


def raise_failures(batches: Iterable[Any]) -> Iterator[Any]:
    """``batches``, raising the error of the first :class:`SampleFailure` among them."""
    for batch in batches:
        if isinstance(batch, SampleFailure):
            batch.reraise()
        yield batch
