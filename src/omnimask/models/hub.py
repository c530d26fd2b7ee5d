"""Hugging Face-style ``save_pretrained`` / ``from_pretrained`` for omnimask models.

A checkpoint directory holds ``config.json`` (an :class:`~omnimask.OmniMaskConfig`, including the
preprocessing settings) and ``model.safetensors``. Loading never unpickles anything: weights come
from safetensors, and the key check is strict (missing or unexpected tensors are errors, except
that an encoder-only model deliberately drops a pretraining checkpoint's decoders and says so).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..model_config import OmniMaskConfig

__all__ = ["HubMixin", "CONFIG_NAME", "WEIGHTS_NAME"]

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Keyword arguments that transformers' Auto classes forward; meaningless for a local directory.
_HUB_KWARGS = {
    "cache_dir",
    "force_download",
    "local_files_only",
    "token",
    "revision",
    "proxies",
    "subfolder",
    "trust_remote_code",
    "code_revision",
    "_from_auto",
    "_commit_hash",
    "adapter_kwargs",
    "use_safetensors",
    "resume_download",
    "_from_pipeline",
    "attn_implementation",
}


def _resolve_dir(path: str | os.PathLike, kwargs: dict) -> Path:
    p = Path(path)
    if p.is_dir():
        return p
    if p.exists():
        raise NotADirectoryError(f"{p} is a file; from_pretrained expects a checkpoint directory")
    try:  # a Hub repo id; works only where the Hub is reachable or cached
        from huggingface_hub import snapshot_download

        hub = {k: kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only") if k in kwargs}
        return Path(snapshot_download(str(path), **hub))
    except Exception as err:  # noqa: BLE001 - report both causes
        raise FileNotFoundError(
            f"no checkpoint directory {str(path)!r} (and it could not be fetched as a Hub repo: {err})"
        ) from None


def read_config(directory: Path) -> OmniMaskConfig:
    cfg_path = directory / CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: not an omnimask checkpoint directory")
    try:
        raw = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{cfg_path} is not valid JSON: {err}") from None
    mtype = raw.get("model_type")
    if mtype != OmniMaskConfig.model_type:
        hint = " Convert it first: omnimask convert --from hf-vitmae SRC DST" if mtype == "vit_mae" else ""
        raise ValueError(
            f"{directory} holds a {mtype!r} checkpoint, not an omnimask one (model_type 'omnimask').{hint}"
        )
    # Files saved next to the model (a text tokenizer) are named relative to it: make them absolute.
    for m in (raw.get("modalities") or {}).values():
        path = (m.get("processor") or {}).get("tokenizer")
        if isinstance(path, str) and not os.path.isabs(path):
            m["processor"]["tokenizer"] = str(directory / path)
    return OmniMaskConfig.from_dict(raw)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors in the safetensors file ``path``.

    Raises:
        CheckpointError: the file is empty, truncated or not a safetensors file (the message names it).
    """
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        from ..training.checkpoint import CheckpointError  # lazy: training imports the models

        size = path.stat().st_size if path.is_file() else 0
        what = "is empty (0 bytes)" if size == 0 else f"is truncated or corrupt ({size} bytes; {err})"
        raise CheckpointError(f"{path} {what}; save or download the checkpoint again") from err


class HubMixin:
    """Adds ``save_pretrained`` and ``from_pretrained`` to an ``nn.Module`` built from a config."""

    config_class = OmniMaskConfig
    config: OmniMaskConfig

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (atomically) into ``save_directory``."""
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        self.config.architectures = [type(self).__name__]
        self._config_with_assets(out).save_pretrained(out)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}  # type: ignore[attr-defined]
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".model.", suffix=".tmp")
        os.close(fd)
        try:
            save_file(state, tmp, metadata={"format": "pt", "omnimask_class": type(self).__name__})
            os.replace(tmp, out / WEIGHTS_NAME)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return out

    def _config_with_assets(self, out: Path) -> OmniMaskConfig:
        """Let each modality write what its processor needs (a text tokenizer) into ``out``; the
        returned copy of the config names those files relative to the model directory (the
        model's own config is left as it is)."""
        from ..modalities import MODALITIES

        config = copy.deepcopy(self.config)
        for key, m in config.modalities.items():
            spec = MODALITIES.get(m["type"])
            if spec.save_assets is not None:
                m["processor"].update(spec.save_assets(m, out, key))
        return config

    @classmethod
    def _adapt_state_dict(cls, state: dict[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
        """Hook for subclasses: map a checkpoint of a sibling class onto this class's keys."""
        return state

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        config: OmniMaskConfig | None = None,
        strict: bool = True,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ):
        """Load a model saved by :meth:`save_pretrained` (returned in ``eval()`` mode, like transformers).

        Args:
            pretrained_model_name_or_path: checkpoint directory (or a Hub repo id where reachable).
            config: use this config instead of the directory's ``config.json``.
            strict: missing/unexpected tensors are errors (default).
            dtype: cast the loaded model (e.g. ``torch.bfloat16``); ``torch_dtype`` is accepted too.
            device: move the loaded model.

        Raises:
            CheckpointError: ``model.safetensors`` is empty, truncated or corrupt (named).
        """
        if model_args:
            raise TypeError(f"{cls.__name__}.from_pretrained takes no extra positional arguments, got {model_args}")
        dtype = dtype if dtype is not None else kwargs.pop("torch_dtype", None)
        if dtype == "auto":  # transformers' Auto classes may pass it: keep the stored dtype (float32)
            dtype = None
        unknown = set(kwargs) - _HUB_KWARGS
        if unknown:
            raise TypeError(f"{cls.__name__}.from_pretrained got unexpected keyword argument(s) {sorted(unknown)}")
        directory = _resolve_dir(pretrained_model_name_or_path, kwargs)
        config = config if config is not None else read_config(directory)
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            found = sorted(p.name for p in directory.iterdir())
            raise FileNotFoundError(f"{weights} not found (directory holds {found}); omnimask reads safetensors only")
        model = cls(config)  # type: ignore[call-arg]
        state = cls._adapt_state_dict(read_weights(weights), directory)
        own = model.state_dict()
        bad_shapes = [
            f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
            for k, v in state.items()
            if k in own and own[k].shape != v.shape
        ]
        if bad_shapes:
            raise ValueError(f"{weights}: tensor shapes do not match the config: " + "; ".join(bad_shapes[:10]))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if strict and (missing or unexpected):
            raise ValueError(
                f"{weights} does not fit {cls.__name__}: missing {missing[:10]} unexpected {unexpected[:10]}"
            )
        if missing or unexpected:
            log.warning("%s: missing %s, unexpected %s", weights, missing, unexpected)
        if dtype is not None:
            model = model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        if device is not None:
            model = model.to(device)
        return model.eval()
