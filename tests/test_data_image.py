"""Embedded image dataset, ImageFolder reader and image transforms.

Every test writes under pytest's tmp_path; nothing touches the user's home directory.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from omnimask.data import ensure_embedded_dataset, verify_part
from omnimask.data.embedded import load_digits_source
from omnimask.modalities.image import (
    ImageFolderDataset,
    denormalize,
    embedded_image_root,
    eval_transform,
    mae_pretrain_transform,
)
from omnimask.modalities.image import embedded as image_embedded


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_embedded_dataset(tmp_path_factory.mktemp("embedded"), progress=False)


def _files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def _manifest(part_dir: Path) -> dict:
    return json.loads((part_dir / "manifest.json").read_text())


# ---------------------------------------------------------------- embedded dataset


def test_generation_is_deterministic(data_root: Path, tmp_path: Path) -> None:
    other = ensure_embedded_dataset(tmp_path / "again", progress=False)
    a, b = data_root / "v1" / "image", other / "v1" / "image"
    assert _manifest(a)["sha256"] == _manifest(b)["sha256"]
    assert _manifest(a)["counts"]["pixels_sha256"] == _manifest(b)["counts"]["pixels_sha256"]
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys()
    assert all(fa[k].read_bytes() == fb[k].read_bytes() for k in fa)
    # The manifest hash really covers the bytes: tampering with one file is detected.
    assert verify_part(b)
    png = next(p for k, p in fb.items() if k.endswith(".png"))
    png.write_bytes(png.read_bytes()[:-1] + b"\x00")
    assert not verify_part(b)


def test_second_call_is_a_noop(data_root: Path) -> None:
    part = data_root / "v1" / "image"
    before = {k: p.stat().st_mtime_ns for k, p in _files(part).items()}
    inode = part.stat().st_ino
    assert ensure_embedded_dataset(data_root, progress=False) == data_root
    assert part.stat().st_ino == inode  # not swapped for a rebuilt folder
    assert {k: p.stat().st_mtime_ns for k, p in _files(part).items()} == before
    assert not [p for p in part.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_env_var_sets_default_root(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIMASK_DATA_DIR", str(data_root))
    inode = (data_root / "v1" / "image").stat().st_ino
    assert embedded_image_root(progress=False) == data_root / "v1" / "image"
    assert (data_root / "v1" / "image").stat().st_ino == inode


def test_unknown_part_names_valid_parts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image"):
        ensure_embedded_dataset(tmp_path, parts=("image", "smell"), progress=False)
    assert not (tmp_path / "v1" / "image").exists()  # validated before anything is built


def test_interrupted_build_leaves_nothing_and_stale_part_is_rebuilt(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = image_embedded.render_digit, []

    def failing(digit: np.ndarray, index: int) -> np.ndarray:
        calls.append(index)
        if len(calls) > 100:
            raise KeyboardInterrupt  # what a Ctrl-C mid-generation looks like
        return real(digit, index)

    monkeypatch.setattr(image_embedded, "render_digit", failing)
    with pytest.raises(KeyboardInterrupt):
        ensure_embedded_dataset(tmp_path, progress=False)
    assert list((tmp_path / "v1").iterdir()) == []  # no half-written part, no temp folder
    monkeypatch.setattr(image_embedded, "render_digit", real)

    # A part folder without a manifest (e.g. hand-copied, partial) is not trusted: it is rebuilt.
    junk = tmp_path / "v1" / "image" / "train" / "0" / "junk.png"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"junk")
    ensure_embedded_dataset(tmp_path, progress=False)
    assert not junk.exists()
    assert _manifest(tmp_path / "v1" / "image")["sha256"] == _manifest(data_root / "v1" / "image")["sha256"]


def test_counts_and_stratified_split(data_root: Path) -> None:
    part = data_root / "v1" / "image"
    _, labels = load_digits_source()
    ids: dict[str, set[int]] = {}
    for split in ("train", "val"):
        assert sorted(d.name for d in (part / split).iterdir()) == [str(c) for c in range(10)]
        ids[split] = set()
        for f in (part / split).rglob("*.png"):
            i = int(f.stem)
            assert labels[i] == int(f.parent.name), f"{f} is in the wrong class folder"
            ids[split].add(i)
    assert not ids["train"] & ids["val"]
    assert ids["train"] | ids["val"] == set(range(1797))
    for c in range(10):
        n_c = int((labels == c).sum())
        n_val = len(list((part / "val" / str(c)).glob("*.png")))
        assert abs(n_val - 0.2 * n_c) <= 0.5, (c, n_val, n_c)
    m = _manifest(part)
    counts = (m["counts"]["total"], m["counts"]["train"], m["counts"]["val"])
    assert counts == (1797, len(ids["train"]), len(ids["val"]))
    assert "scikit-learn" in (part / "README.txt").read_text()


def test_images_are_rgb_32_and_digit_is_legible(data_root: Path) -> None:
    images, _ = load_digits_source()
    files = sorted((data_root / "v1" / "image").rglob("*.png"))[::9]  # 200 images, both splits
    colours = set()
    for f in files:
        im = Image.open(f)
        assert im.size == (32, 32) and im.mode == "RGB"
        rgb = np.asarray(im, dtype=np.float64)
        grey = rgb.mean(-1).reshape(8, 4, 8, 4).mean((1, 3))  # back to the source 8x8 grid
        src = images[int(f.stem)].astype(np.float64)
        # Polarity varies (dark ink on light or the reverse), hence the absolute correlation.
        assert abs(np.corrcoef(grey.ravel(), src.ravel())[0, 1]) > 0.9, f
        assert abs(grey[src >= 12].mean() - grey[src == 0].mean()) > 50, f  # strong ink contrast
        colours.add(tuple(np.round(rgb[0, 0] / 32)))
    assert len(colours) > 10  # genuinely colourised, not a single palette


# ---------------------------------------------------------------- ImageFolderDataset


def test_reader_on_embedded_tree(data_root: Path) -> None:
    train = ImageFolderDataset(data_root / "v1" / "image" / "train")
    val = ImageFolderDataset(data_root / "v1" / "image" / "val")
    assert len(train) + len(val) == 1797
    assert train.classes == val.classes == [str(c) for c in range(10)]
    assert train.class_to_idx == {str(c): c for c in range(10)}
    for path, label in train.samples[::50]:
        assert Path(path).parent.name == train.classes[label]
    item = val[5]
    assert set(item) == {"image", "label", "index", "skipped"} and item["index"] == 5 and item["skipped"] == 0
    assert item["label"] == int(Path(val.samples[5][0]).parent.name)
    x = item["image"]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and x.min() >= 0.0 and x.max() <= 1.0
    ref = np.asarray(Image.open(val.samples[5][0]), dtype=np.float32).transpose(2, 0, 1) / 255.0
    torch.testing.assert_close(x, torch.from_numpy(ref))


def _tiny_tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(root / c / f"{k}.png")


def test_reader_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageFolderDataset(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a directory"):
        ImageFolderDataset(tmp_path / "file.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"no class sub-folders in {empty}"):
        ImageFolderDataset(empty)
    (empty / "a").mkdir()
    (empty / "a" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError) as err:
        ImageFolderDataset(empty)
    assert str(empty) in str(err.value) and ".png" in str(err.value) and ".jpeg" in str(err.value)
    with pytest.raises(ValueError, match="channels"):
        ImageFolderDataset(empty, channels=2)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_image_raises_or_is_skipped(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    _tiny_tree(tmp_path)
    bad = tmp_path / "cat" / "0.png"
    data = bad.read_bytes()
    bad.write_bytes(os.urandom(200) if damage == "garbage" else data[: len(data) // 2])
    ds = ImageFolderDataset(tmp_path)
    i = [p for p, _ in ds.samples].index(str(bad))
    with pytest.raises(ValueError, match=f"cannot decode image {bad}"):
        ds[i]
    assert ds[i + 1]["index"] == i + 1  # good files still load

    ds = ImageFolderDataset(tmp_path, on_error="skip")
    with caplog.at_level(logging.WARNING):
        item = ds[i]
    assert item["index"] == i + 1 and item["image"].shape == (3, 12, 10)
    assert [p for p, _ in ds.skipped] == [str(bad)] and "cannot decode" in ds.skipped[0][1]
    assert str(bad) in caplog.text


def test_cache_decodes_once_and_returns_the_same_items(tmp_path: Path) -> None:
    _tiny_tree(tmp_path)
    plain = ImageFolderDataset(tmp_path)
    cached = ImageFolderDataset(tmp_path, cache=True, progress=False)
    assert "cache=True" in repr(cached) and "cache=False" in repr(plain)
    # The files can go: every item comes from memory, identical to a fresh read.
    expected = [plain[i] for i in range(len(plain))]
    for path, _ in plain.samples:
        os.remove(path)
    for _ in range(2):  # a second epoch gets the same, untouched images
        for i, want in enumerate(expected):
            got = cached[i]
            assert got["index"] == want["index"] and got["label"] == want["label"]
            torch.testing.assert_close(got["image"], want["image"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="cannot decode"):
        plain[0]


def test_cache_keeps_decode_errors_for_on_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _tiny_tree(tmp_path)
    bad = tmp_path / "cat" / "1.png"
    bad.write_bytes(b"not a png")
    ds = ImageFolderDataset(tmp_path, cache=True, progress=False)  # building does not raise
    i = [p for p, _ in ds.samples].index(str(bad))
    for _ in range(2):  # raised every time it is asked for, each time naming the file
        with pytest.raises(ValueError, match=f"cannot decode image {bad}") as err:
            ds[i]
        assert err.value.__cause__ is not None  # PIL's own exception stays chained
    skip = ImageFolderDataset(tmp_path, cache=True, on_error="skip", progress=False)
    with caplog.at_level(logging.WARNING):
        item = skip[i]
    assert item["index"] == i + 1 and item["skipped"] == 1 and [p for p, _ in skip.skipped] == [str(bad)]


def test_recipe_caches_the_embedded_digits_but_not_own_data(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnimask.modalities.image.spec import ImageDataConfig, _build_dataset

    monkeypatch.setenv("OMNIMASK_DATA_DIR", str(data_root))
    _tiny_tree(tmp_path)
    modality = {"tokenizer": {"image_size": 8, "in_chans": 3}, "processor": {"mean": [0.5] * 3, "std": [0.5] * 3}}

    def cached(split: str, **cfg: object) -> bool:
        return _build_dataset(ImageDataConfig(**cfg), modality, split)._cache is not None  # type: ignore[arg-type]

    assert cached("train") and cached("val")  # root null: the embedded digits, 4 MB
    assert not cached("train", root=str(tmp_path))  # your own data: only when asked
    assert cached("train", root=str(tmp_path), cache=True) and not cached("val", cache=False)


def test_reader_channels_and_transform(tmp_path: Path) -> None:
    _tiny_tree(tmp_path)
    grey = ImageFolderDataset(tmp_path, channels=1)
    assert grey[0]["image"].shape == (1, 12, 10)  # no resizing without a transform
    ds = ImageFolderDataset(tmp_path, transform=eval_transform(8))
    assert ds[3]["image"].shape == (3, 8, 8) and ds[3]["label"] == 1


# ---------------------------------------------------------------- transforms


@pytest.fixture
def pil_image() -> Image.Image:
    # Left-right asymmetric, so a flip is visible.
    a = np.zeros((32, 32, 3), dtype=np.uint8)
    a[:, :8] = 255
    a[4:20, 10:30, 1] = np.arange(20, dtype=np.uint8) * 12
    return Image.fromarray(a)


def test_pretrain_transform_shapes(pil_image: Image.Image) -> None:
    x = mae_pretrain_transform(16)(pil_image)
    assert type(x) is torch.Tensor and x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert mae_pretrain_transform((16, 24))(pil_image).shape == (3, 16, 24)
    g = mae_pretrain_transform(16, mean=(0.5,), std=(0.5,))(pil_image.convert("L"))
    assert g.shape == (1, 16, 16)


def test_hflip_zero_disables_flipping(pil_image: Image.Image) -> None:
    flips = lambda t: [s for s in t.transforms if isinstance(s, v2.RandomHorizontalFlip)]  # noqa: E731
    assert flips(mae_pretrain_transform(32, hflip=0.0)) == []
    assert [f.p for f in flips(mae_pretrain_transform(32))] == [0.5]
    # With a full-image crop, hflip=1 flips every time and hflip=0 never does.
    full = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0))
    plain = eval_transform(32, resize=False)(pil_image)
    torch.testing.assert_close(mae_pretrain_transform(32, hflip=0.0, **full)(pil_image), plain)
    torch.testing.assert_close(mae_pretrain_transform(32, hflip=1.0, **full)(pil_image), plain.flip(-1))


def test_eval_transform_resize(pil_image: Image.Image) -> None:
    wide = pil_image.resize((40, 20))
    assert eval_transform(16)(wide).shape == (3, 16, 16)  # exact size, not shorter-side
    assert eval_transform((8, 12))(wide).shape == (3, 8, 12)
    assert eval_transform(16, resize=False)(wide).shape == (3, 20, 40)


def test_normalisation_round_trip(pil_image: Image.Image) -> None:
    def raw_tensor(im: Image.Image) -> torch.Tensor:
        return TF.to_dtype(TF.to_image(im), torch.float32, scale=True).as_subclass(torch.Tensor)

    raw = raw_tensor(pil_image)
    x = eval_transform(32, resize=False)(pil_image)
    assert (x - raw).abs().max() > 0.1  # it really normalised
    torch.testing.assert_close(denormalize(x), raw)
    torch.testing.assert_close(denormalize(torch.stack([x, x])), torch.stack([raw, raw]))
    g = eval_transform(32, mean=(0.3,), std=(0.2,), resize=False)(pil_image.convert("L"))
    torch.testing.assert_close(denormalize(g, (0.3,), (0.2,)), raw_tensor(pil_image.convert("L")))


@pytest.mark.parametrize("scale", [(0.5, 0.2), (0.0, 1.0), (0.2, 1.5)])
def test_bad_scale_raises(scale: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="scale"):
        mae_pretrain_transform(16, scale=scale)


def test_bad_mean_std_raises() -> None:
    with pytest.raises(ValueError, match="mean and std"):
        mae_pretrain_transform(16, mean=(0.5, 0.5), std=(0.5,))
    with pytest.raises(ValueError, match="mean and std"):
        eval_transform(16, mean=(0.5,), std=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="channels"):
        denormalize(torch.zeros(2, 4, 4), (0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
