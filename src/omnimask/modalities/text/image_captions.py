"""Image-caption pairs: readers for the common layouts and the datasets that pair an image tensor
with a tokenized caption (M3AE-style vision-language data).

Layouts:

* a folder of images with a captions CSV: a header naming ``file_name`` and ``caption`` (and
  optionally ``label``), one caption per row, fields quoted as the ``csv`` module does (a caption
  with commas or quotes is ``"..."``-quoted); several rows may name the same image;
* the same with a JSONL file: one object per line, ``{"image": path, "caption": "..."}`` or
  ``{"image": path, "captions": ["...", ...]}``, optionally ``"label": int``;
* webdataset-style tar shards: members ``<key>.<ext>`` grouped by key (consecutive members), an
  image (``.jpg``/``.png``/...) plus ``.txt`` (one caption) and/or ``.json`` (``caption`` /
  ``captions`` / ``label``) and optionally ``.cls`` (an int label); read in streaming mode with
  the stdlib ``tarfile``, nothing extracted to disk.

Relative image paths resolve against ``image_root`` if given, else the list file's folder. The
readers return :class:`ImageCaptions` items, one per image, captions in file order. Errors in a
list name ``<file>:<line>`` (:class:`CaptionListError`); unusable images or shard members raise
:class:`CaptionReadError` naming them, or are skipped with a warning under ``on_error="skip"``.
Text handling (empty captions, non-UTF-8 bytes, truncation) is described in :mod:`omnimask.data.text`.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import os
import posixpath
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, get_worker_info
from torchvision.transforms.v2 import functional as TF

from ...data.errors import DataReadError, check_readable_file, read_with_policy
from ..image.folder import IMAGE_EXTENSIONS, load_image
from .vocab import TextTokenizer, utf8_text

__all__ = [
    "CaptionListError", "CaptionReadError", "ImageCaptionDataset", "ImageCaptionShards", "ImageCaptions",
    "ShardSample", "embedded_caption_items", "iter_caption_shards", "read_caption_csv", "read_caption_jsonl",
]  # fmt: skip

logger = logging.getLogger(__name__)

_SHARD_IMAGE_EXTS = tuple(e.lstrip(".") for e in IMAGE_EXTENSIONS)
_EXTRA = "\0extra"  # csv.DictReader's key for fields beyond the header


class CaptionListError(ValueError):
    """A malformed captions CSV or JSONL file; the message starts with ``<file>:<line>``."""


class CaptionReadError(DataReadError):
    """An image or tar shard (member) that cannot be used; the message names it and the problem."""


class ImageCaptions(NamedTuple):
    """One image and its captions (``label`` -1 when the list gives none)."""

    image: str
    captions: tuple[str, ...]
    label: int = -1


# ---------------------------------------------------------------- list files


def _read_text(path: Path, what: str) -> str:
    """The whole file as strict UTF-8 (a leading BOM dropped); errors name ``<file>:<line>``."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} does not exist: {path}")
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CaptionListError(f"{path}:{line}: not valid UTF-8 ({e.reason}: byte 0x{data[e.start]:02x}); "
                               "re-encode the file as UTF-8") from None  # fmt: skip


class _Pairs:
    """Collects (image, captions, label) entries, merging repeated images in first-seen order."""

    def __init__(self, base: Path, check_files: bool) -> None:
        self.base, self.check_files = base, check_files
        self.entries: dict[str, tuple[list[str], int, str]] = {}

    def add(self, name: str, captions: list[str], label: int, where: str) -> None:
        if not name.strip():
            raise CaptionListError(f"{where}: empty image path")
        p = Path(name).expanduser()
        path = os.path.normpath(p if p.is_absolute() else self.base / p)
        if path in self.entries:
            first, first_label, first_where = self.entries[path]
            if label != first_label:
                raise CaptionListError(f"{where}: label {label} for {name!r}, but {first_where} gave {first_label}")
            first.extend(captions)
            return
        if self.check_files and not os.path.isfile(path):
            raise CaptionListError(f"{where}: image file does not exist: {path}")
        self.entries[path] = (list(captions), label, where)

    def items(self, source: Path) -> list[ImageCaptions]:
        if not self.entries:
            raise CaptionListError(f"{source}: the file names no images")
        return [ImageCaptions(p, tuple(c), label) for p, (c, label, _) in self.entries.items()]


