"""The ``text`` modality: token ids with 1-D positions (padding-aware), the sentencepiece / Hugging
Face tokenizer wrapper, the embedded captions, and image-caption pairs (the ``pairs`` data source)."""

from . import spec  # noqa: F401  (registers "text" and the "pairs" source)
from .captions import caption_corpus, colour_name, digit_captions, digit_facts
from .embedded import embedded_captions_root
from .image_captions import (
    CaptionListError,
    CaptionReadError,
    ImageCaptionDataset,
    ImageCaptions,
    ImageCaptionShards,
    ShardSample,
    embedded_caption_items,
    iter_caption_shards,
    read_caption_csv,
    read_caption_jsonl,
)
from .pairs import PairsDataConfig, build_pairs_dataset
from .tokenizer import TextTokenEmbedding
from .vocab import CAPTION_TOKENIZER_FILE, TextTokenizer, utf8_text

__all__ = [
    "CAPTION_TOKENIZER_FILE",
    "CaptionListError",
    "CaptionReadError",
    "ImageCaptionDataset",
    "ImageCaptionShards",
    "ImageCaptions",
    "PairsDataConfig",
    "ShardSample",
    "TextTokenEmbedding",
    "TextTokenizer",
    "build_pairs_dataset",
    "caption_corpus",
    "colour_name",
    "digit_captions",
    "digit_facts",
    "embedded_caption_items",
    "embedded_captions_root",
    "iter_caption_shards",
    "read_caption_csv",
    "read_caption_jsonl",
    "utf8_text",
]
