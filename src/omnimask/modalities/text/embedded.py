"""The ``captions`` part of the embedded dataset: generated English captions of the image part's digit
images (JSONL lines pointing into the sibling image part) and the tokenizer corpus. The text itself
comes from :func:`omnimask.data.text.digit_captions`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ...data.embedded import _each_digit, _finish_part, _part, embedded_part_root

_CAPTIONS_README = """\
omnimask embedded dataset, captions part ({version})

Captions of the image part's digit images (generated English text, 3 to 5 per image), one JSONL
line per image, in the image part's split:
  train.jsonl   {n_train} images, {train_captions} captions
  val.jsonl     {n_val} images, {val_captions} captions
  corpus.txt    every train caption, one per line ({train_captions} lines): the corpus the
                project's sentencepiece model (tokenizers/omnimask_captions.model) is trained on
A line: {{"image": "../image/train/3/0003.png", "captions": ["...", ...], "label": 3}}.
"image" is relative to this folder: it points into the sibling image part (<root>/{version}/image),
which is built with this one (ensure_embedded_dataset(parts=["captions"]) builds both).
omnimask.data.read_caption_jsonl reads the files; ImageCaptionDataset pairs images and captions.

Text: omnimask.data.text.digit_captions fills distinct templates from a fixed list of {templates}
(phrases and sentences, some of several sentences) with facts about the sample: its digit, the
image part's ink and background colours (named by colour_name), which one is lighter, stroke
weight (total ink of the 8x8 source), width (inked columns) and where the ink's centre of mass
sits; templates and synonyms are drawn from numpy default_rng([{seed}, index]). ASCII only.
Determinism: fixed seeds and plain text, so rebuilds give byte-identical files on one platform;
manifest.json records a sha256 over the files. The colour names come from thresholds on
floating-point colours, so another numpy build could name a borderline colour differently.
"""


@_part("captions", version=1, requires=("image",))
def _build_captions(out: Path, progress: bool) -> dict:
    """Write the captions part into ``out`` (an empty directory); return counts for the manifest."""
    from .captions import _CAPTION_SEED, _TEMPLATES, digit_captions

    counts: dict[str, dict[str, int]] = {}
    lines: dict[str, list[str]] = {"train": [], "val": []}
    corpus: list[str] = []
    n_captions = {"train": 0, "val": 0}
    for i, digit, split, c in _each_digit(out, progress, "captions", counts, folders=False):
        captions = digit_captions(digit, int(c), i)
        entry = {"image": f"../image/{split}/{c}/{i:04d}.png", "captions": captions, "label": int(c)}
        lines[split].append(json.dumps(entry, ensure_ascii=True) + "\n")
        n_captions[split] += len(captions)
        if split == "train":
            corpus += [t + "\n" for t in captions]
    for split, split_lines in lines.items():
        (out / f"{split}.jsonl").write_text("".join(split_lines), encoding="utf-8")
    (out / "corpus.txt").write_text("".join(corpus), encoding="utf-8")
    return {
        **_finish_part(
            out,
            counts,
            _CAPTIONS_README,
            train_captions=n_captions["train"],
            val_captions=n_captions["val"],
            templates=len(_TEMPLATES),
            seed=_CAPTION_SEED,
        ),  # fmt: skip
        "captions": n_captions,
        "image_part": "../image",
    }


def embedded_captions_root(root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """``<root>/v1/captions`` (``train.jsonl``/``val.jsonl`` captions of the image part's digits and the
    tokenizer corpus ``corpus.txt``), generated if needed, with the image part the captions point into."""
    return embedded_part_root("captions", root, progress)