def _base(image_root: str | os.PathLike[str] | None, list_file: Path) -> Path:
    """Where relative image paths start: ``image_root`` if given, else the list file's folder."""
    return Path(os.path.abspath(Path(image_root).expanduser() if image_root is not None else list_file.parent))


def _label(raw: Any, where: str, text: bool = False) -> int:
    """An int label >= -1 from a JSON value (``None`` = -1) or, with ``text``, a CSV/.cls field ("" = -1)."""
    if raw is None or (text and not raw.strip()):
        return -1
    try:
        value = int(raw.strip()) if text else raw
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise CaptionListError(f"{where}: the label {raw!r} is not an integer >= 0 (or -1 for none)")
    return value


def read_caption_csv(
    csv_file: str | os.PathLike[str], image_root: str | os.PathLike[str] | None = None, *,
    image_column: str = "file_name", caption_column: str = "caption", label_column: str = "label",
    check_files: bool = True,
) -> list[ImageCaptions]:  # fmt: skip
    """Read a captions CSV: a header with ``image_column`` and ``caption_column`` (other columns
    are ignored; ``label_column`` is read when present, empty = -1), then one caption per row.

    Returns:
        One :class:`ImageCaptions` per distinct image in first-seen order, absolute paths.
    Raises:
        FileNotFoundError: no CSV file.
        CaptionListError: ``<file>:<line>: ...`` for non-UTF-8 bytes, a missing column, a row with
            too few or too many fields (unquoted commas), an empty image path, a bad or
            conflicting label, a missing image (``check_files``), or no rows. The line is the
            last line of the record (a quoted caption may span lines).
    """
    csv_file = Path(csv_file).expanduser()
    reader = csv.DictReader(io.StringIO(_read_text(csv_file, "captions CSV"), newline=""), restkey=_EXTRA)
    if reader.fieldnames is None:
        raise CaptionListError(f"{csv_file}:1: the file is empty; expected a header '{image_column},{caption_column}'")
    reader.fieldnames = [name.strip() for name in reader.fieldnames]
    missing = [c for c in (image_column, caption_column) if c not in reader.fieldnames]
    if missing:
        raise CaptionListError(f"{csv_file}:1: missing column(s) {missing} in the header {reader.fieldnames}")
    pairs = _Pairs(_base(image_root, csv_file), check_files)
    for row in reader:
        where, n = f"{csv_file}:{reader.line_num}", len(reader.fieldnames)
        if _EXTRA in row:
            raise CaptionListError(f"{where}: {n + len(row[_EXTRA])} fields, the header has {n}; "
                                   'quote a caption that contains commas ("a, b")')  # fmt: skip
        if any(v is None for v in row.values()):
            raise CaptionListError(f"{where}: {sum(v is not None for v in row.values())} field(s), the header has {n}")
        label = _label(row.get(label_column), where, text=True)
        pairs.add(row[image_column].strip(), [row[caption_column]], label, where)
    return pairs.items(csv_file)


