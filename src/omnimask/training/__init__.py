"""Training: optimizer, lr schedule, resumable sampling, atomic checkpoints, DDP and the loop."""

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
from .distributed import all_reduce_mean, barrier, cleanup, init_distributed, is_main
from .loader_masks import LoaderMasks
from .loop import Mixing, NonFiniteLossError, TrainConfig, Trainer, TrainResult
from .mixing import MixedBatchSampler
from .optim import OptimConfig, build_optimizer, param_groups, resolve_lr
from .sampler import ResumableSampler, SeededDataset, mix_seed
from .schedule import apply_lr, lr_at

__all__ = [
    "OptimConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "Mixing",
    "MixedBatchSampler",
    "LoaderMasks",
    "NonFiniteLossError",
    "param_groups",
    "build_optimizer",
    "resolve_lr",
    "lr_at",
    "apply_lr",
    "ResumableSampler",
    "SeededDataset",
    "mix_seed",
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
    "cleanup",
]
