"""``OmniMaskProcessor``: the preprocessing saved with a model, as a callable.

``processor(image=[pil, pil])`` returns ``{"image": (2, C, H, W)}`` ready for the model, using the
input size and normalisation in the model's config, so a loaded checkpoint knows how to read data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..modalities import MODALITIES
from ..model_config import OmniMaskConfig
from .hub import _resolve_dir, read_config

__all__ = ["OmniMaskProcessor"]


class OmniMaskProcessor:
    def __init__(self, config: OmniMaskConfig, base_dir: str | os.PathLike | None = None) -> None:
        """``base_dir``: the model directory relative file names in the processor settings (a saved
        text tokenizer) resolve against."""
        self.config = config
        self._fns = {}
        for k, m in config.modalities.items():
            spec = MODALITIES.get(m["type"])
            if spec.build_processor is not None:
                proc = dict(m["processor"])
                path = proc.get("tokenizer")
                if base_dir is not None and isinstance(path, str) and not os.path.isabs(path):
                    proc["tokenizer"] = os.path.join(os.fspath(base_dir), path)
                self._fns[k] = spec.build_processor(m["tokenizer"], proc)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> OmniMaskProcessor:
        directory = _resolve_dir(path, kwargs)
        return cls(read_config(directory), base_dir=directory)

    def __call__(self, **samples: Sequence[Any]) -> dict[str, Tensor]:
        out = {}
        for k, items in samples.items():
            if k not in self._fns:
                raise KeyError(f"no processor for {k!r}; this model processes {sorted(self._fns)}")
            out[k] = torch.stack([self._fns[k](x) for x in items])
        return out
