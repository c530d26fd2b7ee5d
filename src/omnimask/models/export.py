"""``omnimask export``: the whole model of a training checkpoint, in ``save_pretrained`` form.

A checkpoint of an FSDP run holds the model as shards (``state/``) and its ``config.json``; this
reads the shards in one process (whatever number of processes wrote them) into the model class
the config names and writes ``config.json`` + ``model.safetensors``, which
``from_pretrained`` and ``AutoModel`` load.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..training.checkpoint import CheckpointError, load_model_weights, resolve_checkpoint
from .encoder_model import OmniMaskModel
from .hub import CONFIG_NAME, read_config
from .pretraining import OmniMaskForPreTraining

__all__ = ["MODEL_CLASSES", "architecture", "export_checkpoint"]

#: The classes a checkpoint's ``config.json`` may name, by name.
MODEL_CLASSES: dict[str, type[nn.Module]] = {c.__name__: c for c in (OmniMaskForPreTraining, OmniMaskModel)}


def architecture(config: object) -> str:
    """The model class a config names (``architectures[0]``); a config without one is a pretraining model's."""
    return (getattr(config, "architectures", None) or ["OmniMaskForPreTraining"])[0]


def export_checkpoint(checkpoint: str | Path, destination: str | Path) -> Path:
    """Write the model of ``checkpoint`` (a checkpoint, ``checkpoints`` or output directory) to
    ``destination`` with ``save_pretrained``; returns ``destination``.

    Raises:
        CheckpointError: no checkpoint there, no ``config.json`` in it, or unreadable weights.
    """
    ckpt = resolve_checkpoint(checkpoint)
    if not (ckpt / CONFIG_NAME).is_file():
        raise CheckpointError(
            f"{ckpt} has no {CONFIG_NAME}: only checkpoints of omnimask models (built from a config) can be exported"
        )
    config = read_config(ckpt)
    name = architecture(config)
    if name not in MODEL_CLASSES:
        raise CheckpointError(f"{ckpt / CONFIG_NAME} names the class {name!r}; export knows {sorted(MODEL_CLASSES)}")
    model = MODEL_CLASSES[name](config)
    load_model_weights(model, ckpt)
    return model.save_pretrained(destination)  # type: ignore[operator]
