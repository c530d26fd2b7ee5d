"""How the model is spread over the processes of a torchrun launch (``train.strategy``).

* ``ddp``: every process holds the whole model; :class:`~torch.nn.parallel.DistributedDataParallel`
  averages the gradients. Simple and fastest while the model, its gradients and AdamW's two
  moments (16 bytes per parameter in fp32) fit one device.
* ``fsdp``: FSDP2 (:func:`torch.distributed.fsdp.fully_shard`): every member of a ``ModuleList``
  called ``blocks`` (the encoder's and the decoders' transformer blocks) is one unit, the rest of
  the model is the root unit. Parameters, gradients and optimizer state are split over the
  processes; a unit's parameters are gathered just before it runs and freed after. With
  ``train.bf16`` the gathered copies and the compute are bf16 while the shards (the optimizer's
  master weights) and the gradient reduction stay fp32. ``train.cpu_offload`` keeps the shards and
  the optimizer step on the CPU (a GPU option; on a CPU device it changes nothing but is allowed).

``train.activation_checkpointing`` (any strategy, one process too) recomputes each block's
activations in the backward pass instead of storing them: about a third more compute for the
blocks, a fraction of their activation memory. Parameter names, hence checkpoints, are unchanged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.checkpoint import checkpoint

from ..registry import ConfigError

__all__ = [
    "STRATEGIES",
    "blocks_of",
    "check_strategy",
    "enable_activation_checkpointing",
    "full_state_dict",
    "gradient_sync",
    "is_sharded",
    "plain_class",
    "replicate",
    "total_grad_norm",
    "wrap_model",
]

logger = logging.getLogger(__name__)
STRATEGIES = ("ddp", "fsdp")


def check_strategy(strategy: str, *, mixed: bool = False, cpu_offload: bool = False) -> None:
    """Refuse a strategy this trainer does not run, naming the key."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"train.strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    if strategy == "fsdp" and mixed:
        # A mixed step may leave a modality's decoder unused; FSDP2 reduces whole units, so every rank
        # would have to agree on which units ran. DDP's find_unused_parameters handles it.
        raise ConfigError("train.strategy: fsdp does not run mixed sources (data.sources) yet; use ddp")
    if cpu_offload and strategy != "fsdp":
        raise ConfigError("train.cpu_offload needs train.strategy: fsdp (it offloads the parameter shards)")


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The members of every ``ModuleList`` named ``blocks`` or held in a ``specific_blocks`` dict
    (an encoder's per-modality blocks), outermost lists first (FSDP units and
    activation-checkpointing regions)."""
    found: list[nn.Module] = []
    for name, module in model.named_modules():
        parts = name.split(".")
        if isinstance(module, nn.ModuleList) and (parts[-1] == "blocks" or parts[-2:-1] == ["specific_blocks"]):
            found.extend(module)
    return found


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Recompute every block's forward in the backward pass; returns the number of blocks.

    The block's own ``forward`` is wrapped (non-reentrant :func:`torch.utils.checkpoint.checkpoint`,
    which restores the RNG state, so dropout and drop-path repeat exactly): module names, state-dict
    keys and FSDP/DDP hooks are those of the unwrapped model.
    """
    blocks = blocks_of(model)
    for block in blocks:
        if getattr(block, "_omnimask_checkpointed", False):
            continue
        inner = block.forward

        @functools.wraps(inner)
        def forward(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
            if not torch.is_grad_enabled():
                return _inner(*args, **kwargs)
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        block.forward = forward  # type: ignore[method-assign]
        block._omnimask_checkpointed = True  # type: ignore[attr-defined]
    if not blocks:
        logger.warning("train.activation_checkpointing: the model has no `blocks` list; nothing is recomputed")
    return len(blocks)


def wrap_model(
    model: nn.Module,
    strategy: str,
    *,
    world_size: int,
    device: torch.device,
    bf16: bool = False,
    cpu_offload: bool = False,
    find_unused_parameters: bool = False,
) -> nn.Module:
    """The module the trainer calls: ``model`` itself (one process), DDP around it, or ``model``
    sharded in place by FSDP2 (its parameters become DTensor shards; build the optimizer after)."""
    if strategy == "fsdp" and world_size > 1:
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

        precision = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
        offload = CPUOffloadPolicy(pin_memory=device.type == "cuda") if cpu_offload else OffloadPolicy()
        units = blocks_of(model)
        for block in units:
            fully_shard(block, mp_policy=precision, offload_policy=offload)
        fully_shard(model, mp_policy=precision, offload_policy=offload)
        logger.info("fsdp: %d block unit(s) + the root sharded over %d processes", len(units), world_size)
        return model
    if world_size > 1:
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)
    return model


def is_sharded(model: nn.Module) -> bool:
    """True when FSDP2 has sharded ``model`` (its class then derives from ``FSDPModule``)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without distributed
        return False
    return isinstance(model, FSDPModule)


@contextmanager
def gradient_sync(net: nn.Module, model: nn.Module, enabled: bool) -> Iterator[None]:
    """Reduce gradients across processes in this backward pass only when ``enabled`` (the last
    micro-batch of an accumulation cycle); the others accumulate locally."""
    if enabled or net is model and not is_sharded(model):
        yield
    elif is_sharded(model):
        model.set_requires_gradient_sync(False)  # type: ignore[operator]
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)  # type: ignore[operator]
    else:
        with net.no_sync() if isinstance(net, DistributedDataParallel) else nullcontext():
            yield


def total_grad_norm(parameters: Iterable[nn.Parameter], clip: float | None = None) -> torch.Tensor | None:
    """The L2 norm of all gradients (a plain device tensor; for FSDP shards, the global norm), after
    clipping them to ``clip`` when given. None when no parameter has a gradient."""
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return None
    if clip is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    full = getattr(norm, "full_tensor", None)  # a DTensor for sharded gradients
    return full() if full is not None else norm


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight of ``model`` whole, on the CPU. Collective for a sharded model (every rank
    calls it); only rank 0 then gets the tensors, the others an empty dict."""
    if not is_sharded(model):
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def replicate(model: nn.Module) -> nn.Module:
    """A plain, unsharded model of ``model``'s class, built from its ``config`` (fresh weights)."""
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError(
            f"{type(model).__name__} has no `config`: a sharded model can be copied whole only when it "
            "can be rebuilt from its config (omnimask's models can)"
        )
    return plain_class(type(model))(config)


def plain_class(cls: type) -> type:
    """FSDP2 swaps a sharded module's class for a subclass ``FSDP<Name>``; this is the original."""
    return next(base for base in cls.__mro__ if not is_sharded_class(base))


def is_sharded_class(cls: type) -> bool:
    return any(base.__name__ == "FSDPModule" for base in cls.__mro__)
