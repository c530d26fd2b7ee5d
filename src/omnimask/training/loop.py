"""The training loop: gradient accumulation, bf16 autocast, DDP or FSDP2, checkpoints and exact resume.

Exact resume rests on three rules followed here: every random draw in the main process comes
from RNG state that is checkpointed (torch/numpy/python, per rank); data order and augmentation
are functions of (seed, epoch, index) only (see :mod:`.sampler`); and the lr is a pure function of
the optimizer step (see :mod:`.schedule`). Checkpoints are taken only at optimizer-step
boundaries, after the step's hooks ran, so a resumed run replays the rest bit for bit.

Masks: with ``train.mask_seeding: sample`` (the default where it applies) each sample's mask is
drawn from a seed of its own, a function of (seed, epoch, index), like its augmentation. A run then
computes the same thing at any world size: 2 processes x batch 4 equal 1 process x batch 8 (up to
float summation order), and a checkpoint resumes exactly on another number of processes.
``rank`` draws each rank's masks for the whole batch from that rank's RNG stream (seeded by
``seed + rank``): different across ranks, exactly reproducible for one world size.

``train.mask_repeats: k`` uses each loaded sample k times per step, each copy masked differently
(:mod:`.repeat`); ``train.compile`` runs the step through :func:`torch.compile` (:mod:`.compiling`).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import IterableDataset

from ..registry import ConfigError
from ..run_config import to_dict
from .checkpoint import capture_rng_state, load_checkpoint, save_checkpoint
from .compiling import CompileTimer, compile_module
from .distributed import all_gather_object, init_distributed, pick_device, to_device
from .loaders import Feed, Mixing, mixed_feed, plain_feed, stream_feed
from .metrics import Reporter
from .optim import OptimConfig, build_optimizer, resolve_lr
from .repeat import check_mask_repeats, repeat_rows
from .sampler import mix_seed
from .schedule import apply_lr, schedule_lr
from .signals import (
    NonFiniteLossError,
    StopSignals,
    TrainingInterrupted,
    non_finite_error,
    raise_failures,
    reduce_step,
)
from .strategy import (
    check_strategy,
    enable_activation_checkpointing,
    full_state_dict,
    gradient_sync,
    is_sharded,
    replicate,
    total_grad_norm,
    wrap_model,
)

__all__ = ["TrainConfig", "TrainResult", "Trainer", "NonFiniteLossError", "TrainingInterrupted"]

logger = logging.getLogger(__name__)
Hook = Callable[["Trainer", int, Any], None]


@dataclass
class TrainConfig:
    """Loop settings (the ``train`` recipe section)."""

    epochs: int = 800
    max_steps: int | None = None  # optimizer steps; stops early (the schedule still follows epochs)
    batch_size: int = 64  # per process, per micro-step
    accum_steps: int = 1
    # bfloat16 autocast (fp32 master weights, gradients, optimizer state and loss): "auto" = on
    # CUDA devices that support bf16, off on the CPU (measured slower there for the small embedded
    # configs: benchmarks/bench_precision.py); true/false force it.
    bf16: bool | Literal["auto"] = "auto"
    seed: int = 0
    num_workers: int = 2
    output_dir: str = "runs/default"
    log_every: int = 10  # optimizer steps
    checkpoint_every: int = 500  # optimizer steps; a final checkpoint is always written
    keep_checkpoints: int = 2
    device: str = "auto"  # auto -> cuda if available else cpu
    progress: bool = True
    # Draw masks per sample in the loader workers (VideoMAE) instead of per batch on the device.
    masks_in_loader: bool = False
    # Draw each epoch by the dataset's sample_weights() (AudioMAE's balanced sampling of AudioSet),
    # epoch_samples items per epoch (default: the dataset length). For a dataset that streams (tar
    # shards), epoch_samples is required: the samples per epoch over all processes.
    balanced_sampling: bool = False
    epoch_samples: int | None = None
    # Metrics rows (metrics.jsonl, metrics.csv, TensorBoard; see .metrics), rank 0: every this many
    # optimizer steps (None = log_every, 0 = none); TensorBoard when its package is installed.
    metrics_every: int | None = None
    tensorboard: bool = True
    peak_tflops: float | None = None  # one device's peak for MFU (default: a measured matmul rate)
    # Under torchrun: ddp (whole model per process) or fsdp (FSDP2: parameters, gradients and
    # optimizer state sharded; bf16 gathers with train.bf16). See .strategy and docs/distributed.md.
    strategy: str = "ddp"
    activation_checkpointing: bool = False  # recompute each block in the backward pass (less memory)
    cpu_offload: bool = False  # fsdp: keep parameter shards and the optimizer step on the CPU
    # Where masks come from: sample (each sample's own seed: the same at any world size), rank
    # (each rank's RNG stream), auto (sample where the model draws masks per modality and sample;
    # rank for mixed runs and multimodal token budgets, whose masks couple a batch's modalities).
    mask_seeding: str = "auto"
    # Use each loaded sample this many times per step, each copy with its own mask (see .repeat):
    # loading and augmentation are paid once. samples/s and the lr count loaded samples.
    mask_repeats: int = 1
    compile: bool = False  # torch.compile the module the step runs (checkpoints keep plain names)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did. ``losses`` covers only the steps run by this call."""

    losses: list[float] = field(default_factory=list)  # accumulated mean loss per optimizer step
    steps: int = 0  # global optimizer step reached
    epochs_done: int = 0  # complete epochs
    output_dir: str = ""
    last_checkpoint: str | None = None
    samples_per_sec: float = 0.0
    start_step: int = 0  # global step this call started from (> 0 after a resume)
    skipped: int = 0  # unreadable samples the dataset skipped (its "skipped" item field), whole run
    # Mixed runs: per source {"samples": seen over all ranks, "epochs": passes over it}, whole run.
    sources: dict[str, dict[str, float]] = field(default_factory=dict)
    # train.compile: first step's time over the steady step time (the compiling), this call's steps.
    compile_seconds: float | None = None


