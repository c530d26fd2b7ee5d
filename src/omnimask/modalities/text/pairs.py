"""Image-caption pairs for a vision-language recipe (``data.pairs`` in a recipe config).

One dataset yields both modalities of a sample: ``{"image": (C, H, W), "text": (L,) ids, ...}``,
with the image modality's transforms and the text modality's tokenizer and length. Sources: the
embedded digits with their generated captions, a captions JSONL or CSV next to an image folder,
or webdataset-style tar shards (streamed; pretraining only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...data.wrappers import RenamedKeys
from ...registry import ConfigError
from ..image.transforms import eval_transform, mae_pretrain_transform
from .image_captions import (
    ImageCaptionDataset,
    ImageCaptionShards,
    embedded_caption_items,
    read_caption_csv,
    read_caption_jsonl,
)
from .vocab import TextTokenizer

__all__ = ["PairsDataConfig", "build_pairs_dataset"]

_FORMATS = ("embedded", "jsonl", "csv", "tar")


@dataclass
class PairsDataConfig:
    """``format``: ``embedded``, ``jsonl``, ``csv`` or ``tar``; ``path``/``val_path``: the training and
    held-out lists (a JSONL/CSV file, or for ``tar`` a shard file, folder or glob); ``image_root``:
    where relative image paths resolve (default: the list's folder); ``tokenizer``: a sentencepiece
    ``.model`` or a local Hugging Face tokenizer folder (default: the project's model in
    ``tokenizers/``); ``caption_choice``: ``random`` caption per image in pretraining (held-out
    splits always take the first); ``image`` / ``text``: the model's keys of the two modalities.
    ``val_format``: the format of ``val_path`` (default: ``format``). Tar shards stream and cannot be
    indexed, so a run on shards evaluates (and draws its pictures) from a ``jsonl``/``csv`` list:
    ``format: tar, val_path: val.jsonl, val_format: jsonl``; without one, pictures come from the
    first training samples and ``eval.enabled`` must be false."""

    format: str = "embedded"
    path: str | None = None
    val_path: str | None = None
    image_root: str | None = None
    tokenizer: str | None = None
    caption_choice: str = "random"
    image: str = "image"
    text: str = "text"
    scale: tuple[float, float] = (0.5, 1.0)
    on_error: str = "raise"
    val_format: str | None = None

    def __post_init__(self) -> None:
        for key in ("format", "val_format"):
            value = getattr(self, key)
            if value is not None and value not in _FORMATS:
                raise ConfigError(f"data.pairs.{key} must be one of {_FORMATS}, got {value!r}")
        if self.val_format == "tar":
            raise ConfigError("data.pairs.val_format cannot be tar: a held-out set must be indexable (jsonl or csv)")


def build_pairs_dataset(cfg: PairsDataConfig, modalities: dict, split: str) -> Any:
    """The paired dataset for ``split`` (``train`` with augmentation, ``train_eval``/``val`` without)."""
    for key in (cfg.image, cfg.text):
        if key not in modalities:
            raise ValueError(f"data.pairs: the model has no modality {key!r} (it has {list(modalities)})")
    image, text = modalities[cfg.image], modalities[cfg.text]
    size = image["tokenizer"]["image_size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    mean, std = tuple(image["processor"]["mean"]), tuple(image["processor"]["std"])
    train = split == "train"
    transform = (mae_pretrain_transform(size, scale=cfg.scale, hflip=0.0, mean=mean, std=std) if train
                 else eval_transform(size, mean=mean, std=std))  # fmt: skip
    tokenizer = TextTokenizer(cfg.tokenizer) if cfg.tokenizer else TextTokenizer.default()
    vocab = text["tokenizer"]["vocab_size"]
    if tokenizer.vocab_size > vocab:
        raise ValueError(
            f"data.pairs: the tokenizer has {tokenizer.vocab_size} tokens but the text modality's vocab_size is {vocab}"
        )
    held_out = split == "val"
    kwargs = dict(max_length=text["tokenizer"]["max_length"], caption_choice=cfg.caption_choice if train else "first",
                  channels=image["tokenizer"]["in_chans"], on_error=cfg.on_error)  # fmt: skip
    fmt = (cfg.val_format or cfg.format) if held_out else cfg.format
    if fmt == "embedded":
        items = embedded_caption_items("val" if held_out else "train")
    else:
        if fmt == "tar" and not train:
            raise ValueError(
                "data.pairs: tar shards stream and cannot be indexed; give a held-out list: "
                "data.pairs.val_path=... data.pairs.val_format=jsonl (or csv)"
            )
        path = cfg.val_path if held_out else cfg.path
        if path is None:
            raise ValueError(f"data.pairs.{'val_path' if held_out else 'path'} is required for format {fmt!r}")
        if fmt == "tar":
            return ImageCaptionShards(path, transform, tokenizer, **kwargs)  # type: ignore[arg-type]
        reader = read_caption_jsonl if fmt == "jsonl" else read_caption_csv
        items = reader(path, cfg.image_root)
    ds = ImageCaptionDataset(items, transform, tokenizer, **kwargs)  # type: ignore[arg-type]
    return RenamedKeys(ds, {"image": cfg.image, "text": cfg.text}) if (cfg.image, cfg.text) != ("image", "text") else ds
