"""The text tokenizer wrapper: one interface over sentencepiece and local Hugging Face tokenizers.
(Captions of the embedded digits are in :mod:`.captions`; readers and datasets of image-caption
pairs in :mod:`.image_captions`.)

Captions stay Python ``str`` until :meth:`TextTokenizer.batch` turns them into a padded
``(B, L)`` id tensor and a ``(B, L)`` validity mask (``True`` = a real token, never padding).

Handling of bad text, here and in :mod:`.image_captions`:

* bytes that are not UTF-8 raise ``ValueError`` naming where they came from (``<file>:<line>``,
  ``<shard>:<member>`` or the caller's ``where=``); they are never replaced silently;
* an empty or whitespace-only caption encodes to no tokens: in a batch its row is all padding
  with ``valid`` all False (M3AE's image-only sample), and a warning counts such rows;
* a caption longer than ``max_length`` tokens is cut, and the cut is counted and logged;
* characters the vocabulary lacks: the shipped sentencepiece model has byte fallback, so they
  become UTF-8 byte tokens and decode back exactly; a Hugging Face tokenizer maps them as it was
  built to (WordPiece / WordLevel vocabularies give their unk token, byte-level BPE needs none).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = ["CAPTION_TOKENIZER_FILE", "TextTokenizer", "utf8_text"]

logger = logging.getLogger(__name__)

# The tokenizer trained by tokenizers/train_sentencepiece.py: the copy packaged in the wheel
# (omnimask/_tokenizers/; in a checkout a symlink to tokenizers/, see pyproject.toml), else the source checkout's.
_PACKAGE_DIR = Path(__file__).resolve().parents[2]
CAPTION_TOKENIZER_FILE = next(
    (
        f.resolve()
        for f in (
            _PACKAGE_DIR / "_tokenizers" / "omnimask_captions.model",
            _PACKAGE_DIR.parents[1] / "tokenizers" / "omnimask_captions.model",
        )
        if f.is_file()
    ),
    _PACKAGE_DIR / "_tokenizers" / "omnimask_captions.model",  # missing: TextTokenizer.default() says where to get it
)


def utf8_text(data: bytes | bytearray | memoryview, where: str) -> str:
    """``data`` decoded as strict UTF-8, or ``ValueError`` naming ``where`` and the bad byte."""
    data = bytes(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not valid UTF-8 text ({e.reason}: byte 0x{data[e.start]:02x} at offset {e.start}); "
                         "re-encode it as UTF-8") from None  # fmt: skip


_META_FILE = "text_tokenizer.json"
_SP_FILE = "text_tokenizer.model"


class TextTokenizer:
    """One interface over a sentencepiece model or a local Hugging Face tokenizer.

    ``TextTokenizer(path)`` loads a sentencepiece ``.model`` file, a directory written by
    :meth:`save`, or a Hugging Face tokenizer directory (``AutoTokenizer.from_pretrained(path,
    local_files_only=True)``: a local path only, never a hub download). :meth:`default` loads the
    project's caption model (``tokenizers/omnimask_captions.model``: pad 0, unk 1, bos 2, eos 3,
    ``<mask>`` 4, byte fallback; see ``tokenizers/README.md``).

    Special ids: ``pad_id`` is required (``pad_token=`` names one for a tokenizer without it);
    ``mask_id``, ``bos_id``, ``eos_id`` and ``unk_id`` are ``None`` when the vocabulary has no such
    token. Hugging Face tokenizers without bos/eos use their cls/sep tokens (BERT's ``[CLS] ..
    [SEP]``). Special tokens are never produced from caption text: a caption saying ``<mask>`` or
    ``[MASK]`` is encoded as ordinary characters (sentencepiece control symbols; Hugging Face
    ``split_special_tokens=True``), so data cannot inject a mask or padding token.

    Args:
        path: the model file or tokenizer directory.
        mask_token, pad_token: token strings to use as mask / padding when the tokenizer does not
            define one (they must exist in its vocabulary).
    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: a file or directory that is not a usable tokenizer, or no padding token.
    """

    def __init__(self, path: str | os.PathLike[str], *, mask_token: str | None = None,
                 pad_token: str | None = None) -> None:  # fmt: skip
        p = Path(path).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"text tokenizer not found: {p} does not exist (expected a sentencepiece .model "
                                    "file, or a directory from TextTokenizer.save or a Hugging Face tokenizer)")  # fmt: skip
        saved: dict[str, Any] = {}
        if p.is_dir() and (p / _META_FILE).is_file():
            try:
                saved = json.loads((p / _META_FILE).read_text(encoding="utf-8"))
            except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
                raise ValueError(f"{p / _META_FILE}: not a readable tokenizer description ({e})") from None
            mask_token = mask_token or saved.get("mask_token")
            pad_token = pad_token or saved.get("pad_token")
        self.source = str(p)
        self._overrides = (mask_token, pad_token)
        if p.is_file() or saved.get("backend") == "sentencepiece":
            self._load_sentencepiece(p / saved.get("model_file", _SP_FILE) if p.is_dir() else p)
        else:
            self._load_huggingface(p)
        if saved and saved.get("special_ids") != self.special_ids:
            raise ValueError(f"{p / _META_FILE} records special ids {saved.get('special_ids')}, but the tokenizer "
                             f"files there give {self.special_ids}: the folder was changed after saving")  # fmt: skip

    # -- loading
    def _load_sentencepiece(self, model_file: Path) -> None:
        import sentencepiece as spm

        if not model_file.is_file():
            raise FileNotFoundError(f"sentencepiece model file not found: {model_file}")
        self._proto = model_file.read_bytes()
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        except Exception as e:  # sentencepiece raises RuntimeError / OSError for a bad proto
            raise ValueError(f"cannot load sentencepiece model {model_file}: {type(e).__name__}: {e}") from e
        self.backend: Literal["sentencepiece", "huggingface"] = "sentencepiece"
        sp, (mask_token, pad_token) = self._sp, self._overrides

        def piece(token: str) -> int | None:
            i = sp.piece_to_id(token)  # the unk id for a piece the model lacks
            return i if sp.id_to_piece(i) == token else None

        def given(token: str) -> int:
            i = piece(token)
            if i is None:
                raise ValueError(f"token {token!r} is not a piece of the sentencepiece model {model_file}")
            return i

        def opt(i: int) -> int | None:
            return i if i >= 0 else None

        self.pad_id = given(pad_token) if pad_token else opt(sp.pad_id())
        self.unk_id, self.bos_id, self.eos_id = opt(sp.unk_id()), opt(sp.bos_id()), opt(sp.eos_id())
        self.mask_id = given(mask_token) if mask_token else piece("<mask>")
        self.vocab_size = sp.get_piece_size()
        self._check_pad(model_file)

    def _load_huggingface(self, directory: Path) -> None:
        from transformers import AutoTokenizer  # local import: transformers is slow to import

        try:
            hf = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        except Exception as e:  # OSError, ValueError, ... for a folder without usable tokenizer files
            raise ValueError(f"cannot load a tokenizer from {directory}: it is neither a TextTokenizer.save folder "
                             f"nor a Hugging Face tokenizer folder ({type(e).__name__}: {e})") from e  # fmt: skip
        self._hf, self.backend = hf, "huggingface"
        mask_token, pad_token = self._overrides

        def token_id(token: str | None, fallback: int | None) -> int | None:
            if token is None:
                return fallback
            i = hf.convert_tokens_to_ids(token)
            if i is None or i == hf.unk_token_id and token != hf.unk_token:
                raise ValueError(f"token {token!r} is not in the vocabulary of the tokenizer in {directory}")
            return int(i)

        self.pad_id = token_id(pad_token, hf.pad_token_id)
        self.mask_id = token_id(mask_token, hf.mask_token_id)
        self.unk_id = hf.unk_token_id
        self.bos_id = hf.bos_token_id if hf.bos_token_id is not None else hf.cls_token_id
        self.eos_id = hf.eos_token_id if hf.eos_token_id is not None else hf.sep_token_id
        self.vocab_size = len(hf)
        self._check_pad(directory)

    def _check_pad(self, where: Path) -> None:
        if self.pad_id is None:
            raise ValueError(f"the tokenizer {where} has no padding token; pass pad_token=<a token of its vocabulary>")

    @classmethod
    def default(cls) -> TextTokenizer:
        """The project's caption tokenizer, ``tokenizers/omnimask_captions.model`` (shipped in the wheel
        as ``omnimask/_tokenizers/``)."""
        if not CAPTION_TOKENIZER_FILE.is_file():
            raise FileNotFoundError(
                f"the shipped caption tokenizer is not at {CAPTION_TOKENIZER_FILE}: this installation lacks "
                "omnimask/_tokenizers/ (a wheel built without the tokenizers/ folder?); reinstall omnimask, or "
                "retrain it with 'python tokenizers/train_sentencepiece.py --out <dir>' and pass that path"
            )
        return cls(CAPTION_TOKENIZER_FILE)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextTokenizer:
        """``TextTokenizer(path)``: the counterpart of :meth:`save`."""
        return cls(path)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the tokenizer into ``directory`` (created if needed; e.g. next to a model's
        ``config.json``) so :meth:`load` restores it with the same ids: ``text_tokenizer.json``
        (backend, special ids, vocabulary size) plus ``text_tokenizer.model`` (sentencepiece) or
        the Hugging Face tokenizer files. Returns the directory."""
        d = Path(directory).expanduser()
        d.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"backend": self.backend, "special_ids": self.special_ids, "vocab_size": self.vocab_size,
                                "mask_token": self._overrides[0], "pad_token": self._overrides[1]}  # fmt: skip
        if self.backend == "sentencepiece":
            (d / _SP_FILE).write_bytes(self._proto)
            meta["model_file"] = _SP_FILE
        else:
            self._hf.save_pretrained(str(d))
        (d / _META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return d

    def __getstate__(self) -> dict[str, Any]:  # sentencepiece processors are rebuilt from the proto bytes
        return {k: v for k, v in self.__dict__.items() if k != "_sp"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.backend == "sentencepiece":
            import sentencepiece as spm

            self._sp = spm.SentencePieceProcessor(model_proto=self._proto)

    # -- encoding
    @property
    def special_ids(self) -> dict[str, int | None]:
        """``{"pad": .., "unk": .., "bos": .., "eos": .., "mask": ..}``."""
        return {"pad": self.pad_id, "unk": self.unk_id, "bos": self.bos_id, "eos": self.eos_id, "mask": self.mask_id}

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str | bytes, where: str | None = None) -> list[int]:
        """Token ids of one caption, without special tokens. ``bytes`` are decoded as strict UTF-8
        (``ValueError`` naming ``where`` otherwise); empty or whitespace-only text gives ``[]``."""
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = utf8_text(text, where or "caption")
        elif not isinstance(text, str):
            raise TypeError(f"{where or 'caption'}: expected str or UTF-8 bytes, got {type(text).__name__}")
        if not text.strip():
            return []
        if self.backend == "sentencepiece":
            return self._sp.encode(text)
        return list(self._hf(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def _check_ids(self, ids: Sequence[int] | Any) -> list[int]:
        ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token id(s) {bad[:5]} outside the vocabulary (0..{self.vocab_size - 1})")
        return ids

    def decode(self, ids: Sequence[int] | Any) -> str:
        """Text of a list or 1-D tensor of ids; padding, bos/eos, mask and other special tokens are dropped.

        With the shipped model ``decode(encode(t))`` is ``t`` with runs of spaces collapsed to one and
        leading/trailing spaces removed (sentencepiece's whitespace handling); everything else,
        unknown characters included, comes back unchanged."""
        drop = {i for i in (self.pad_id, self.bos_id, self.eos_id, self.mask_id) if i is not None}
        ids = [i for i in self._check_ids(ids) if i not in drop]
        if self.backend == "sentencepiece":
            return self._sp.decode(ids)
        return self._hf.decode(ids, skip_special_tokens=True)

    def pieces(self, ids: Sequence[int] | Any) -> list[str]:
        """The vocabulary strings of ``ids`` (for inspection, e.g. ``["▁a", "▁seven", "<0xC3>"]``)."""
        ids = self._check_ids(ids)
        if self.backend == "sentencepiece":
            return [self._sp.id_to_piece(i) for i in ids]
        return list(self._hf.convert_ids_to_tokens(ids))

    def batch(
        self, texts: Sequence[str | bytes], max_length: int, add_bos_eos: bool = False, *,
        where: str | Sequence[str] | None = None, warn: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, int]:  # fmt: skip
        """Encode, truncate and pad captions to one ``(B, max_length)`` batch.

        Each row is ``[bos] tokens [eos]`` (with ``add_bos_eos``; M3AE's default is without) then
        ``pad_id`` up to ``max_length``. Captions longer than that keep their first tokens (and
        still end with eos); the number cut is returned and, with ``warn``, logged as a warning.
        (A cut inside a character's byte-fallback pieces makes that character decode as U+FFFD.)
        An empty or whitespace-only caption gives an all-padding row (``valid`` all False), also
        counted in a warning.

        Args:
            texts: B captions (``str``, or ``bytes`` decoded as strict UTF-8).
            max_length: L, at least 1 (3 with ``add_bos_eos``).
            where: names for error messages: one per caption, or a prefix (``"<where> [i]"``).
        Returns:
            ``(ids, valid, truncated)``: int64 ``(B, L)``, bool ``(B, L)`` (True = a real token,
            never padding), and how many captions were cut.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("batch() takes a sequence of captions; wrap a single caption in a list")
        low = 3 if add_bos_eos else 1
        if int(max_length) != max_length or max_length < low:
            raise ValueError(f"max_length must be an integer >= {low}, got {max_length!r}")
        if add_bos_eos and (self.bos_id is None or self.eos_id is None):
            raise ValueError(f"add_bos_eos=True, but the tokenizer {self.source} has no bos/eos (or cls/sep) token")
        if where is None or isinstance(where, str):
            names = [f"{where or 'caption'} [{i}]" for i in range(len(texts))]
        elif len(where) == len(texts):
            names = list(where)
        else:
            raise ValueError(f"where names {len(where)} captions, but there are {len(texts)}")
        room = max_length - 2 if add_bos_eos else max_length
        ids = torch.full((len(texts), max_length), self.pad_id, dtype=torch.long)
        valid = torch.zeros((len(texts), max_length), dtype=torch.bool)
        cut, empty, longest = 0, 0, 0
        for i, text in enumerate(texts):
            tokens = self.encode(text, names[i])
            if not tokens:
                empty += 1
                continue
            if len(tokens) > room:
                cut, longest = cut + 1, max(longest, len(tokens))
                tokens = tokens[:room]
            row = [self.bos_id, *tokens, self.eos_id] if add_bos_eos else tokens
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            valid[i, : len(row)] = True
        if warn and cut:
            logger.warning("truncated %d of %d caption(s) to max_length=%d tokens (the longest had %d content tokens, "
                           "room for %d)", cut, len(texts), max_length, longest, room)  # fmt: skip
        if warn and empty:
            logger.warning("%d of %d caption(s) are empty or whitespace-only: their rows are all padding (valid=False)",
                           empty, len(texts))  # fmt: skip
        return ids, valid, cut

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.source!r}, backend={self.backend}, vocab_size={self.vocab_size}, "
                f"{self.special_ids})")  # fmt: skip
