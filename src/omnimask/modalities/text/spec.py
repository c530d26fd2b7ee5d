"""The ``text`` modality's registration: processor, saved tokenizer assets, and the image-caption
``pairs`` data source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...data.sources import SourceSpec, register_source
from ..base import ModalitySpec, register_modality
from .pairs import PairsDataConfig, build_pairs_dataset
from .tokenizer import TextTokenEmbedding
from .vocab import TextTokenizer

__all__: list[str] = []


def _example_input(tokenizer_cfg: dict, batch_size: int) -> Tensor:
    length, vocab = tokenizer_cfg["max_length"], tokenizer_cfg["vocab_size"]
    ids = torch.randint(5, vocab, (batch_size, length))
    ids[:, length - max(1, length // 4) :] = tokenizer_cfg["pad_id"]  # padded tails
    return ids


def _build_processor(tokenizer_cfg: dict, processor_cfg: dict) -> Callable[[Any], Tensor]:
    """A caption (str or UTF-8 bytes) -> (max_length,) ids with the tokenizer named in
    ``processor.tokenizer`` (default: the project's sentencepiece model)."""
    path = processor_cfg.get("tokenizer")  # the processor section is open: absent = the shipped model
    tok = TextTokenizer(path) if path else TextTokenizer.default()
    length = int(tokenizer_cfg["max_length"])

    def process(caption: Any) -> Tensor:
        ids, _, _ = tok.batch([caption], length)
        return ids[0]

    return process


def _save_assets(modality_cfg: dict, directory: Any, key: str) -> dict:
    """Copy the processor's tokenizer next to the saved model (``tokenizer_<key>/``), so
    ``OmniMaskProcessor.from_pretrained`` restores the very ids the model was trained with."""
    path = modality_cfg["processor"].get("tokenizer")
    target = Path(directory) / f"tokenizer_{key}"
    if path and Path(path).resolve() == target.resolve():
        return {}  # saving over the directory it was loaded from
    tok = TextTokenizer(path) if path else TextTokenizer.default()
    tok.save(target)
    return {"tokenizer": target.name}


register_modality(
    ModalitySpec(
        name="text",
        tokenizer=TextTokenEmbedding,
        example_input=_example_input,
        masking={"name": "random", "ratio": 0.75},
        decoder={"name": "transformer", "dim": 256, "depth": 2, "num_heads": 8},
        objective={"name": "cross_entropy"},
        processor={},
        build_processor=_build_processor,
        save_assets=_save_assets,
        description="token ids (sentencepiece or a local Hugging Face tokenizer) with 1-D positions, padding-aware (M3AE)",
    )
)

register_source(
    SourceSpec(
        name="pairs",
        config=PairsDataConfig,
        build=build_pairs_dataset,
        keys=lambda cfg: (cfg.image, cfg.text),
        description="image-caption pairs: embedded captions, JSONL/CSV lists or tar shards (M3AE)",
    )
)
