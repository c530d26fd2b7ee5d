"""Text data: the caption tokenizer (shipped sentencepiece model and local Hugging Face folders), the
embedded captions, the image-caption readers (CSV, JSONL, tar shards) and datasets.

Every test writes under pytest's tmp_path; nothing touches the user's home directory.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omnimask.data import ensure_embedded_dataset, verify_part
from omnimask.data.embedded import load_digits_source, stratified_split
from omnimask.modalities.text import (
    CAPTION_TOKENIZER_FILE,
    CaptionListError,
    CaptionReadError,
    ImageCaptionDataset,
    ImageCaptions,
    ImageCaptionShards,
    TextTokenizer,
    caption_corpus,
    colour_name,
    digit_captions,
    digit_facts,
    embedded_caption_items,
    iter_caption_shards,
    read_caption_csv,
    read_caption_jsonl,
)
from omnimask.modalities.text import vocab as text_module
from script_loader import load_script

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return TextTokenizer.default()


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return caption_corpus()


@pytest.fixture(scope="module")
def captions_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = ensure_embedded_dataset(tmp_path_factory.mktemp("embedded"), parts=("captions",), progress=False)
    assert (root / "v1" / "image" / "manifest.json").is_file()  # the part the captions point into comes along
    return root


def _png(path: Path, colour: tuple[int, int, int] = (10, 200, 30), size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def _png_bytes(colour: tuple[int, int, int] = (1, 2, 3)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------- the shipped tokenizer


def test_special_token_ids(tok: TextTokenizer) -> None:
    assert tok.backend == "sentencepiece" and tok.vocab_size == len(tok) == 1000
    assert tok.special_ids == {"pad": 0, "unk": 1, "bos": 2, "eos": 3, "mask": 4}
    assert tok.pieces([0, 1, 2, 3, 4, 5, 260]) == ["<pad>", "<unk>", "<s>", "</s>", "<mask>", "<0x00>", "<0xFF>"]


def test_round_trip(tok: TextTokenizer, corpus: list[str]) -> None:
    samples = corpus[::97] + ["A handwritten 7 in dark blue on a pale yellow background.", "Two sentences. Here!"]
    for caption in samples:
        ids = tok.encode(caption)
        assert ids and all(5 <= i < 1000 for i in ids)  # never a special token
        assert tok.decode(ids) == caption
        assert tok.decode(torch.tensor(ids)) == caption
    # Runs of spaces collapse, leading/trailing spaces go (sentencepiece's whitespace handling).
    assert tok.decode(tok.encode("  a   seven  ")) == "a seven"
    # Common words of the corpus are single pieces.
    assert tok.pieces(tok.encode("a handwritten seven")) == ["▁a", "▁handwritten", "▁seven"]


def test_unknown_characters_use_byte_fallback(tok: TextTokenizer) -> None:
    for text in ("héllo wörld", "漢字", "🙂🙂", "tab\there", "Ωμέγα 7"):
        ids = tok.encode(text)
        assert tok.unk_id not in ids
        assert tok.decode(ids) == text
    assert any(p.startswith("<0x") for p in tok.pieces(tok.encode("漢字")))
    # A caption of only unknown characters still gives valid tokens.
    ids, valid, _ = tok.batch(["漢字"], 16)
    assert valid[0].sum() == 7 and tok.decode(ids[0]) == "漢字"  # "▁" and 6 UTF-8 bytes


def test_special_tokens_cannot_be_injected_by_text(tok: TextTokenizer) -> None:
    ids = tok.encode("a <mask> and <pad> and <s></s>")
    assert not set(ids) & {0, 1, 2, 3, 4}
    assert tok.decode(ids) == "a <mask> and <pad> and <s></s>"
    assert tok.decode([2, *tok.encode("a seven"), 4, 3, 0, 0]) == "a seven"  # specials are dropped


def test_batch_pads_and_reports_truncation(tok: TextTokenizer, caplog: pytest.LogCaptureFixture) -> None:
    long = " ".join(["a handwritten seven"] * 20)
    texts = ["a seven", long, "the digit 3."]
    with caplog.at_level(logging.WARNING, logger="omnimask.modalities.text.vocab"):
        ids, valid, cut = tok.batch(texts, 12, add_bos_eos=True)
    assert ids.shape == valid.shape == (3, 12) and ids.dtype == torch.long and valid.dtype == torch.bool
    assert cut == 1
    assert "truncated 1 of 3 caption(s) to max_length=12" in caplog.text
    assert torch.equal(valid, ids != tok.pad_id)  # padding is never valid, real tokens always are
    n = len(tok.encode("a seven"))
    assert ids[0, 0] == tok.bos_id and ids[0, n + 1] == tok.eos_id and not valid[0, n + 2 :].any()
    assert valid[1].all() and ids[1, -1] == tok.eos_id and ids[1, 1:-1].tolist() == tok.encode(long)[:10]
    plain, plain_valid, cut2 = tok.batch(texts, 64)
    assert cut2 == 0 and plain[0, :n].tolist() == tok.encode("a seven") and plain_valid.sum(1)[0] == n
    with caplog.at_level(logging.WARNING):
        caplog.clear()
        assert tok.batch([long], 4, warn=False)[2] == 1
        assert not caplog.records
    with pytest.raises(ValueError, match="max_length must be an integer >= 3"):
        tok.batch(["a"], 2, add_bos_eos=True)
    with pytest.raises(TypeError, match="sequence of captions"):
        tok.batch("a seven", 8)
    with pytest.raises(ValueError, match="where names 1 captions, but there are 2"):
        tok.batch(["a", "b"], 8, where=["only one"])


def test_empty_and_whitespace_captions(tok: TextTokenizer, caplog: pytest.LogCaptureFixture) -> None:
    assert tok.encode("") == [] and tok.encode(" \t\n ") == []
    with caplog.at_level(logging.WARNING, logger="omnimask.modalities.text.vocab"):
        for bos_eos in (False, True):
            ids, valid, cut = tok.batch(["", "a seven", "   "], 8, add_bos_eos=bos_eos)
            assert cut == 0
            assert not valid[0].any() and not valid[2].any() and valid[1].any()
            assert (ids[0] == tok.pad_id).all() and (ids[2] == tok.pad_id).all()
    assert "2 of 3 caption(s) are empty or whitespace-only" in caplog.text


def test_non_utf8_bytes_raise_naming_where(tok: TextTokenizer) -> None:
    assert tok.encode("é seven".encode()) == tok.encode("é seven")
    with pytest.raises(ValueError, match=r"caption 12: not valid UTF-8.*0xff at offset 2"):
        tok.encode(b"ab\xffcd", where="caption 12")
    with pytest.raises(ValueError, match=r"batch \[1\]: not valid UTF-8"):
        tok.batch(["fine", b"\xc3("], 8, where="batch")
    with pytest.raises(ValueError, match=r"list.csv:4: not valid UTF-8"):
        tok.batch([b"\xe9t\xe9"], 8, where=["list.csv:4"])
    with pytest.raises(TypeError, match="expected str or UTF-8 bytes, got int"):
        tok.encode(7)  # type: ignore[arg-type]


def test_missing_or_bad_model_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope" / "captions.model"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        TextTokenizer(missing)
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=f"cannot load sentencepiece model {bad}"):
        TextTokenizer(bad)
    with pytest.raises(ValueError, match="neither a TextTokenizer.save folder nor a Hugging Face"):
        TextTokenizer(tmp_path)  # a folder without tokenizer files
    with pytest.raises(ValueError, match=r"token id\(s\) \[1000\] outside the vocabulary"):
        TextTokenizer.default().decode([5, 1000])
    monkeypatch.setattr(text_module, "CAPTION_TOKENIZER_FILE", missing)
    with pytest.raises(FileNotFoundError, match="train_sentencepiece.py"):
        TextTokenizer.default()


def test_save_load_and_pickle(tok: TextTokenizer, tmp_path: Path) -> None:
    folder = tok.save(tmp_path / "model")
    assert (folder / "text_tokenizer.model").read_bytes() == CAPTION_TOKENIZER_FILE.read_bytes()
    again = TextTokenizer.load(folder)
    assert again.special_ids == tok.special_ids and again.vocab_size == tok.vocab_size
    assert again.encode("a pale red eight") == tok.encode("a pale red eight")
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.encode("the digit 4") == tok.encode("the digit 4")
    meta = json.loads((folder / "text_tokenizer.json").read_text())
    meta["special_ids"]["mask"] = 9
    (folder / "text_tokenizer.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="changed after saving"):
        TextTokenizer.load(folder)


def test_huggingface_tokenizer_folder(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "handwritten", "seven", "in", "red", "."]
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    hf = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                 sep_token="[SEP]", mask_token="[MASK]")  # fmt: skip
    hf.save_pretrained(tmp_path / "hf")
    tok = TextTokenizer(tmp_path / "hf")
    assert tok.backend == "huggingface" and tok.vocab_size == len(words)
    assert tok.special_ids == {"pad": 0, "unk": 1, "bos": 2, "eos": 3, "mask": 4}  # bos/eos from cls/sep
    assert tok.encode("a handwritten seven in red.") == [5, 6, 7, 8, 9, 10]
    assert tok.encode("a [MASK] seven") == [5, 1, 1, 1, 7]  # "[MASK]" in text is not the mask token
    assert tok.encode("a purple seven") == [5, 1, 7]  # unknown words: unk
    ids, valid, cut = tok.batch(["a seven", "   "], 5, add_bos_eos=True)
    assert ids.tolist() == [[2, 5, 7, 3, 0], [0, 0, 0, 0, 0]] and valid.sum().item() == 4 and cut == 0
    assert tok.decode(ids[0]) == "a seven"
    again = TextTokenizer.load(tok.save(tmp_path / "saved"))
    assert again.special_ids == tok.special_ids and again.encode("red seven") == [9, 7]
    no_pad = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    no_pad.save_pretrained(tmp_path / "no_pad")
    with pytest.raises(ValueError, match="has no padding token; pass pad_token="):
        TextTokenizer(tmp_path / "no_pad")
    assert TextTokenizer(tmp_path / "no_pad", pad_token="[PAD]", mask_token="[MASK]").special_ids["mask"] == 4


def test_retraining_reproduces_the_shipped_model(corpus: list[str]) -> None:
    script = load_script("tokenizers/train_sentencepiece.py")
    model = script.train(corpus)
    assert model == CAPTION_TOKENIZER_FILE.read_bytes()
    assert script.vocab_text(model) == CAPTION_TOKENIZER_FILE.with_suffix(".vocab").read_text(encoding="utf-8")
    assert not (REPO / "tokenizers" / "__init__.py").exists()  # would shadow the `tokenizers` library


# ---------------------------------------------------------------- generated captions


def test_caption_generation_is_deterministic_and_varied() -> None:
    images, labels = load_digits_source()
    all_captions = []
    for i in range(120):
        caps = digit_captions(images[i], int(labels[i]), i)
        assert caps == digit_captions(images[i], int(labels[i]), i)
        assert 3 <= len(caps) <= 5 and len(set(caps)) == len(caps)
        facts = digit_facts(images[i], int(labels[i]), i)
        for c in caps:
            assert c.isascii() and "\n" not in c and c == c.strip() and "  " not in c
            assert facts["name"] in c or str(facts["label"]) in c
        all_captions += caps
    multi = [c for c in all_captions if c.count(". ") + c.count("? ") >= 1]
    assert len(multi) > len(all_captions) // 5  # a good share of multi-sentence captions
    assert len({c.split()[0].lower() for c in all_captions}) >= 10  # many different openings
    assert len(set(all_captions)) > 0.95 * len(all_captions)  # a short phrase may recur for another image
    assert digit_captions(images[0], 0, 0, count=2) != digit_captions(images[1], 0, 1, count=2)
    with pytest.raises(ValueError, match="count must be in 1..20"):
        digit_captions(images[0], 0, 0, count=0)


def test_colour_names() -> None:
    assert colour_name((0, 0, 0)) == "black" and colour_name((255, 255, 255)) == "white"
    assert colour_name((128, 128, 128)) == "grey"
    assert colour_name((200, 30, 30)) == "red" and colour_name((20, 30, 60)) == "dark blue"
    assert colour_name((240, 200, 200)) == "pale red" and colour_name((60, 30, 0)) == "brown"


def test_embedded_captions_part(captions_root: Path, tmp_path: Path, tok: TextTokenizer, corpus: list[str]) -> None:
    part = captions_root / "v1" / "captions"
    names = ["README.txt", "corpus.txt", "manifest.json", "train.jsonl", "val.jsonl"]
    assert sorted(p.name for p in part.iterdir()) == names
    assert verify_part(part)
    assert (part / "corpus.txt").read_text(encoding="utf-8") == "".join(c + "\n" for c in corpus)
    other = ensure_embedded_dataset(tmp_path, parts=("captions",), progress=False) / "v1" / "captions"
    for name in ("train.jsonl", "val.jsonl", "corpus.txt", "manifest.json", "README.txt"):
        assert (other / name).read_bytes() == (part / name).read_bytes()
    images, labels = load_digits_source()
    is_val = stratified_split(labels)
    for split, want in (("train", ~is_val), ("val", is_val)):
        items = embedded_caption_items(split, captions_root, progress=False)
        assert len(items) == int(want.sum())
        ids = [int(Path(it.image).stem) for it in items]
        assert ids == np.flatnonzero(want).tolist()  # every image of the split, in order
        for it in items[::50]:
            assert Path(it.image).is_file() and Path(it.image).parent.parent.parent.name == "image"
            assert it.label == labels[int(Path(it.image).stem)] and 3 <= len(it.captions) <= 5
            assert all(tok.decode(tok.encode(c)) == c for c in it.captions)
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        embedded_caption_items("test", captions_root, progress=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------- readers


def test_read_caption_csv(tmp_path: Path) -> None:
    for name in ("a.png", "sub/b.png"):
        _png(tmp_path / "img" / name)
    csv_text = (
        "file_name,caption,label,extra\n"
        'a.png,"a seven, in red",7,x\n'
        'sub/b.png,"she said ""hi""\nover two lines",,y\n'
        "a.png,another caption for a,7,z\n"
        "sub/b.png,,,\n"
    )
    (tmp_path / "img" / "captions.csv").write_text(csv_text, encoding="utf-8")
    items = read_caption_csv(tmp_path / "img" / "captions.csv")
    assert items == [
        ImageCaptions(str(tmp_path / "img" / "a.png"), ("a seven, in red", "another caption for a"), 7),
        ImageCaptions(str(tmp_path / "img" / "sub" / "b.png"), ('she said "hi"\nover two lines', ""), -1),
    ]
    elsewhere = tmp_path / "lists" / "c.csv"
    elsewhere.parent.mkdir()
    elsewhere.write_text("caption,file_name\nhello,a.png\n", encoding="utf-8")
    assert read_caption_csv(elsewhere, image_root=tmp_path / "img")[0].image == str(tmp_path / "img" / "a.png")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"image,caption\na.png,x\n", r"bad.csv:1: missing column\(s\) \['file_name'\]"),
        (b"file_name,caption\na.png,one, two\n", r"bad.csv:2: 3 fields, the header has 2; quote a caption"),
        (b"file_name,caption,label\na.png,x,1\na.png\n", r"bad.csv:3: 1 field\(s\), the header has 3"),
        (b"file_name,caption\na.png,x\nmissing.png,y\n", r"bad.csv:3: image file does not exist: .*missing.png"),
        (b"file_name,caption\na.png,ok\na.png,caf\xe9\n", r"bad.csv:3: not valid UTF-8 .*0xe9"),
        (b"file_name,caption,label\na.png,x,seven\n", r"bad.csv:2: the label 'seven' is not an integer"),
        (b"file_name,caption,label\na.png,x,1\na.png,y,2\n", r"bad.csv:3: label 2 for 'a.png', but .*bad.csv:2 gave 1"),
        (b"file_name,caption\n, x\n", r"bad.csv:2: empty image path"),
        (b"file_name,caption\n", r"bad.csv: the file names no images"),
        (b"", r"bad.csv:1: the file is empty"),
    ],
)
def test_read_caption_csv_errors(tmp_path: Path, content: bytes, match: str) -> None:
    _png(tmp_path / "a.png")
    (tmp_path / "bad.csv").write_bytes(content)
    with pytest.raises(CaptionListError, match=match):
        read_caption_csv(tmp_path / "bad.csv")


def test_read_caption_jsonl(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    lines = [
        {"image": "a.png", "caption": "a red seven", "label": 7},
        {},  # replaced by a blank line below
        {"image": "b.png", "captions": ["first", "second"]},
        {"image": "a.png", "captions": ["a third"], "label": 7},
    ]
    text = "\n".join("" if not d else json.dumps(d) for d in lines) + "\n"
    (tmp_path / "caps.jsonl").write_text(text, encoding="utf-8")
    assert read_caption_jsonl(tmp_path / "caps.jsonl") == [
        ImageCaptions(str(tmp_path / "a.png"), ("a red seven", "a third"), 7),
        ImageCaptions(str(tmp_path / "b.png"), ("first", "second"), -1),
    ]
    assert len(read_caption_jsonl(tmp_path / "caps.jsonl", image_root="/nowhere", check_files=False)) == 2
    with pytest.raises(FileNotFoundError, match="captions JSONL does not exist"):
        read_caption_jsonl(tmp_path / "none.jsonl")


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"image": "a.png", "caption": "x"', r"bad.jsonl:2: not valid JSON"),
        ('["a.png", "x"]', r"bad.jsonl:2: expected an object"),
        ('{"caption": "x"}', r"bad.jsonl:2: no 'image' path string"),
        ('{"image": "a.png"}', r"bad.jsonl:2: expected 'caption'"),
        ('{"image": "a.png", "captions": []}', r"bad.jsonl:2: expected 'caption'.*non-empty"),
        ('{"image": "a.png", "captions": ["ok", 3]}', r"bad.jsonl:2: expected 'caption'"),
        ('{"image": "a.png", "caption": "x", "captions": ["y"]}', r"bad.jsonl:2: give 'caption' or 'captions'"),
        ('{"image": "b.png", "caption": "x", "label": "7"}', r"bad.jsonl:2: the label '7' is not an integer"),
        ('{"image": "a.png", "caption": "x", "label": 7}', r"bad.jsonl:2: label 7 for 'a.png', but .*:1 gave -1"),
        ('{"image": "gone.png", "caption": "x"}', r"bad.jsonl:2: image file does not exist"),
    ],
)
def test_read_caption_jsonl_errors(tmp_path: Path, line: str, match: str) -> None:
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    (tmp_path / "bad.jsonl").write_text('{"image": "a.png", "caption": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(CaptionListError, match=match):
        read_caption_jsonl(tmp_path / "bad.jsonl")


def test_read_caption_jsonl_non_utf8(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    data = b'{"image": "a.png", "caption": "ok"}\n\n{"image": "a.png", "caption": "\xff"}\n'
    (tmp_path / "bad.jsonl").write_bytes(data)
    with pytest.raises(CaptionListError, match=r"bad.jsonl:3: not valid UTF-8"):
        read_caption_jsonl(tmp_path / "bad.jsonl")


# ---------------------------------------------------------------- tar shards


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tar_shards(tmp_path: Path, tok: TextTokenizer, caplog: pytest.LogCaptureFixture) -> None:
    _tar(tmp_path / "shard-000.tar", [
        ("s/0001.png", _png_bytes((255, 0, 0))), ("s/0001.txt", b"a red square\n"),
        ("s/0002.json", json.dumps({"captions": ["one", "two"], "label": 3}).encode()), ("s/0002.png", _png_bytes()),
    ])  # fmt: skip
    _tar(tmp_path / "shard-001.tar", [("0003.jpg", _png_bytes()), ("0003.txt", "café".encode()), ("0003.cls", b"5")])
    samples = list(iter_caption_shards(str(tmp_path / "shard-*.tar")))
    assert [(s.where.replace(f"{tmp_path}/", ""), s.captions, s.label) for s in samples] == [
        ("shard-000.tar:s/0001", ("a red square",), -1),
        ("shard-000.tar:s/0002", ("one", "two"), 3),
        ("shard-001.tar:0003", ("café",), 5),
    ]
    ds = ImageCaptionShards(sorted(tmp_path.glob("shard-*.tar")), None, tok, 16, caption_choice="first")
    items = list(ds)
    assert len(items) == 3 and items[0]["image"].shape == (3, 8, 8) and items[0]["image"][0].min() == 1.0
    assert tok.decode(items[2]["text"]) == "café" and items[1]["label"] == 3 and items[0]["label"] == -1
    assert all(it["skipped"] == 0 and it["text"].shape == (16,) for it in items)

    # Bad samples: no caption, a non-UTF-8 caption, a corrupt image, then a good one.
    _tar(tmp_path / "bad.tar", [
        ("k1.png", _png_bytes()), ("k2.png", _png_bytes()), ("k2.txt", b"\xff\xfe"),
        ("k3.png", b"not a png"), ("k3.txt", b"broken"), ("k4.png", _png_bytes()), ("k4.txt", b"good"),
    ])  # fmt: skip
    with pytest.raises(CaptionReadError, match=r"bad.tar:k1: no caption"):
        list(iter_caption_shards(tmp_path / "bad.tar"))
    skipped: list[tuple[str, str]] = []
    with caplog.at_level(logging.WARNING):
        got = list(iter_caption_shards(tmp_path / "bad.tar", on_error="skip", skipped=skipped))
    assert [s.where.rsplit(":", 1)[1] for s in got] == ["k3", "k4"] and got[0].skipped == 2
    assert "k2.txt: not valid UTF-8" in skipped[1][1]
    _tar(tmp_path / "bad_image.tar", [("k3.png", b"not a png"), ("k3.txt", b"broken")])
    with pytest.raises(CaptionReadError, match=r"cannot decode image .*bad_image.tar:k3"):
        list(ImageCaptionShards(tmp_path / "bad_image.tar", None, tok, 8, on_error="raise"))
    lenient = ImageCaptionShards(tmp_path / "bad.tar", None, tok, 8, on_error="skip")
    (only,) = list(lenient)
    assert only["key"].endswith("bad.tar:k4") and only["skipped"] == 3 and len(lenient.skipped) == 3

    # A truncated archive and a missing shard name the shard.
    data = (tmp_path / "shard-000.tar").read_bytes()
    for cut in (700, 512 * 4 + 100, 512 * 4):  # inside member data, inside a header, at a header boundary
        (tmp_path / "cut.tar").write_bytes(data[:cut])
        with pytest.raises(CaptionReadError, match=r"cut.tar: not a readable tar archive"):
            list(iter_caption_shards(tmp_path / "cut.tar"))
    gz = tmp_path / "zipped.tar.gz"
    with tarfile.open(gz, "w:gz") as tar, tarfile.open(tmp_path / "shard-001.tar") as plain:
        for member in plain.getmembers():
            tar.addfile(member, plain.extractfile(member))
    assert [s.captions for s in iter_caption_shards(gz)] == [("café",)]  # compressed shards stream too
    with pytest.raises(CaptionReadError, match=r"cannot read tar shard .*gone.tar"):
        list(iter_caption_shards([tmp_path / "gone.tar"]))
    with pytest.raises(FileNotFoundError, match="no tar shard matches"):
        iter_caption_shards(str(tmp_path / "none-*.tar")).__next__()


# ---------------------------------------------------------------- dataset


def test_image_caption_dataset(tmp_path: Path, tok: TextTokenizer, caplog: pytest.LogCaptureFixture) -> None:
    a, b = _png(tmp_path / "a.png"), _png(tmp_path / "b.png", size=12)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    items = [ImageCaptions(str(a), ("a green square", "a seven " * 30, "third"), 7), (b, "only caption"),
             (tmp_path / "broken.png", ["x"], 1)]  # fmt: skip
    ds = ImageCaptionDataset(items, None, tok, 20)
    assert len(ds) == 3 and ds.targets == [7, -1, 1]
    seen = set()
    with caplog.at_level(logging.WARNING):
        for _ in range(12):
            item = ds[0]
            seen.add(item["caption_index"])
    assert seen == {0, 1, 2}  # "random" picks among all captions
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    assert item["text"].shape == item["text_valid"].shape == (20,) and item["text"].dtype == torch.long
    assert item["label"] == 7 and item["index"] == 0 and item["skipped"] == 0
    assert ds.truncated >= 1 and "longer than max_length=20" in caplog.text
    assert not ds[1]["text_valid"][len(tok.encode("only caption")) :].any() and ds[1]["label"] == -1

    first = ImageCaptionDataset(items[:2], lambda im: torch.zeros(1), tok, 8, caption_choice="first", add_bos_eos=True)
    x = first[0]
    assert x["caption_index"] == 0 and x["image"].shape == (1,) and x["text"][0] == tok.bos_id
    assert tok.decode(x["text"]) == "a green square" and not x["text_truncated"]

    with pytest.raises(CaptionReadError, match="cannot decode image .*broken.png"):
        ds[2]
    lenient = ImageCaptionDataset(items, None, tok, 20, on_error="skip")
    got = lenient[2]
    assert got["index"] == 0 and got["skipped"] == 1 and lenient.skipped[0][0] == str(tmp_path / "broken.png")
    with pytest.raises(ValueError, match="needs at least one caption"):
        ImageCaptionDataset([(a, [])], None, tok, 8)
    with pytest.raises(ValueError, match="caption_choice must be"):
        ImageCaptionDataset(items, None, tok, 8, caption_choice="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_length must be"):
        ImageCaptionDataset(items, None, tok, 2, add_bos_eos=True)
    with pytest.raises(IndexError):
        ds[3]


def test_embedded_image_caption_dataset(captions_root: Path, tok: TextTokenizer) -> None:
    items = embedded_caption_items("val", captions_root, progress=False)
    ds = ImageCaptionDataset(items, None, tok, 32, caption_choice="first")
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 32, 32) and batch["text"].shape == (4, 32)
    assert batch["label"].tolist() == [it.label for it in items[:4]]
    assert not batch["text_truncated"].any()
    assert [tok.decode(t) for t in batch["text"]] == [it.captions[0] for it in items[:4]]
