"""Video data path: list files, frame sampling, clip transforms, the decord dataset, the embedded
video part.

Small videos are written with PyAV under pytest's tmp_path; the embedded dataset comes from the
session fixture ``embedded_data_dir`` (tests/conftest.py), built once per test session.
"""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from omnimask.cli import main as cli_main
from omnimask.data import collate_repeated, embedded, ensure_embedded_dataset
from omnimask.data.embedded import load_digits_source, stratified_split
from omnimask.modalities.image import IMAGENET_MEAN, IMAGENET_STD
from omnimask.modalities.video import (
    MultiScaleCrop,
    VideoDataset,
    VideoListError,
    VideoReadError,
    dense_indices,
    embedded_video_root,
    normalize_video,
    read_video_list,
    resize_center_crop,
    segment_indices,
    video_eval_transform,
)
from omnimask.modalities.video.embedded import render_moving_digit
from omnimask.training import ResumableSampler, SeededDataset

# ---------------------------------------------------------------- helpers

FRAMES, HEIGHT, WIDTH = 30, 48, 64
STEP = 6  # grey level added per frame in the green channel: the frame index is readable from the pixels


def _frame(t: int) -> np.ndarray:
    """Frame t: green = 20 + 6 t everywhere (encodes t), red/blue = smooth x/y ramps (spatial structure)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([x * 3, np.full_like(x, 20 + STEP * t), y * 4], axis=-1)
    return rgb.astype(np.uint8)


def _write_video(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = {"flags": "+qscale", "global_quality": str(2 * 118)}
        for t, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, fps)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, int]]:
    """Four small videos (30 frames of 48x64), labels 0..3; the last two are shorter (12 frames)."""
    folder = tmp_path_factory.mktemp("videos")
    clip = np.stack([_frame(t) for t in range(FRAMES)])
    items = []
    for k in range(4):
        n = FRAMES if k < 2 else 12
        items.append((str(_write_video(folder / f"clip {k}.mp4", clip[:n])), k))  # a space in the name
    return items


def _frame_ids(video: torch.Tensor) -> list[int]:
    """Recover the source frame index of each frame of an un-normalised (C, T, H, W) clip in [0, 1]."""
    green = video[1].mean(dim=(1, 2)) * 255.0
    return [round(float(g - 20) / STEP) for g in green]


def _plain(**kw):  # no normalisation, so outputs are pixels in [0, 1]
    return dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), **kw)


# ---------------------------------------------------------------- list files


def test_read_video_list_paths_comments_and_spaces(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.mp4", "sub/with space.mp4"):
        (tmp_path / name).write_bytes(b"x")
    absolute = tmp_path / "abs.mp4"
    absolute.write_bytes(b"x")
    lst = tmp_path / "train.csv"
    lst.write_text(f"# comment\n\na.mp4 3\n  sub/with space.mp4   7  \n{absolute} 0\n")
    assert read_video_list(lst) == [
        (str(tmp_path / "a.mp4"), 3), (str(tmp_path / "sub/with space.mp4"), 7), (str(absolute), 0)
    ]  # fmt: skip
    # root= overrides the list's folder for relative paths (absolute ones are kept).
    elsewhere = tmp_path / "lists"
    elsewhere.mkdir()
    (elsewhere / "l.csv").write_text(f"a.mp4 1\n{absolute} 2\n")
    assert read_video_list(elsewhere / "l.csv", root=tmp_path) == [(str(tmp_path / "a.mp4"), 1), (str(absolute), 2)]
    with pytest.raises(VideoListError, match="does not exist"):
        read_video_list(elsewhere / "l.csv")  # a.mp4 is not next to the list


@pytest.mark.parametrize(
    "text, line_no, problem",
    [
        ("a.mp4 0\nb.mp4\n", 2, "no label"),
        ("a.mp4 0\n# c\na.mp4 cat\n", 3, "'cat' is not an integer"),
        ("a.mp4 1.5\n", 1, "not an integer"),
        ("a.mp4 0\n\nmissing.mp4 1\n", 3, "does not exist"),
    ],
)
def test_read_video_list_errors_name_file_and_line(tmp_path: Path, text: str, line_no: int, problem: str) -> None:
    (tmp_path / "a.mp4").write_bytes(b"x")
    lst = tmp_path / "list.csv"
    lst.write_text(text)
    with pytest.raises(VideoListError) as err:
        read_video_list(lst)
    assert str(err.value).startswith(f"{lst}:{line_no}: ") and problem in str(err.value)


def test_read_video_list_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        read_video_list(tmp_path / "nowhere.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(VideoListError, match=f"{empty}: the list names no videos"):
        read_video_list(empty)


# ---------------------------------------------------------------- frame sampling


def test_dense_indices() -> None:
    # Centred window: span 12 of 100 frames starts at (100 - 12) // 2 = 44.
    np.testing.assert_array_equal(dense_indices(100, 4, 3, None), [44, 47, 50, 53])
    np.testing.assert_array_equal(dense_indices(32, 8, 4, None), np.arange(0, 32, 4))  # exactly one span
    # Random: always `stride` apart, inside the video, and every start 0 .. n - span is reachable.
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(400):
        idx = dense_indices(20, 4, 3, rng)
        assert idx.dtype == np.int64 and (np.diff(idx) == 3).all() and idx[0] >= 0 and idx[-1] < 20
        starts.add(int(idx[0]))
    assert starts == set(range(20 - 12 + 1))
    # Short video: every 4th frame from 0, then the last one repeated.
    for r in (None, np.random.default_rng(1)):
        np.testing.assert_array_equal(dense_indices(10, 8, 4, r), [0, 4, 8, 8, 8, 8, 8, 8])
        np.testing.assert_array_equal(dense_indices(1, 3, 2, r), [0, 0, 0])
    with pytest.raises(VideoReadError, match="0 frames"):
        dense_indices(0, 8, 4, None)
    with pytest.raises(ValueError, match="stride"):
        dense_indices(10, 8, 0, None)


def test_segment_indices() -> None:
    np.testing.assert_array_equal(segment_indices(32, 8, None), [2, 6, 10, 14, 18, 22, 26, 30])
    # Unequal segments [0,2) [2,5) [5,7) [7,10): middles.
    np.testing.assert_array_equal(segment_indices(10, 4, None), [1, 3, 6, 8])
    rng = np.random.default_rng(0)
    seen: list[set[int]] = [set() for _ in range(4)]
    for _ in range(200):
        idx = segment_indices(10, 4, rng)
        for k, i in enumerate(idx):
            seen[k].add(int(i))
    assert seen == [{0, 1}, {2, 3, 4}, {5, 6}, {7, 8, 9}]  # one frame per disjoint segment, all reachable
    # Short video: frames in order, repeated, last frame included.
    for r in (None, rng):
        np.testing.assert_array_equal(segment_indices(5, 8, r), [0, 0, 1, 1, 2, 3, 3, 4])
    with pytest.raises(VideoReadError):
        segment_indices(0, 8, rng)


# ---------------------------------------------------------------- transforms


def test_multiscale_crop_candidates_and_offsets() -> None:
    crop = MultiScaleCrop(224)
    # base 240: int(240 * s) = 240, 210, 180, 158; pairs with scale indices at most 1 apart.
    assert crop.crop_sizes(240, 320) == [
        (240, 240), (240, 210), (210, 240), (210, 210), (210, 180), (180, 210), (180, 180), (180, 158),
        (158, 180), (158, 158),
    ]  # fmt: skip
    # Within 3 px of the target snaps to it: base 226 -> 224 (226 - 224 = 2), 197, 169, 149.
    assert crop.crop_sizes(226, 300)[0] == (224, 224)
    assert MultiScaleCrop(224, max_distort=0).crop_sizes(256, 256) == [(256, 256), (224, 224), (192, 192), (168, 168)]
    offsets = crop.offsets(240, 320, 180, 210)  # slack 60 x 110
    assert len(offsets) == 13 and len(set(offsets)) == 13
    assert {(0, 0), (0, 110), (60, 0), (60, 110), (30, 55), (15, 27), (45, 82)} <= set(offsets)
    assert len(MultiScaleCrop(224, more_fix_crop=False).offsets(240, 320, 180, 210)) == 5


def test_multiscale_crop_one_box_for_all_frames() -> None:
    clip = torch.from_numpy(np.stack([_frame(t) for t in range(6)]))  # (T, H, W, C) uint8
    crop = MultiScaleCrop((16, 16))
    boxes = set()
    for seed in range(20):
        rng = np.random.default_rng(seed)
        box = crop.sample(HEIGHT, WIDTH, np.random.default_rng(seed))
        boxes.add(box)
        x = crop(clip, rng)
        assert x.shape == (3, 6, 16, 16) and x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
        # Red and blue (the spatial ramps) are identical in every frame: the same box for the clip.
        assert torch.equal(x[[0, 2]], x[[0, 2], :1].expand(-1, 6, -1, -1))
        torch.testing.assert_close(x, crop.apply(clip, box))  # same rng -> same box
    assert len(boxes) > 5
    # apply() is an exact crop when no resize is needed.
    exact = MultiScaleCrop((8, 10)).apply(clip, (3, 4, 8, 10))
    torch.testing.assert_close(exact, clip[:, 3:11, 4:14].permute(3, 0, 1, 2).float() / 255)
    # Without an rng the draw comes from torch's global RNG.
    torch.manual_seed(5)
    a = crop(clip)
    torch.manual_seed(5)
    torch.testing.assert_close(a, crop(clip))


def test_eval_transform_resizes_short_side_and_centre_crops() -> None:
    clip = torch.from_numpy(np.stack([_frame(t) for t in range(3)]))
    x = resize_center_crop(clip, 24)  # 48x64 -> 24x32 -> centre 24x24
    assert x.shape == (3, 3, 24, 24)
    # Red is 3 * column: the centre crop of the half-size frame starts at column 4 (= 8 px of source).
    assert abs(float(x[0, 0, :, 0].mean()) * 255 - 3 * (8 + 0.5)) < 3
    y = video_eval_transform(clip, 24)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    torch.testing.assert_close(y * std + mean, x)


# ---------------------------------------------------------------- VideoDataset


def test_dataset_item_shapes_and_frames(videos: list[tuple[str, int]]) -> None:
    ds = VideoDataset(videos, num_frames=8, stride=2, size=24, train=False, **_plain())
    item = ds[0]
    assert set(item) == {"video", "label", "index", "skipped"}
    assert item["video"].shape == (3, 8, 24, 24) and item["video"].dtype == torch.float32
    assert (item["label"], item["index"], item["skipped"]) == (0, 0, 0)
    assert _frame_ids(item["video"]) == dense_indices(FRAMES, 8, 2, None).tolist()  # centred: 7, 9, ..., 21
    assert _frame_ids(ds[2]["video"]) == [0, 2, 4, 6, 8, 10, 10, 10]  # 12 frames: padded with the last
    seg = VideoDataset(videos, num_frames=6, sampling="segment", size=24, train=False, **_plain())
    assert _frame_ids(seg[1]["video"]) == segment_indices(FRAMES, 6, None).tolist()
    # Normalisation with ImageNet statistics.
    norm = VideoDataset(videos, num_frames=8, stride=2, size=24, train=False)[0]["video"]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    torch.testing.assert_close(norm * std + mean, item["video"])
    # The training path normalises the same way (same seed -> same crop).
    raw = SeededDataset(VideoDataset(videos, num_frames=8, stride=2, size=24, **_plain()))[(0, 7)]["video"]
    normed = SeededDataset(VideoDataset(videos, num_frames=8, stride=2, size=24))[(0, 7)]["video"]
    torch.testing.assert_close(normed, normalize_video(raw))
    # Training: random window of stride-2 frames inside the video.
    train = VideoDataset(videos, num_frames=8, stride=2, size=(16, 20), **_plain())
    ids = _frame_ids(train[0]["video"])
    assert train[0]["video"].shape == (3, 8, 16, 20) and np.all(np.diff(ids) == 2) and 0 <= ids[0] <= FRAMES - 16


def test_repeats_decode_once_and_collate(videos: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    import decord

    real, calls = decord.VideoReader, {"open": 0, "get_batch": 0}

    class Counting:
        def __init__(self, *args, **kwargs):
            calls["open"] += 1
            self._vr = real(*args, **kwargs)

        def __len__(self):
            return len(self._vr)

        def get_batch(self, indices):
            calls["get_batch"] += 1
            return self._vr.get_batch(indices)

    monkeypatch.setattr(decord, "VideoReader", Counting)
    ds = VideoDataset(videos, num_frames=4, stride=2, size=16, repeats=4)
    views = ds[1]
    assert calls == {"open": 1, "get_batch": 1}
    assert isinstance(views, list) and len(views) == 4
    assert all(v["index"] == 1 and v["label"] == 1 and v["video"].shape == (3, 4, 16, 16) for v in views)
    distinct = {tuple(v["video"][0, 0].flatten()[:50].tolist()) for v in views}
    assert len(distinct) > 1  # different crops of the same decode
    batch = collate_repeated([ds[0], ds[1], ds[3]])
    assert batch["video"].shape == (12, 3, 4, 16, 16)
    assert batch["label"].tolist() == [0] * 4 + [1] * 4 + [3] * 4
    plain = VideoDataset(videos, num_frames=4, stride=2, size=16)
    assert collate_repeated([plain[0], plain[1]])["video"].shape == (2, 3, 4, 16, 16)


def test_repeats_keep_the_frames(videos: list[tuple[str, int]]) -> None:
    ds = VideoDataset(videos, num_frames=4, stride=3, size=16, repeats=3, **_plain())
    views = ds[0]
    assert len({tuple(_frame_ids(v["video"])) for v in views}) == 1  # one temporal sample, R crops


def _bad_files(tmp_path: Path, good: str) -> dict[str, Path]:
    data = Path(good).read_bytes()
    files = {
        "missing": tmp_path / "missing.mp4",
        "empty": tmp_path / "empty.mp4",
        "text": tmp_path / "text.mp4",
        "truncated": tmp_path / "truncated.mp4",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not a video\n" * 100)
    files["truncated"].write_bytes(data[: len(data) // 2])
    return files


@pytest.mark.parametrize("kind, problem", [
    ("missing", "does not exist"), ("empty", "empty"),
    ("text", "decord cannot open"), ("truncated", "decord cannot open"),
])  # fmt: skip
def test_bad_file_raises_naming_the_path(
    videos: list[tuple[str, int]], tmp_path: Path, kind: str, problem: str
) -> None:
    bad = _bad_files(tmp_path, videos[0][0])[kind]
    ds = VideoDataset([videos[0], (bad, 5), videos[1]], num_frames=4, size=16)
    with pytest.raises(VideoReadError) as err:
        ds[1]
    msg = str(err.value)
    assert msg.startswith(f"cannot read video {bad}: ") and problem in msg
    if kind in ("text", "truncated"):
        assert err.value.__cause__ is not None  # decord's exception is chained
        assert "Invalid data" in msg  # the reason, which decord only logs, comes from PyAV's probe
    assert ds[2]["index"] == 2  # good files still load


def test_skip_substitutes_and_counts(
    videos: list[tuple[str, int]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = _bad_files(tmp_path, videos[0][0])
    items = [videos[0], (bad["text"], 9), (bad["empty"], 9), videos[1], (bad["truncated"], 9)]
    ds = VideoDataset(items, num_frames=4, size=16, on_error="skip")
    with caplog.at_level(logging.WARNING):
        item = ds[1]
    assert (item["index"], item["label"], item["skipped"]) == (3, 1, 2)
    assert str(bad["text"]) in caplog.text and str(bad["empty"]) in caplog.text
    assert [p for p, _ in ds.skipped] == [str(bad["text"]), str(bad["empty"])]
    wrapped = ds[4]  # wraps around to index 0
    assert (wrapped["index"], wrapped["skipped"]) == (0, 1)
    assert ds[0]["skipped"] == 0
    # repeats: the count is on the first view only, so a batch sum counts each failure once.
    rep = VideoDataset(items, num_frames=4, size=16, on_error="skip", repeats=3)
    assert [v["skipped"] for v in rep[1]] == [2, 0, 0]
    assert int(collate_repeated([rep[1], rep[4]])["skipped"].sum()) == 3
    # Giving up: all bad, or too many consecutive failures.
    all_bad = VideoDataset([(bad["text"], 0), (bad["empty"], 0)], on_error="skip")
    with pytest.raises(VideoReadError, match="every video failed"):
        all_bad[0]
    limited = VideoDataset(items, num_frames=4, size=16, on_error="skip", max_skips=2)
    with pytest.raises(VideoReadError, match="2 consecutive videos failed"):
        limited[1]


def test_reproducible_with_seeded_dataset_and_workers(videos: list[tuple[str, int]]) -> None:
    ds = SeededDataset(VideoDataset(videos, num_frames=4, stride=2, size=16, repeats=2))
    a, b, c = ds[(0, 11)], ds[(0, 11)], ds[(0, 12)]
    assert all(torch.equal(x["video"], y["video"]) for x, y in zip(a, b))
    assert not all(torch.equal(x["video"], y["video"]) for x, y in zip(a, c))

    def batches(workers: int) -> list[dict]:
        sampler = ResumableSampler(len(videos), seed=3, drop_last=False)
        loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=workers, collate_fn=collate_repeated)
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 2
    for x, y in zip(serial, parallel):
        assert x["index"].tolist() == y["index"].tolist()
        assert torch.equal(x["video"], y["video"])


def test_dataset_argument_errors(videos: list[tuple[str, int]]) -> None:
    with pytest.raises(ValueError, match="sampling"):
        VideoDataset(videos, sampling="uniform")
    with pytest.raises(ValueError, match="on_error"):
        VideoDataset(videos, on_error="ignore")
    with pytest.raises(ValueError, match="repeats"):
        VideoDataset(videos, repeats=0)
    with pytest.raises(ValueError, match="at least one"):
        VideoDataset([])
    with pytest.raises(IndexError):
        VideoDataset(videos)[4]


# ---------------------------------------------------------------- embedded video part


def test_embedded_video_part_counts_and_lists(embedded_data_dir: Path) -> None:
    part = embedded_data_dir / "v1" / "video"
    m = json.loads((part / "manifest.json").read_text())
    image_counts = json.loads((embedded_data_dir / "v1" / "image" / "manifest.json").read_text())["counts"]
    for key in ("total", "train", "val", "per_class"):
        assert m["counts"][key] == image_counts[key]
    _, labels = load_digits_source()
    is_val = stratified_split(labels)
    for split in ("train", "val"):
        items = read_video_list(part / f"{split}.csv")
        assert len(items) == m["counts"][split]
        ids = [int(Path(p).stem) for p, _ in items]
        assert all(is_val[i] == (split == "val") and labels[i] == label for i, (_, label) in zip(ids, items))
        assert all(Path(p).parent.name == str(label) for p, label in items)
    assert "scikit-learn" in (part / "README.txt").read_text()
    assert embedded_video_root(embedded_data_dir, progress=False) == part


def test_embedded_video_decodes_and_moves(embedded_data_dir: Path) -> None:
    import decord

    images, _ = load_digits_source()
    items = read_video_list(embedded_data_dir / "v1" / "video" / "val.csv")
    for path, _ in items[::60]:
        vr = decord.VideoReader(path, num_threads=1)
        assert len(vr) == 16
        frames = vr.get_batch(list(range(16))).asnumpy()
        assert frames.shape == (16, 32, 32, 3)
        i = int(Path(path).stem)
        rendered = render_moving_digit(images[i], i)
        err = np.abs(frames.astype(np.float64) - rendered).mean(axis=(1, 2, 3))
        assert err.max() < 6.0, (path, err)  # 4:2:0 chroma + near-lossless compression only
        # The digit moves: frames differ, and the ink centroid travels at least 5 px.
        grey = frames.astype(np.float64).mean(-1)
        ink = np.abs(grey - np.median(grey[0]))
        yy, xx = np.mgrid[0:32, 0:32]
        centroid = np.array([[(w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()] for w in ink])
        assert np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2)).min() > 0.1
        assert np.linalg.norm(centroid[-1] - centroid[0]) > 5.0, (path, centroid[[0, -1]])
    ds = VideoDataset(items, num_frames=8, stride=2, size=32)
    assert ds[0]["video"].shape == (3, 8, 32, 32)


def test_embedded_video_is_deterministic(
    embedded_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two builds give byte-identical files (same manifest sha256); on a subset of 40 digits to stay fast.

    A subset build writes the same bytes for a sample as the full build (each clip depends only on
    its index), so its files are also compared with the session's full build.
    """
    images, labels = load_digits_source()
    monkeypatch.setattr(embedded, "load_digits_source", lambda: (images[:40], labels[:40]))
    manifests = []
    for name in ("a", "b"):
        root = ensure_embedded_dataset(tmp_path / name, parts=("video",), progress=False)
        manifests.append(json.loads((root / "v1" / "video" / "manifest.json").read_text()))
    assert manifests[0]["sha256"] == manifests[1]["sha256"]
    assert manifests[0]["counts"]["pixels_sha256"] == manifests[1]["counts"]["pixels_sha256"]
    full = embedded_data_dir / "v1" / "video"
    for f in sorted((tmp_path / "a" / "v1" / "video").rglob("*.mp4")):
        twin = next(full.glob(f"*/*/{f.name}"))
        assert f.read_bytes() == twin.read_bytes(), f.name


def test_cli_data_builds_the_video_part(embedded_data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["data", "--root", str(embedded_data_dir), "--parts", "video"]) == 0  # already built: no-op
    assert str(embedded_data_dir) in capsys.readouterr().out
