"""``OmniMaskProcessor``: the preprocessing saved with a model, as a callable.

``processor(image=[pil, pil])`` returns ``{"image": (2, C, H, W)}`` ready for the model, using the
input size and normalisation in the model's config, so a loaded checkpoint knows how to read data.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from torch import Tensor

from ..configuration import OmniMaskConfig
from ..modalities import MODALITIES
from .hub import _resolve_dir, read_config

__all__ = ["OmniMaskProcessor"]


class OmniMaskProcessor:
    def __init__(self, config: OmniMaskConfig) -> None:
        self.config = config
        self._fns = {}
        for k, m in config.modalities.items():
            spec = MODALITIES.get(m["type"])
            if spec.build_processor is not None:
                self._fns[k] = spec.build_processor(m["tokenizer"], m["processor"])

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> "OmniMaskProcessor":
        return cls(read_config(_resolve_dir(path, kwargs)))

    def __call__(self, **samples: Sequence[Any]) -> dict[str, Tensor]:
        out = {}
        for k, items in samples.items():
            if k not in self._fns:
                raise KeyError(f"no processor for {k!r}; this model processes {sorted(self._fns)}")
            out[k] = torch.stack([self._fns[k](x) for x in items])
        return out