def read_caption_jsonl(
    jsonl_file: str | os.PathLike[str], image_root: str | os.PathLike[str] | None = None, *, check_files: bool = True
) -> list[ImageCaptions]:
    """Read a captions JSONL file: one object per line with ``"image"`` and either ``"caption"``
    (a string) or ``"captions"`` (a non-empty list of strings), optionally ``"label"`` (int).
    Blank lines are skipped; an image named on several lines gets all their captions.

    Returns:
        One :class:`ImageCaptions` per distinct image in first-seen order, absolute paths.
    Raises:
        FileNotFoundError: no JSONL file.
        CaptionListError: ``<file>:<line>: ...`` for non-UTF-8 bytes, invalid JSON, a line that is
            not an object, a missing/empty ``image``, missing or non-string captions, both
            ``caption`` and ``captions``, a bad or conflicting label, a missing image
            (``check_files``), or no entries.
    """
    jsonl_file = Path(jsonl_file).expanduser()
    text = _read_text(jsonl_file, "captions JSONL")
    pairs = _Pairs(_base(image_root, jsonl_file), check_files)
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{jsonl_file}:{line_no}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise CaptionListError(f"{where}: not valid JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(entry, dict):
            raise CaptionListError(f"{where}: expected an object {{\"image\": ..., \"caption(s)\": ...}}, "
                                   f"got {type(entry).__name__}")  # fmt: skip
        image = entry.get("image")
        if not isinstance(image, str):
            raise CaptionListError(f"{where}: no 'image' path string (keys: {sorted(entry)})")
        pairs.add(image, _entry_captions(entry, where), _label(entry.get("label"), where), where)
    return pairs.items(jsonl_file)


def _entry_captions(entry: dict, where: str) -> list[str]:
    """The captions of a JSONL line or a shard's ``.json`` member (``caption`` xor ``captions``)."""
    if "caption" in entry and "captions" in entry:
        raise CaptionListError(f"{where}: give 'caption' or 'captions', not both")
    captions = [entry["caption"]] if "caption" in entry else entry.get("captions")
    if not isinstance(captions, list) or not captions or not all(isinstance(c, str) for c in captions):
        got = json.dumps({k: entry.get(k) for k in ("caption", "captions")})[:200]
        raise CaptionListError(f"{where}: expected 'caption': \"...\" or 'captions': [\"...\", ...] (a non-empty "
                               f"list of strings), got {got}")  # fmt: skip
    return captions


# ---------------------------------------------------------------- tar shards


class ShardSample(NamedTuple):
    """One sample of a tar shard: ``where`` = ``<shard>:<key>``, the image file's bytes, its
    captions and label (-1 if none), and how many bad samples were skipped just before it."""

    where: str
    image: bytes
    captions: tuple[str, ...]
    label: int
    skipped: int


def _expand_shards(shards: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """A list of shard paths: a glob pattern (``"data/*.tar"``), a folder (its ``*.tar``, ``*.tar.gz``
    and ``*.tgz`` files, sorted), one path, or a sequence of them."""
    items = [shards] if isinstance(shards, (str, os.PathLike)) else list(shards)
    out: list[str] = []
    for s in map(os.fspath, items):
        s = os.path.expanduser(s)
        if glob.has_magic(s):
            found = sorted(glob.glob(s))
            if not found:
                raise FileNotFoundError(f"no tar shard matches {s!r}")
            out += found
        elif os.path.isdir(s):
            found = sorted(p for ext in ("*.tar", "*.tar.gz", "*.tgz") for p in glob.glob(os.path.join(s, ext)))
            if not found:
                raise FileNotFoundError(f"the folder {s} holds no tar shards (*.tar, *.tar.gz, *.tgz)")
            out += found
        else:
            out.append(s)
    if not out:
        raise ValueError("no tar shards given")
    return out


def _shard_sample(shard: str, key: str, members: dict[str, bytes]) -> tuple[bytes, tuple[str, ...], int]:
    """Image bytes, captions and label of one key's members; CaptionReadError if unusable."""
    where = f"{shard}:{key}"
    image = next((members[e] for e in _SHARD_IMAGE_EXTS if e in members), None)
    if image is None:
        exts = "/.".join(_SHARD_IMAGE_EXTS)
        raise CaptionReadError(f"{where}: no image member (.{exts}); members: {sorted(members)}")
    captions: list[str] = []
    label = -1
    try:
        if "txt" in members:
            captions.append(utf8_text(members["txt"], f"{where}.txt").strip())
        if "json" in members:
            try:
                meta = json.loads(utf8_text(members["json"], f"{where}.json"))
            except json.JSONDecodeError as e:
                raise CaptionListError(f"{where}.json: not valid JSON ({e.msg}, line {e.lineno})") from None
            if not isinstance(meta, dict):
                raise CaptionListError(f"{where}.json: expected an object, got {type(meta).__name__}")
            if "caption" in meta or "captions" in meta:
                captions += _entry_captions(meta, f"{where}.json")
            label = _label(meta.get("label"), f"{where}.json")
        if "cls" in members:
            label = _label(utf8_text(members["cls"], f"{where}.cls"), f"{where}.cls", text=True)
    except ValueError as e:  # non-UTF-8 text, bad JSON or label: a bad sample, like a corrupt image
        raise CaptionReadError(str(e)) from None
    if not captions:
        raise CaptionReadError(f"{where}: no caption (.txt, or .json with 'caption'/'captions'); "
                               f"members: {sorted(members)}")  # fmt: skip
    return image, tuple(captions), label


def iter_caption_shards(
    shards: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
    on_error: Literal["raise", "skip"] = "raise", skipped: list[tuple[str, str]] | None = None,
) -> Iterator[ShardSample]:  # fmt: skip
    """Stream the samples of webdataset-style tar shards, in shard and member order.

    Consecutive members with the same key (the member path up to the first dot of its file
    name) form a sample; directories and hidden members are ignored. A sample needs an image
    member and a caption (``.txt`` and/or ``.json``); the image is returned undecoded.

    Args:
        shards: a glob pattern, a path, or a sequence of them.
        on_error: ``"raise"``: a missing or corrupt shard or a bad sample raises
            :class:`CaptionReadError` naming ``<shard>`` or ``<shard>:<key>``. ``"skip"``: it is
            logged, appended to ``skipped`` as ``(where, message)``, and reading goes on (with the
            next shard after a corrupt archive).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    failures = 0

    def fail(e: CaptionReadError, where: str) -> None:
        nonlocal failures
        if on_error == "raise":
            raise e
        failures += 1
        if skipped is not None:
            skipped.append((where, str(e)))
        logger.warning("skipping %s: %s", where, e)

    for shard in _expand_shards(shards):
        try:
            size = check_readable_file(shard, CaptionReadError, "tar shard")
        except CaptionReadError as e:
            fail(e, shard)
            continue
        try:
            with tarfile.open(shard, mode="r|*") as tar:  # "r|": a forward-only stream, no seeking
                for key, members in _tar_groups(tar, size):
                    try:
                        sample = ShardSample(f"{shard}:{key}", *_shard_sample(shard, key, members), failures)
                    except CaptionReadError as e:
                        fail(e, f"{shard}:{key}")
                        continue
                    failures = 0
                    yield sample
        except (tarfile.TarError, EOFError, OSError) as e:
            fail(CaptionReadError(f"{shard}: not a readable tar archive ({type(e).__name__}: {e})"), shard)


def _tar_groups(tar: tarfile.TarFile, size: int) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` for each run of consecutive members sharing a key.

    ``tarfile`` takes an archive cut inside a member header for a normal end; an uncompressed
    archive of ``size`` bytes must therefore still hold an end-of-archive block after its last
    member, else it is reported as truncated (before its last, possibly incomplete, sample)."""
    key, members = None, {}
    for member in tar:
        base = posixpath.basename(member.name)
        if not member.isfile() or base.startswith(".") or "." not in base:
            continue
        stem, ext = base.split(".", 1)
        this = posixpath.join(posixpath.dirname(member.name), stem)
        if key is not None and this != key:
            yield key, members
            members = {}
        key = this
        members[ext.lower()] = tar.extractfile(member).read()  # type: ignore[union-attr]
    if getattr(tar.fileobj, "comptype", "tar") == "tar" and size - tar.offset < tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"the archive stops at byte {size} without an end-of-archive block (truncated?)")
    if key is not None:
        yield key, members


# ---------------------------------------------------------------- datasets


class _CaptionItems:
    """What both datasets share: checking the options and turning (image, captions) into an item."""

    def _setup(self, image_transform: Callable[[Image.Image], Any] | None, tokenizer: TextTokenizer, max_length: int,
               caption_choice: str, add_bos_eos: bool, channels: int, on_error: str) -> None:  # fmt: skip
        if caption_choice not in ("random", "first"):
            raise ValueError(f"caption_choice must be 'random' or 'first', got {caption_choice!r}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
        if not isinstance(tokenizer, TextTokenizer):
            raise TypeError(f"tokenizer must be a TextTokenizer, got {type(tokenizer).__name__}")
        tokenizer.batch([], max_length, add_bos_eos)  # validates max_length against add_bos_eos now, not per item
        self.image_transform, self.tokenizer, self.max_length = image_transform, tokenizer, int(max_length)
        self.caption_choice, self.add_bos_eos = caption_choice, add_bos_eos
        self.channels, self.on_error = channels, on_error
        self.skipped: list[tuple[str, str]] = []
        self.truncated = 0

    def _item(self, img: Image.Image, captions: Sequence[str], label: int, where: str) -> dict[str, Any]:
        if self.image_transform is not None:
            x = self.image_transform(img)
        else:
            x = TF.to_dtype(TF.to_image(img), torch.float32, scale=True).as_subclass(torch.Tensor)
        # One draw of torch's global RNG per item: under SeededDataset the choice depends on the index only.
        k = int(torch.randint(len(captions), ())) if self.caption_choice == "random" else 0
        ids, valid, cut = self.tokenizer.batch([captions[k]], self.max_length, self.add_bos_eos,
                                               where=[f"{where} caption {k}"], warn=False)  # fmt: skip
        if cut:
            self.truncated += 1
            if self.truncated == 1:  # once per process; the count keeps growing in .truncated
                logger.warning("caption %d of %s is longer than max_length=%d tokens and was truncated; further "
                               "truncations are counted in .truncated and in the items' 'text_truncated'",
                               k, where, self.max_length)  # fmt: skip
        return {"image": x, "text": ids[0], "text_valid": valid[0], "label": label, "caption_index": k,
                "text_truncated": bool(cut)}  # fmt: skip


class ImageCaptionDataset(_CaptionItems, Dataset):
    """Image-caption pairs from :class:`ImageCaptions` items (e.g. :func:`read_caption_jsonl`).

    Each item is ``{"image": x, "text": ids, "text_valid": valid, "label": int, "caption_index": int,
    "text_truncated": bool, "index": int, "skipped": int}``: ``x`` is ``image_transform(pil_image)``
    or, without a transform, float32 ``(C, H, W)`` in [0, 1]; ``ids`` int64 ``(max_length,)`` and
    ``valid`` bool ``(max_length,)`` from :meth:`TextTokenizer.batch` (an empty caption is all
    padding, valid all False); ``label`` is -1 when unknown; ``caption_index`` says which of the
    image's captions was used: ``caption_choice="random"`` draws one with torch's global RNG each
    time (so each epoch may see another), ``"first"`` always takes the first.

    Unreadable images: ``on_error="raise"`` raises :class:`CaptionReadError` naming the file;
    ``"skip"`` logs it, records it in :attr:`skipped` (per process), and reads the next items
    (wrapping) up to ``max_skips`` reads; ``"index"`` is the item returned and ``"skipped"`` the
    failed reads behind it. Truncated captions are counted in :attr:`truncated` (per process) and
    the first is logged.
    """

    def __init__(
        self,
        items: Sequence[ImageCaptions | tuple[str | os.PathLike[str], Sequence[str] | str] | tuple[Any, Any, int]],
        image_transform: Callable[[Image.Image], Any] | None,
        tokenizer: TextTokenizer,
        max_length: int = 64,
        caption_choice: Literal["random", "first"] = "random",
        *,
        add_bos_eos: bool = False,
        channels: int = 3,
        on_error: Literal["raise", "skip"] = "raise",
        max_skips: int = 10,
    ) -> None:
        self._setup(image_transform, tokenizer, max_length, caption_choice, add_bos_eos, channels, on_error)
        if int(max_skips) != max_skips or max_skips < 1:
            raise ValueError(f"max_skips must be an integer >= 1, got {max_skips!r}")
        self.max_skips = int(max_skips)
        self.items: list[ImageCaptions] = []
        for entry in items:
            path, captions, label = (*entry, -1) if len(entry) == 2 else entry
            captions = (captions,) if isinstance(captions, str) else tuple(captions)
            if not captions or not all(isinstance(c, str) for c in captions):
                raise ValueError(f"image {os.fspath(path)} needs at least one caption, all str; got {captions!r}")
            self.items.append(ImageCaptions(os.fspath(path), captions, int(label)))
        if not self.items:
            raise ValueError("ImageCaptionDataset needs at least one (image, captions) item")
        self._paths = [(it.image, k) for k, it in enumerate(self.items)]  # read_with_policy's (path, label) pairs

    @property
    def targets(self) -> list[int]:
        """Label of every item (-1 = unknown), in item order."""
        return [it.label for it in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, path: str) -> Image.Image:
        check_readable_file(path, CaptionReadError, "image")
        try:
            return load_image(path, self.channels)
        except ValueError as e:
            raise CaptionReadError(str(e)) from e

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.items)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for dataset of {n} images")
        j, k, img, failures = read_with_policy(
            self._paths, index % n, self._read, on_error=self.on_error, max_skips=self.max_skips,
            skipped=self.skipped, error=CaptionReadError, what="image", logger=logger,
        )  # fmt: skip
        item = self.items[k]
        return {**self._item(img, item.captions, item.label, item.image), "index": j, "skipped": failures}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(images={len(self)}, captions={sum(len(it.captions) for it in self.items)}, "
                f"max_length={self.max_length}, caption_choice={self.caption_choice!r}, on_error={self.on_error!r})")  # fmt: skip


def _process_slot() -> tuple[int, int]:
    """``(rank, world size)`` of this process in a joined process group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ImageCaptionShards(_CaptionItems, IterableDataset):
    """Image-caption pairs streamed from webdataset-style tar shards (:func:`iter_caption_shards`).

    Items are those of :class:`ImageCaptionDataset` with ``"key"`` (``<shard>:<key>``) in place of
    ``"index"``. Under DDP rank ``r`` of ``R`` reads shards ``r, r + R, ...``, and DataLoader
    worker ``w`` of ``W`` every ``W``-th of those (so use at least ``R * W`` shards). Bad shards, samples or images follow ``on_error`` as in :func:`iter_caption_shards`;
    ``"skipped"`` counts the bad samples skipped just before an item.
    """

    def __init__(
        self,
        shards: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        image_transform: Callable[[Image.Image], Any] | None,
        tokenizer: TextTokenizer,
        max_length: int = 64,
        caption_choice: Literal["random", "first"] = "random",
        *,
        add_bos_eos: bool = False,
        channels: int = 3,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> None:
        self._setup(image_transform, tokenizer, max_length, caption_choice, add_bos_eos, channels, on_error)
        self.shards = _expand_shards(shards)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        rank, world = _process_slot()
        shards = self.shards[rank::world]  # each process (DDP rank) its own shards ...
        shards = shards if info is None else shards[info.id :: info.num_workers]  # ... and each worker
        if not shards:
            return
        failures = 0  # bad samples since the last item: the reader's and the undecodable images
        for s in iter_caption_shards(shards, on_error=self.on_error, skipped=self.skipped):  # type: ignore[arg-type]
            failures += s.skipped
            try:
                img = load_image(io.BytesIO(s.image), self.channels)
            except ValueError as e:
                err = CaptionReadError(f"cannot decode image {s.where}: {e.__cause__ or e}")
                if self.on_error == "raise":
                    raise err from e
                failures += 1
                self.skipped.append((s.where, str(err)))
                logger.warning("skipping %s: %s", s.where, err)
                continue
            yield {**self._item(img, s.captions, s.label, s.where), "key": s.where, "skipped": failures}
            failures = 0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(shards={len(self.shards)}, max_length={self.max_length}, "
                f"caption_choice={self.caption_choice!r}, on_error={self.on_error!r})")  # fmt: skip


def embedded_caption_items(
    split: Literal["train", "val"] = "train", root: str | os.PathLike[str] | None = None, progress: bool = True
) -> list[ImageCaptions]:
    """The embedded digits with their captions: the captions part (and the image part it points
    into) is built if needed and ``captions/<split>.jsonl`` is read (labels are the digits, 3-5
    captions per image, absolute image paths)."""
    from .embedded import embedded_captions_root  # local: the part builder imports the captions

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    return read_caption_jsonl(embedded_captions_root(root, progress) / f"{split}.jsonl")
