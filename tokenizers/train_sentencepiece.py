#!/usr/bin/env python
"""Train omnimask's caption tokenizer: a sentencepiece BPE model on the embedded dataset's captions.

The corpus is generated, not downloaded: every caption of the embedded digits' train split
(``omnimask.data.text.caption_corpus()``, the same lines as the captions part's ``corpus.txt``).
Training is single-threaded with fixed settings, so a rerun gives a byte-identical model.

Usage (from the repository root)::

    python tokenizers/train_sentencepiece.py             # rewrite tokenizers/omnimask_captions.{model,vocab}
    python tokenizers/train_sentencepiece.py --check     # retrain in memory; exit 1 if the shipped files differ
    python tokenizers/train_sentencepiece.py --out DIR   # write DIR/omnimask_captions.{model,vocab} instead
    python tokenizers/train_sentencepiece.py --corpus FILE --vocab-size 8000 --name mine   # your own text

See README.md beside this script for the resulting vocabulary and special tokens.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NAME = "omnimask_captions"

# Everything that decides the model's bytes. Special ids are fixed: the text modality and saved
# models rely on pad 0, unk 1, bos 2, eos 3 and <mask> 4 (a control symbol: never produced from text).
SETTINGS: dict[str, Any] = {
    "model_type": "bpe",
    "vocab_size": 1000,
    "pad_id": 0,
    "unk_id": 1,
    "bos_id": 2,
    "eos_id": 3,
    "pad_piece": "<pad>",
    "unk_piece": "<unk>",
    "bos_piece": "<s>",
    "eos_piece": "</s>",
    "control_symbols": ["<mask>"],
    "byte_fallback": True,  # characters outside the vocabulary become UTF-8 byte pieces, never <unk>
    "character_coverage": 1.0,
    "normalization_rule_name": "identity",  # no NFKC table: exact round trips and a ~14 KB model
    "remove_extra_whitespaces": True,
    "split_digits": True,
    "input_sentence_size": 0,  # use every sentence: no sampling
    "shuffle_input_sentence": False,
    "num_threads": 1,
    "minloglevel": 2,
}
SEED = 20240605


def _import_omnimask() -> None:
    try:
        import omnimask  # noqa: F401
    except ImportError:  # run from a source checkout without installing: use ../src
        sys.path.insert(0, str(HERE.parent / "src"))


def corpus_lines(corpus_file: str | Path | None = None) -> list[str]:
    """The training sentences: ``corpus_file`` (UTF-8, one per line, blank lines skipped) or, by
    default, the embedded train captions."""
    if corpus_file is None:
        _import_omnimask()
        from omnimask.data.text import caption_corpus

        return caption_corpus()
    data = Path(corpus_file).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise SystemExit(f"{corpus_file}:{line}: not valid UTF-8 ({e.reason})") from None
    return [line for line in text.splitlines() if line.strip()]


def train(lines: Sequence[str], **overrides: Any) -> bytes:
    """Train on ``lines`` with :data:`SETTINGS` (updated by ``overrides``); return the model file's bytes."""
    import sentencepiece as spm

    spm.set_random_generator_seed(SEED)
    model = io.BytesIO()
    # sentence_iterator + model_writer: no file names end up in the model's trainer spec.
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, **{**SETTINGS, **overrides})
    return model.getvalue()


def vocab_text(model: bytes) -> str:
    """The ``.vocab`` companion file: ``<piece>\\t<score>`` per id, in id order."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=model)
    return "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i) + 0.0:g}\n" for i in range(sp.get_piece_size()))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: this tokenizers/ folder)")
    ap.add_argument("--name", default=NAME, help=f"file name stem (default: {NAME})")
    ap.add_argument("--corpus", type=Path, help="train on this UTF-8 text file instead of the embedded captions")
    ap.add_argument("--vocab-size", type=int, default=SETTINGS["vocab_size"])
    ap.add_argument("--check", action="store_true", help="retrain and compare with the files in --out; write nothing")
    args = ap.parse_args(argv)
    lines = corpus_lines(args.corpus)
    model = train(lines, vocab_size=args.vocab_size)
    files = {args.out / f"{args.name}.model": model, args.out / f"{args.name}.vocab": vocab_text(model).encode("utf-8")}
    corpus_bytes = "".join(line + "\n" for line in lines).encode("utf-8")
    print(f"corpus: {len(lines)} lines, {len(corpus_bytes)} bytes, sha256 {hashlib.sha256(corpus_bytes).hexdigest()}")
    print(f"model: vocab {args.vocab_size}, {len(model)} bytes, sha256 {hashlib.sha256(model).hexdigest()}")
    if args.check:
        differ = [str(p) for p, data in files.items() if not p.is_file() or p.read_bytes() != data]
        print("differs: " + ", ".join(differ) if differ else "identical to the files in " + str(args.out))
        return 1 if differ else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for path, data in files.items():
        path.write_bytes(data)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
