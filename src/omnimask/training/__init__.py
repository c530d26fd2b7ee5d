"""Training: optimizer, lr schedule, resumable sampling, atomic checkpoints, DDP, the loop, its
metrics files and how a run stops (signals, non-finite loss, a sample that fails to load)."""

from .checkpoint import (
    CheckpointError,
    capture_rng_state,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    resolve_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .distributed import all_reduce_mean, all_reduce_sum, barrier, cleanup, init_distributed, is_main
from .loader_masks import LoaderMasks
from .loop import Mixing, TrainConfig, Trainer, TrainResult
from .metrics import MetricsWriter
from .mixing import MixedBatchSampler
from .optim import OptimConfig, build_optimizer, param_groups, resolve_lr
from .repeat import repeat_rows, repeat_seed
from .sampler import ResumableSampler, SeededDataset, mix_seed
from .schedule import apply_lr, lr_at
from .signals import NonFiniteLossError, TrainingInterrupted

__all__ = [
    "OptimConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "Mixing",
    "MixedBatchSampler",
    "LoaderMasks",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "MetricsWriter",
    "param_groups",
    "build_optimizer",
    "resolve_lr",
    "lr_at",
    "apply_lr",
    "ResumableSampler",
    "SeededDataset",
    "mix_seed",
    "repeat_rows",
    "repeat_seed",
    "save_checkpoint",
    "load_checkpoint",
    "load_model_weights",
    "resolve_checkpoint",
    "list_checkpoints",
    "capture_rng_state",
    "restore_rng_state",
    "CheckpointError",
    "init_distributed",
    "is_main",
    "barrier",
    "all_reduce_mean",
    "all_reduce_sum",
    "cleanup",
]