def resolve_bf16(setting: bool | str, device: torch.device) -> bool:
    """``train.bf16`` for ``device``: ``"auto"`` is bf16 on a CUDA device that supports it, fp32 elsewhere."""
    if setting == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    if not isinstance(setting, bool):
        raise ConfigError(f"train.bf16 must be true, false or auto, got {setting!r}")
    return setting


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (1 << 32))


class Trainer:
    """Masked-modeling trainer: ``out = model({modality: tensor})``, minimising ``out.loss``.

    Args:
        model: returns an object with ``.loss`` (scalar) and ``.losses`` (per-modality scalars).
            A model with a ``label_key`` attribute (a supervised model) also gets
            ``labels=batch[label_key]``.
        dataset: map-style; items are dicts holding at least the ``modalities`` keys.
        train, optim: loop and optimizer settings.
        collate_fn: batch collation (default :func:`omnimask.data.collate_repeated`:
            ``default_collate`` after flattening list items, i.e. repeated samples). Items may carry ``masks``/``decode_masks`` dicts (passed to the
            model) and a ``skipped`` count (summed into :attr:`TrainResult.skipped`).
        hooks: called as ``hook(trainer, step, out)`` after every optimizer step on every rank.
        modalities: input keys fed to the model (default ``model.modalities``).
        param_groups: optimizer parameter groups (default: decay / no-decay split of the model's
            parameters); a group's ``lr_scale`` scales the scheduled lr (layer-wise decay).
        mixing: draw ``dataset`` (a :class:`~omnimask.data.mixing.MixedDataset`) by these
            weights and per-source batch sizes; batches may then carry any subset of the
            modalities. An epoch is the number of steps that uses, in expectation, as many
            samples as the sources hold; the lr scales with the expected samples per step.
        distributed: join the torchrun process group (DDP). ``False`` trains in this process
            alone even inside a launch: work one rank does by itself (the runner's evaluation on
            rank 0) must not wait on collectives nobody else will answer.
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Any,
        train: TrainConfig,
        optim: OptimConfig,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        hooks: Sequence[Hook] = (),
        modalities: Sequence[str] | None = None,
        param_groups: list[dict] | None = None,
        distributed: bool = True,
        mixing: Mixing | None = None,
    ) -> None:
        self.train_cfg, self.optim_cfg, self.hooks = train, optim, list(hooks)
        if train.batch_size < 1 or train.accum_steps < 1:
            raise ValueError("batch_size and accum_steps must be >= 1")
        check_strategy(train.strategy, mixed=mixing is not None, cpu_offload=train.cpu_offload)
        self.rank, self.world_size, self.local_rank = init_distributed() if distributed else (0, 1, 0)
        self.device = pick_device(train.device, self.local_rank)
        train = self.train_cfg = dataclasses.replace(train, bf16=resolve_bf16(train.bf16, self.device))
        self.model = model.to(self.device)
        self.modalities = list(modalities if modalities is not None else getattr(model, "modalities", None) or [])
        if not self.modalities:
            raise ValueError("no modalities: pass modalities=... or give the model a `modalities` list")
        self.output_dir = Path(train.output_dir)
        if train.masks_in_loader:
            if mixing is not None:
                raise ValueError("train.masks_in_loader is not supported in a mixed run: masks are drawn in the model")
            dataset = self._loader_masks(dataset)
        self.mixing = mixing
        self.mask_repeats = check_mask_repeats(train.mask_repeats, masks_in_loader=train.masks_in_loader,
                                               supervised=getattr(model, "label_key", None) is not None)  # fmt: skip
        self.streaming = isinstance(dataset, IterableDataset)
        self.mask_keys = self._mask_keys(train.mask_seeding)
        self.feed = self._feed(dataset, collate_fn)
        self.loader, self.sampler, self._loader_gen = self.feed.loader, self.feed.sampler, self.feed.generator
        self.steps_per_epoch, self.effective_batch = self.feed.steps_per_epoch, self.feed.effective_batch
        self.total_steps = self._total_steps(self.steps_per_epoch)
        if mixing is not None:
            self.source_names = list(dataset.names)
        if train.activation_checkpointing:
            enable_activation_checkpointing(self.model)
        names = {id(p): n for n, p in self.model.named_parameters()}
        # A mixed run's batches may lack some modalities, whose tokenizer and decoder then get no
        # gradient on that step: DDP must not wait for them (they stay untouched, not zeroed).
        self._net: nn.Module = wrap_model(self.model, train.strategy, world_size=self.world_size, device=self.device,
                                          bf16=train.bf16, cpu_offload=train.cpu_offload,
                                          find_unused_parameters=mixing is not None)  # fmt: skip
        self.sharded = is_sharded(self.model)
        # The module each step calls; self._net stays the (DDP) wrapper for gradient_sync, self.model
        # the plain model for checkpoints.
        self._step_net = compile_module(self._net) if train.compile else self._net
        self._compile_timer: CompileTimer | None = None  # set by fit() with train.compile
        if param_groups is not None and self.sharded:  # FSDP replaced the parameters: the same groups, by name
            now = dict(self.model.named_parameters())
            param_groups = [{**g, "params": [now[names[id(p)]] for p in g["params"]]} for g in param_groups]
        self.optimizer = build_optimizer(self.model, optim, self.effective_batch, groups=param_groups)
        self.peak_lr = resolve_lr(optim, self.effective_batch)
        self.step = self.epoch = self.step_in_epoch = 0
        self.skipped = 0
        self.last_losses: dict[str, float] = {}
        self.last_checkpoint: str | None = None
        self._signals = StopSignals()
        self._stopping: int | None = None  # the signal every rank agreed to stop on

    def _total_steps(self, steps_per_epoch: int) -> int:
        total = self.train_cfg.epochs * steps_per_epoch
        return total if self.train_cfg.max_steps is None else min(total, self.train_cfg.max_steps)

    def _feed(self, dataset: Any, collate_fn: Callable[[list[Any]], Any] | None) -> Feed:
        train, pin = self.train_cfg, self.device.type == "cuda"
        if self.mixing is not None:
            return mixed_feed(dataset, self.mixing, train, self.rank, self.world_size, self.modalities, collate_fn,
                              pin, self._total_steps)  # fmt: skip
        if self.streaming:
            return stream_feed(dataset, train, self.world_size, collate_fn, pin)
        return plain_feed(dataset, train, self.rank, self.world_size, collate_fn, pin, self.mask_keys)

    def _epoch_batches(self) -> Iterator[Any]:
        """This epoch's batches from the current step on (streams: replayed from the epoch's start,
        the consumed batches skipped, and started over when they run out)."""
        cfg = self.train_cfg
        self._loader_gen.manual_seed(mix_seed(cfg.seed, self.epoch))
        if not self.streaming:
            self.sampler.set_epoch(self.epoch)
            if self.mixing is not None:
                self.sampler.set_start_step(self.step_in_epoch)
            else:
                self.sampler.set_start(self.step_in_epoch * cfg.accum_steps * cfg.batch_size)
            yield from raise_failures(self.loader)  # a sample that failed to load raises here, named
            return
        skip, passes = self.step_in_epoch * cfg.accum_steps, 0
        while True:
            got = 0
            for batch in raise_failures(self.loader):
                got += 1
                if skip:
                    skip -= 1
                    continue
                yield batch
            passes += 1
            if got == 0 or passes > 1000:
                raise ValueError("the training stream yields no batch (empty shards, or fewer samples than one batch)")

    def _mask_keys(self, seeding: str) -> list[str]:
        """The modalities whose masks come from per-sample seeds (``train.mask_seeding``)."""
        if seeding not in ("auto", "sample", "rank"):
            raise ConfigError(f"train.mask_seeding must be auto, sample or rank, got {seeding!r}")
        draws = getattr(self.model, "maskings", None) is not None  # the model draws its own masks
        why = None
        if not draws:
            why = "the model draws no masks of its own (only OmniMaskForPreTraining-like models take mask seeds)"
        elif self.mixing is not None or self.streaming:
            why = "a mixed or streamed run draws masks from each rank's stream"
        elif getattr(self.model, "budget", None) is not None:
            why = "a multimodal token budget draws a batch's masks together"
        elif self.train_cfg.masks_in_loader:
            why = "train.masks_in_loader already draws per-sample masks"
        if seeding == "rank" or (seeding == "auto" and why is not None):
            return []
        if why is not None:
            raise ConfigError(f"train.mask_seeding: sample does not apply here: {why}")
        return list(self.modalities)

    def _loader_masks(self, dataset: Any) -> Any:
        from .loader_masks import LoaderMasks

        maskings = getattr(self.model, "maskings", None)
        tokenizers = getattr(getattr(self.model, "omnimask", None), "tokenizers", None)
        if maskings is None or tokenizers is None:
            raise ValueError(
                "train.masks_in_loader needs a model with per-modality `maskings` and tokenizers (OmniMaskForPreTraining)"
            )
        # Loader masks are made for the grid the model was built for (inputs at their base size).
        return LoaderMasks(dataset, {k: (maskings[k], tuple(tokenizers[k].base_grid)) for k in self.modalities})

    @property
    def is_main(self) -> bool:
        """Rank 0 of this trainer's processes (it logs, shows progress and writes checkpoints)."""
        return self.rank == 0

    @property
    def stop_requested(self) -> int | None:
        """The signal (SIGTERM/SIGINT) this process got during :meth:`fit`, if any: every rank then
        stops after the optimizer step in progress (or the next one), with a checkpoint."""
        return self._signals.requested

    # ------------------------------------------------------------------ public
    def fit(self, resume: bool | str = False) -> TrainResult:
        """Train to ``total_steps``; ``resume=True`` continues from ``<output_dir>/checkpoints/latest``,
        a string resumes from that checkpoint (or output) directory.

        Raises:
            TrainingInterrupted: SIGTERM/SIGINT arrived; every rank stopped at the same step after
                a checkpoint was written (a ``SystemExit``: uncaught, the process exits 143/130).
            NonFiniteLossError: the loss of some rank became NaN/inf (the step is not applied).
        """
        cfg = self.train_cfg
        _seed_everything(cfg.seed + self.rank)
        if resume:
            self._resume(self.output_dir if resume is True else Path(resume))
        start_step, losses = self.step, []
        report = Reporter(cfg, main=self.is_main, start_step=self.step, total_steps=self.total_steps,
                          steps_per_epoch=self.steps_per_epoch, effective_batch=self.effective_batch,
                          device=self.device)  # fmt: skip
        self._net.train()
        self._stopping = None
        self._compile_timer = CompileTimer() if cfg.compile else None
        t0 = time.perf_counter()
        try:
            with self._signals:
                saved_step = self._run(report, losses, saved_step=self.step if resume else -1)
                if saved_step != self.step:
                    self._save()
        finally:
            report.close()
        elapsed = max(time.perf_counter() - t0, 1e-9)
        if self.skipped:
            logger.warning(
                "the dataset skipped %d unreadable sample(s) in this run (see the warnings above for their paths)",
                self.skipped,
            )
        timer = self._compile_timer
        return TrainResult(
            compile_seconds=None if timer is None else timer.finish(),
            losses=losses,
            steps=self.step,
            epochs_done=self.epoch,
            output_dir=str(self.output_dir),
            last_checkpoint=self.last_checkpoint,
            start_step=start_step,
            skipped=self.skipped,
            sources=self.source_stats(),
            samples_per_sec=(self.step - start_step) * self.effective_batch / elapsed,
        )

    # ----------------------------------------------------------------- internals
    def _run(self, report: Reporter, losses: list[float], saved_step: int) -> int:
        """The optimizer steps from the current one to ``total_steps``; returns the step last saved.
        After the step at which the ranks agree on a stop signal: a checkpoint, then TrainingInterrupted."""
        cfg = self.train_cfg
        while self.step < self.total_steps:
            batches = self._epoch_batches()
            try:
                for _ in range(self.step_in_epoch, self.steps_per_epoch):
                    if self.step >= self.total_steps:
                        break
                    started = time.perf_counter()
                    out, loss, lr, norm = self._train_step(batches, report)
                    if self._compile_timer is not None:
                        self._compile_timer.add(time.perf_counter() - started)
                    losses.append(loss)
                    self.step += 1
                    self.step_in_epoch += 1
                    if self.step_in_epoch == self.steps_per_epoch:
                        self.epoch, self.step_in_epoch = self.epoch + 1, 0
                    report.step(self.step, loss, lr, self.last_losses, norm, self.source_stats)
                    for hook in self.hooks:
                        hook(self, self.step, out)
                    self._signals.raise_escalated()  # a third Ctrl-C whose KeyboardInterrupt was swallowed
                    if stop := self._stopping is not None:
                        batches.close()  # the loader workers go first: they may have been signalled too
                    if stop or (cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0):
                        self._save()
                        saved_step = self.step
                    if stop:
                        self._signals.raise_escalated()  # a third Ctrl-C during the save
                        err = TrainingInterrupted(self._stopping, self.step, self.last_checkpoint)  # type: ignore[arg-type]
                        if self.is_main:
                            logger.warning("%s", err)
                        raise err
            finally:  # shut the epoch's loader workers down, also when a step raised (not at interpreter exit)
                batches.close()
        return saved_step

    def _train_step(self, batches: Iterator[Any], report: Reporter) -> tuple[Any, float, float, torch.Tensor | None]:
        """One optimizer step: ``(last output, mean loss, lr, gradient norm or None)``."""
        o = self.optim_cfg
        lr = schedule_lr(o, self.step / self.steps_per_epoch, self.peak_lr, self.train_cfg.epochs)
        apply_lr(self.optimizer, lr)
        schedules = getattr(self.model, "update_schedules", None)
        if schedules is not None:  # masking ratios that follow training progress (a pure function of the step)
            schedules(self.step / max(self.total_steps, 1))
        self.optimizer.zero_grad(set_to_none=True)
        out, total, parts, skipped = self._forward_backward(batches, report)
        # One all-reduce carries the loss stats, each rank's non-finite flag and any stop signal.
        got = reduce_step(total, parts, skipped, rank=self.rank, world_size=self.world_size,
                          signum=self._signals.requested)  # fmt: skip
        self.last_losses, self._stopping = got.losses, self._stopping or got.stop
        self.skipped += got.skipped
        if got.bad_ranks is not None:
            raise non_finite_error(got, self.step + 1, self.epoch, (self.step_in_epoch + 1, self.steps_per_epoch),
                                   self.world_size, self.last_checkpoint)  # fmt: skip
        loss = got.loss
        norm = None
        if self.optim_cfg.clip_grad is not None or report.due(self.step + 1):
            norm = total_grad_norm(self.model.parameters(), self.optim_cfg.clip_grad)
        self.optimizer.step()
        return out, loss, lr, norm

    def _forward_backward(
        self, batches: Iterator[Any], report: Reporter
    ) -> tuple[Any, torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """The step's micro-batches: ``(last output, loss, per-modality losses, skipped count)``,
        this rank's means over the micro-batches (device tensors)."""
        cfg, accum = self.train_cfg, self.train_cfg.accum_steps
        total = torch.zeros((), device=self.device)
        skipped = torch.zeros((), device=self.device)
        parts: dict[str, torch.Tensor] = {}
        out: Any = None
        for micro in range(accum):
            waited = time.perf_counter()
            batch = next(batches)
            report.wait += time.perf_counter() - waited
            inputs = self._inputs(batch)
            extra = {k: to_device(batch[k], self.device) for k in ("masks", "decode_masks") if k in batch}
            if "present" in batch:  # per-sample mixing: which samples carry each modality
                extra["present"] = to_device(batch["present"], self.device)
            if self.mask_keys:  # each sample's mask from its own seed (train.mask_seeding)
                extra["mask_seeds"] = batch["mask_seeds"]
            label_key = getattr(self.model, "label_key", None)  # supervised models (fine-tuning) take labels
            if label_key is not None:
                extra["labels"] = to_device(batch[label_key], self.device)
            inputs, extra = repeat_rows(inputs, extra, self.mask_repeats)  # train.mask_repeats: k rows per sample
            if "skipped" in batch:
                skipped += torch.as_tensor(batch["skipped"]).sum().to(self.device, torch.float32)
            # Gradients are all-reduced only on the last micro-step of an accumulation cycle.
            last = micro == accum - 1
            with gradient_sync(self._net, self.model, enabled=last):
                with (
                    torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16),
                    report.flops.forward(inputs),
                ):
                    out = self._step_net(inputs, **extra)
                (out.loss / accum).backward()
            total += out.loss.detach().float() / accum
            for name, value in out.losses.items():
                parts[name] = parts.get(name, 0.0) + value.detach().float() / accum
        return out, total, parts, skipped

    def _inputs(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The model's modalities present in ``batch`` (a mixed run's batch may hold any subset)."""
        inputs = {m: to_device(batch[m], self.device) for m in self.modalities if m in batch}
        if not inputs:
            raise KeyError(
                f"batch holds none of the model's modalities {self.modalities}; its keys are {sorted(batch)}"
            )
        if self.mixing is None and len(inputs) < len(self.modalities):
            missing = [m for m in self.modalities if m not in batch]
            raise KeyError(f"batch has no {missing}; its keys are {sorted(batch)} (mix sources with data.sources)")
        return inputs

    def source_stats(self) -> dict[str, dict[str, float]]:
        """Samples seen per source (over all ranks) and passes over each, at the current step."""
        if self.mixing is None:
            return {}
        epochs = self.sampler.source_epochs(self.step)
        used = self.sampler.consumed[self.step].tolist()
        return {n: {"samples": int(u), "epochs": round(e, 4)} for n, u, e in zip(self.source_names, used, epochs)}

    def _extra(self) -> dict[str, Any]:
        return {
            "train": to_dict(self.train_cfg),
            "optim": to_dict(self.optim_cfg),
            "world_size": self.world_size,
            "steps_per_epoch": self.steps_per_epoch,
            "effective_batch": self.effective_batch,
            "modalities": list(self.modalities),
            "skipped": self.skipped,
        }

    def _save(self) -> None:
        """A checkpoint of this step: every rank writes its shards, rank 0 the rest (collective)."""
        rng = capture_rng_state()  # every rank's stream, for exact resume at the same world size
        rng = all_gather_object(rng) if self.world_size > 1 else [rng]
        path = save_checkpoint(
            self.output_dir,
            model=self.model,
            optimizer=self.optimizer,
            step=self.step,
            epoch=self.epoch,
            step_in_epoch=self.step_in_epoch,
            extra=self._extra(),
            keep=self.train_cfg.keep_checkpoints,
            rng_states=rng,  # type: ignore[arg-type]
            distributed=self.world_size > 1,
        )
        self.last_checkpoint = str(path)

    def full_model(self, build: Callable[[], nn.Module] | None = None) -> nn.Module | None:
        """The trained model with every weight whole, for saving and evaluating in one process:
        the model itself, or under FSDP the weights gathered to rank 0 into an unsharded copy (a collective: every
        rank calls it; ranks other than 0 get None). ``build`` makes the empty copy (default:
        the model's class from its ``config``)."""
        if not self.sharded:
            return self.model if self.is_main else None
        state = full_state_dict(self.model)
        if not self.is_main:
            return None
        copy = replicate(self.model) if build is None else build()
        copy.load_state_dict(state)
        return copy.to(self.device)

    def _resume(self, path: Path) -> None:
        state = load_checkpoint(path, self.model, self.optimizer, rank=self.rank, distributed=self.world_size > 1)
        self.step, self.epoch, self.step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
        if self.step_in_epoch >= self.steps_per_epoch:
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.last_checkpoint = state["path"]
        extra = state.get("extra") or {}
        self.skipped = int(extra.get("skipped", 0))
        # Data order and per-sample masks do not depend on the world size; per-rank RNG streams do.
        keys = ["steps_per_epoch", "effective_batch"] + ([] if self.mask_keys else ["world_size"])
        for key in keys:
            now = getattr(self, key)
            if key in extra and extra[key] != now:
                logger.warning(
                    "resuming with %s=%s (checkpoint had %s): the run will not replay exactly", key, now, extra[key]
                )
        logger.info("resumed from %s at step %d (epoch %d)", state["path"], self.step, self.epoch)
