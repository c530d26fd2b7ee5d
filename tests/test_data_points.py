"""Point-cloud data path: readers, normalisation, resampling, augmentation, the dataset, the
ModelNet40 / ShapeNet-55 / folder item lists and the embedded points and shapes parts.

Small files are written under pytest's tmp_path; the embedded parts come from the session fixture
``embedded_data_dir`` (tests/conftest.py), built once per test session.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from omnimask.data import DataReadError, ensure_embedded_dataset
from omnimask.data.embedded import load_digits_source, stratified_split
from omnimask.modalities.points import (
    PointCloudDataset,
    PointListError,
    PointReadError,
    embedded_points_root,
    embedded_shapes_root,
    folder_items,
    load_points,
    modelnet_items,
    normalize_unit_sphere,
    read_points_npy,
    read_points_txt,
    resample,
    scale_and_translate,
    shapenet_items,
)
from omnimask.modalities.points.embedded import SHAPE_CLASSES, digit_point_cloud, shape_surface_points
from omnimask.training import ResumableSampler, SeededDataset

# ---------------------------------------------------------------- helpers


def _cloud(n: int, seed: int = 0, normals: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 2.0]
    if not normals:
        return xyz.astype(np.float32)
    nrm = rng.normal(size=(n, 3))
    return np.concatenate([xyz, nrm / np.linalg.norm(nrm, axis=1, keepdims=True)], 1).astype(np.float32)


def _write_txt(path: Path, arr: np.ndarray, sep: str = ",") -> Path:
    path.write_text("".join(sep.join(f"{v:.6f}" for v in row) + "\n" for row in arr), encoding="utf-8")
    return path


def _sphere_fit_cv(x: np.ndarray) -> float:
    """Relative spread of the distances to the least-squares sphere centre (|p|^2 = 2 p.c + k)."""
    x = np.asarray(x, dtype=np.float64)[:, :3]
    a = np.concatenate([2.0 * x, np.ones((len(x), 1))], axis=1)
    centre = np.linalg.lstsq(a, (x * x).sum(1), rcond=None)[0][:3]
    r = np.linalg.norm(x - centre, axis=1)
    return float(r.std() / r.mean())


@pytest.fixture()
def clouds(tmp_path: Path) -> dict[str, Path]:
    """Good files of every format, keyed by a short name."""
    c6 = _cloud(50, normals=True)
    np.savez(tmp_path / "multi.npz", points=_cloud(40, 1), other=np.zeros((2, 3)))
    np.savez(tmp_path / "single.npz", _cloud(30, 2))
    np.save(tmp_path / "a.npy", _cloud(64, 3).astype(np.float64))
    return {
        "normals_txt": _write_txt(tmp_path / "normals.txt", c6, ","),
        "xyz_txt": _write_txt(tmp_path / "xyz.xyz", c6[:, :3], " "),
        "npy": tmp_path / "a.npy",
        "multi_npz": tmp_path / "multi.npz",
        "single_npz": tmp_path / "single.npz",
    }


# ---------------------------------------------------------------- readers


def test_read_txt_with_and_without_normals(clouds: dict[str, Path], tmp_path: Path) -> None:
    ref = _cloud(50, normals=True)
    with_normals = read_points_txt(clouds["normals_txt"])
    assert with_normals.dtype == np.float32 and with_normals.shape == (50, 6)
    np.testing.assert_allclose(with_normals, ref, atol=1e-5)
    xyz = read_points_txt(clouds["xyz_txt"])  # whitespace separated
    assert xyz.shape == (50, 3)
    np.testing.assert_allclose(xyz, ref[:, :3], atol=1e-5)
    assert read_points_txt(clouds["normals_txt"], columns=6).shape == (50, 6)
    # Spaces around commas, tabs, blank lines, '#' comments and a BOM are all accepted.
    messy = tmp_path / "messy.txt"
    messy.write_bytes("\ufeff# header\n1.0, 2.0 ,3\n\n4,\t5,6  # trailing comment\n".encode("utf-8"))
    np.testing.assert_array_equal(read_points_txt(messy), [[1, 2, 3], [4, 5, 6]])
    tabs = tmp_path / "tabs.pts"
    tabs.write_text("1\t2\t3\n  4 5   6\n")
    np.testing.assert_array_equal(load_points(tabs), [[1, 2, 3], [4, 5, 6]])


def test_read_npy_and_npz(clouds: dict[str, Path]) -> None:
    a = read_points_npy(clouds["npy"])
    assert a.dtype == np.float32 and a.shape == (64, 3)
    np.testing.assert_allclose(a, _cloud(64, 3), atol=1e-6)
    np.testing.assert_array_equal(read_points_npy(clouds["multi_npz"], key="points"), _cloud(40, 1))
    assert read_points_npy(clouds["single_npz"]).shape == (30, 3)  # one array: no key needed
    assert read_points_npy(clouds["npy"], key="ignored").shape == (64, 3)
    assert load_points(clouds["multi_npz"], key="other").shape == (2, 3)
    assert load_points(clouds["normals_txt"]).shape == (50, 6)


def _bad_files(tmp: Path) -> dict[str, tuple[Path, dict, str]]:
    """name -> (file, reader kwargs, regex the message must match)."""
    (tmp / "empty.txt").write_text("")
    (tmp / "comments.txt").write_text("# only a comment\n\n")
    (tmp / "nan.txt").write_text("1,2,3\n4,nan,6\n")
    (tmp / "inf.txt").write_text("1 2 3\n4 5 6\n7 8 -inf\n")
    (tmp / "two_cols.txt").write_text("1,2\n3,4\n")
    (tmp / "ragged.txt").write_text("1,2,3,0,0,1\n4,5,6,0,1,0\n7,8,9,1,0\n")
    (tmp / "ragged_ws.xyz").write_text("1 2 3\n4 5 6\n\n7 8 9 10\n")
    (tmp / "text.txt").write_text("1,2,3\n4,five,6\n")
    (tmp / "binary.txt").write_bytes(b"\x93NUMPY\xff\xfe\x00\x01")
    np.save(tmp / "inf.npy", np.array([[0.0, 1.0, 2.0], [np.inf, 0.0, 0.0]]))
    np.save(tmp / "flat.npy", np.zeros(6))
    np.save(tmp / "no_points.npy", np.zeros((0, 3)))
    np.save(tmp / "strings.npy", np.array([["a", "b", "c"]]))
    (tmp / "garbage.npy").write_bytes(b"this is not numpy")
    (tmp / "empty.npy").write_bytes(b"")
    np.savez(tmp / "two.npz", a=np.zeros((3, 3)), b=np.ones((3, 3)))
    (tmp / "cloud.ply").write_text("ply\n")
    return {
        "missing": (tmp / "nope.npy", {}, r"nope\.npy: the file does not exist"),
        "empty_txt": (tmp / "empty.txt", {}, r"empty\.txt: the file is empty \(0 bytes\)"),
        "empty_npy": (tmp / "empty.npy", {}, r"empty\.npy: the file is empty"),
        "comments_only": (tmp / "comments.txt", {}, r"comments\.txt: the file contains no points"),
        "nan_txt": (tmp / "nan.txt", {}, r"nan\.txt: line 2: NaN or infinite coordinate in '4,nan,6'"),
        "inf_txt": (tmp / "inf.txt", {}, r"inf\.txt: line 3: NaN or infinite"),
        "inf_npy": (tmp / "inf.npy", {}, r"inf\.npy: 1 point\(s\) with NaN or infinite coordinates \(first at row 1"),
        "two_columns": (tmp / "two_cols.txt", {}, r"two_cols\.txt: line 1: expected at least 3 comma-separated values"),
        "wrong_columns": (tmp / "two_cols.txt", {"columns": 3}, r"two_cols\.txt: line 1: expected 3 comma-separated values, found 2"),
        "want_normals": (tmp / "inf.txt", {"columns": 6}, r"inf\.txt: line 1: expected 6 whitespace-separated values, found 3"),
        "ragged": (tmp / "ragged.txt", {}, r"ragged\.txt: line 3: expected 6 comma-separated values \(set by the first point\), found 5"),
        "ragged_ws": (tmp / "ragged_ws.xyz", {}, r"ragged_ws\.xyz: line 4: expected 3 whitespace-separated values"),
        "non_numeric": (tmp / "text.txt", {}, r"text\.txt: line 2: 'five' is not a number"),
        "binary_txt": (tmp / "binary.txt", {}, r"binary\.txt: not a text file"),
        "flat_npy": (tmp / "flat.npy", {}, r"flat\.npy: expected a 2-D array .* got shape \(6,\)"),
        "no_points": (tmp / "no_points.npy", {}, r"no_points\.npy: the cloud has no points"),
        "strings": (tmp / "strings.npy", {}, r"strings\.npy: expected a numeric array"),
        "garbage": (tmp / "garbage.npy", {}, r"garbage\.npy: not a \.npy or \.npz file"),
        "npz_no_key": (tmp / "two.npz", {}, r"two\.npz: the archive holds 2 arrays \['a', 'b'\]; pass key="),
        "npz_wrong_key": (tmp / "two.npz", {"key": "xyz"}, r"two\.npz: the archive has no array 'xyz' \(arrays: \['a', 'b'\]\)"),
        "suffix": (tmp / "cloud.ply", {}, r"cloud\.ply: unsupported file type '\.ply'"),
    }  # fmt: skip


BAD = [
    "missing", "empty_txt", "empty_npy", "comments_only", "nan_txt", "inf_txt", "inf_npy", "two_columns",
    "wrong_columns", "want_normals", "ragged", "ragged_ws", "non_numeric", "binary_txt", "flat_npy", "no_points",
    "strings", "garbage", "npz_no_key", "npz_wrong_key", "suffix",
]  # fmt: skip


@pytest.mark.parametrize("name", BAD)
def test_bad_inputs_name_the_file_and_problem(tmp_path: Path, name: str) -> None:
    path, kwargs, pattern = _bad_files(tmp_path)[name]
    with pytest.raises(PointReadError, match=pattern) as info:
        load_points(path, **kwargs)
    assert isinstance(info.value, DataReadError)
    assert str(path) in str(info.value)


def test_reader_argument_errors(clouds: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="columns"):
        read_points_txt(clouds["normals_txt"], columns=2)


# ---------------------------------------------------------------- geometry


def test_normalize_unit_sphere() -> None:
    c = _cloud(500, normals=True)
    out, degenerate = normalize_unit_sphere(c)
    assert not degenerate and out.dtype == np.float32 and out.shape == c.shape
    np.testing.assert_allclose(out[:, :3].mean(0), 0.0, atol=1e-6)
    assert np.linalg.norm(out[:, :3], axis=1).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(out[:, 3:], c[:, 3:])  # normals untouched
    # Scale and position do not matter.
    again, _ = normalize_unit_sphere(c[:, :3] * 37.0 - 5.0)
    np.testing.assert_allclose(again, out[:, :3], atol=1e-5)
    ints, _ = normalize_unit_sphere(np.array([[0, 0, 0], [2, 0, 0]]))  # integers: float result, no truncation
    np.testing.assert_array_equal(ints, [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize("value", [0.0, 0.1, -123.456])
def test_normalize_degenerate_cloud_is_flagged(value: float) -> None:
    same = np.full((7, 6), value, dtype=np.float32)
    out, degenerate = normalize_unit_sphere(same)
    assert degenerate
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, :3], 0.0)
    np.testing.assert_array_equal(out[:, 3:], same[:, 3:])
    single, degenerate = normalize_unit_sphere(np.array([[1.0, 2.0, 3.0]]))
    assert degenerate and (single == 0).all()
    with pytest.raises(ValueError, match="NaN"):
        normalize_unit_sphere(np.array([[np.nan, 0, 0], [1, 1, 1]]))


def test_resample_subset_and_fill_up() -> None:
    c = np.arange(100 * 3, dtype=np.float32).reshape(100, 3)
    sub, repeated = resample(c, 40, np.random.default_rng(0))
    assert repeated == 0 and sub.shape == (40, 3) and sub.dtype == np.float32
    assert len(np.unique(sub[:, 0])) == 40  # without replacement
    # Fewer points than asked for: every point once, the rest duplicates, and the count says so.
    small = c[:10]
    filled, repeated = resample(small, 64, np.random.default_rng(1))
    assert repeated == 54 and filled.shape == (64, 3)
    assert set(filled[:, 0].tolist()) == set(small[:, 0].tolist())
    exact, repeated = resample(small, 10, np.random.default_rng(2))
    assert repeated == 0 and sorted(exact[:, 0].tolist()) == sorted(small[:, 0].tolist())
    # rng=None: deterministic, a function of the point count only.
    a, _ = resample(c, 30)
    b, _ = resample(c + 1000.0, 30)
    np.testing.assert_array_equal(a + 1000.0, b)
    np.testing.assert_array_equal(resample(small, 64)[0], resample(small, 64)[0])
    with pytest.raises(ValueError, match="n must be"):
        resample(c, 0)


def test_scale_and_translate_ranges() -> None:
    c = _cloud(200, normals=True)
    scales, shifts = [], []
    for seed in range(200):
        out = scale_and_translate(c, np.random.default_rng(seed))
        # Recover s and t from two points: out = c * s + t per axis.
        s = (out[1, :3] - out[0, :3]) / (c[1, :3] - c[0, :3])
        t = out[0, :3] - c[0, :3] * s
        np.testing.assert_allclose(out[:, :3], c[:, :3] * s + t, atol=1e-4)
        np.testing.assert_allclose(np.linalg.norm(out[:, 3:], axis=1), 1.0, atol=1e-5)
        scales.append(s)
        shifts.append(t)
    scales, shifts = np.array(scales), np.array(shifts)
    assert scales.min() >= 2 / 3 - 1e-4 and scales.max() <= 3 / 2 + 1e-4
    assert shifts.min() >= -0.2 - 1e-4 and shifts.max() <= 0.2 + 1e-4
    assert scales.min() < 0.72 and scales.max() > 1.45 and shifts.min() < -0.18 and shifts.max() > 0.18
    assert len(np.unique(scales.round(4))) > 500  # per-axis, per-call draws
    # Normals follow the inverse scale: a normal along x stays along x, a 45-degree one tilts.
    pts = np.array([[0, 0, 0, 1, 0, 0], [0, 0, 0, 0.6, 0.8, 0]], dtype=np.float32)
    out = scale_and_translate(pts, np.random.default_rng(0), scale=(2.0, 2.0), translate=(0.0, 0.0))
    np.testing.assert_allclose(out[:, 3:], pts[:, 3:], atol=1e-6)  # isotropic scale: unchanged
    fixed = scale_and_translate(pts, np.random.default_rng(0), scale=(1.0, 1.0), translate=(0.5, 0.5))
    np.testing.assert_allclose(fixed[:, :3], 0.5)


# ---------------------------------------------------------------- dataset


@pytest.fixture()
def items(tmp_path: Path) -> list[tuple[str, int]]:
    paths = []
    for i in range(5):
        p = tmp_path / f"c{i}.npy"
        np.save(p, _cloud(300 + 10 * i, seed=10 + i, normals=True))
        paths.append((str(p), i % 2))
    return paths


def test_dataset_items(items: list[tuple[str, int]]) -> None:
    ds = PointCloudDataset(items, num_points=128)
    x = ds[3]
    assert set(x) == {"points", "label", "index", "skipped", "resampled", "degenerate"}
    assert x["points"].dtype == torch.float32 and x["points"].shape == (128, 3)
    assert (x["label"], x["index"], x["skipped"], x["resampled"], x["degenerate"]) == (1, 3, 0, 0, 0)
    assert ds.targets == [0, 1, 0, 1, 0] and len(ds) == 5
    six = PointCloudDataset(items, num_points=64, use_normals=True, train=False)[0]["points"]
    assert six.shape == (64, 6)
    np.testing.assert_allclose(six[:, 3:].norm(dim=1), 1.0, atol=1e-5)
    assert "num_points=64" in repr(PointCloudDataset(items, num_points=64))


def test_eval_items_are_deterministic_and_normalised(items: list[tuple[str, int]]) -> None:
    ds = PointCloudDataset(items, num_points=100, train=False)
    torch.manual_seed(1)
    a = ds[2]["points"]
    torch.manual_seed(2)
    np.random.seed(5)
    b = ds[2]["points"]
    assert torch.equal(a, b)
    assert float(np.linalg.norm(a.numpy(), axis=1).max()) <= 1.0 + 1e-6  # subset of a unit-sphere cloud
    # The same as the documented pipeline: normalise the cloud, then resample(rng=None), no augmentation.
    ref, _ = normalize_unit_sphere(np.load(items[2][0])[:, :3])
    np.testing.assert_array_equal(a.numpy(), resample(ref, 100)[0])
    # normalize="subset": the chosen points themselves are centred with max radius 1.
    sub = PointCloudDataset(items, num_points=100, train=False, normalize="subset")[2]["points"].numpy()
    np.testing.assert_allclose(sub.mean(0), 0.0, atol=1e-5)
    assert np.linalg.norm(sub, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    raw = PointCloudDataset(items, num_points=100, train=False, normalize="none")[2]["points"].numpy()
    np.testing.assert_array_equal(raw, resample(np.load(items[2][0])[:, :3], 100)[0])


def test_train_items_are_random_and_augmented(items: list[tuple[str, int]]) -> None:
    ds = PointCloudDataset(items, num_points=100)
    a, b = ds[0]["points"], ds[0]["points"]
    assert not torch.equal(a, b)
    no_aug = PointCloudDataset(items, num_points=100, augment=False)[0]["points"].numpy()
    assert np.linalg.norm(no_aug, axis=1).max() <= 1.0 + 1e-6  # only subset, no scale/shift
    extents = [np.ptp(ds[0]["points"].numpy(), axis=0) for _ in range(20)]
    assert np.std(extents) > 0.05  # the per-axis scale changes the extent


def test_reproducible_with_seeded_dataset_and_workers(items: list[tuple[str, int]]) -> None:
    ds = SeededDataset(PointCloudDataset(items, num_points=64, use_normals=True))
    a, b, c = ds[(0, 11)], ds[(0, 11)], ds[(0, 12)]
    assert torch.equal(a["points"], b["points"]) and not torch.equal(a["points"], c["points"])

    def batches(workers: int) -> list[dict]:
        sampler = ResumableSampler(len(items), seed=3, drop_last=False)
        return list(DataLoader(ds, batch_size=2, sampler=sampler, num_workers=workers))

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 3
    for x, y in zip(serial, parallel):
        assert x["points"].shape[1:] == (64, 6)
        assert x["index"].tolist() == y["index"].tolist()
        assert torch.equal(x["points"], y["points"])


def test_skip_policy_counts(items: list[tuple[str, int]], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "bad.txt").write_text("1,2,3\n4,5\n")
    (tmp_path / "empty.npy").write_bytes(b"")
    mixed = [items[0], (str(tmp_path / "bad.txt"), 1), (str(tmp_path / "empty.npy"), 0), items[1]]
    with pytest.raises(PointReadError, match=r"bad\.txt: line 2"):
        PointCloudDataset(mixed, num_points=32)[1]
    ds = PointCloudDataset(mixed, num_points=32, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="omnimask.modalities.points.reader"):
        x = ds[1]
    assert (x["index"], x["skipped"], x["label"]) == (3, 2, items[1][1])
    assert [Path(p).name for p, _ in ds.skipped] == ["bad.txt", "empty.npy"]
    assert "line 2" in ds.skipped[0][1] and "skipping point cloud" in caplog.text
    assert ds[2]["skipped"] == 1 and len(ds.skipped) == 2  # each bad file recorded once
    assert ds[0]["skipped"] == 0
    # Giving up: all bad, or too many consecutive failures.
    with pytest.raises(PointReadError, match="every point cloud failed"):
        PointCloudDataset(mixed[1:3], on_error="skip")[0]
    with pytest.raises(PointReadError, match="1 consecutive point clouds failed"):
        PointCloudDataset(mixed, num_points=32, on_error="skip", max_skips=1)[1]


def test_min_points_and_missing_normals(items: list[tuple[str, int]], tmp_path: Path) -> None:
    np.save(tmp_path / "small.npy", _cloud(20))
    small = str(tmp_path / "small.npy")
    with pytest.raises(PointReadError, match=r"small\.npy: it has 20 points, fewer than min_points=64"):
        PointCloudDataset([(small, 0)], num_points=32, min_points=64)[0]
    ds = PointCloudDataset([(small, 0), items[0]], num_points=32, min_points=64, on_error="skip")
    assert ds[0]["index"] == 1 and ds[0]["skipped"] == 1
    assert "20 points" in ds.skipped[0][1] and "min_points=64" in ds.skipped[0][1]
    with pytest.raises(PointReadError, match=r"small\.npy: it has 3 columns, use_normals=True needs 6"):
        PointCloudDataset([(small, 0)], use_normals=True)[0]


def test_fixups_are_recorded(items: list[tuple[str, int]], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    np.save(tmp_path / "small.npy", _cloud(20))
    np.save(tmp_path / "dot.npy", np.full((50, 3), 0.3, dtype=np.float32))
    small, dot = str(tmp_path / "small.npy"), str(tmp_path / "dot.npy")
    ds = PointCloudDataset([(small, 0), (dot, 1), items[0]], num_points=32)
    with caplog.at_level(logging.WARNING, logger="omnimask.modalities.points.reader"):
        a, b, c = ds[0], ds[1], ds[2]
        ds[0]
    assert (a["resampled"], a["degenerate"]) == (1, 0) and a["points"].shape == (32, 3)
    assert (b["resampled"], b["degenerate"]) == (0, 1) and torch.isfinite(b["points"]).all()
    assert (c["resampled"], c["degenerate"]) == (0, 0)
    assert ds.resampled == {small: 20} and ds.degenerate == [dot]
    assert caplog.text.count("fewer than num_points=32: 12 points duplicated") == 1  # logged once per file
    eval_item = PointCloudDataset([(small, 0)], num_points=32, train=False)[0]
    assert eval_item["resampled"] == 1


def test_dataset_argument_errors(items: list[tuple[str, int]]) -> None:
    with pytest.raises(ValueError, match="on_error"):
        PointCloudDataset(items, on_error="ignore")
    with pytest.raises(ValueError, match="normalize"):
        PointCloudDataset(items, normalize="sphere")
    with pytest.raises(ValueError, match="num_points"):
        PointCloudDataset(items, num_points=0)
    with pytest.raises(ValueError, match="min_points"):
        PointCloudDataset(items, min_points=0)
    with pytest.raises(ValueError, match="at least one"):
        PointCloudDataset([])
    with pytest.raises(IndexError):
        PointCloudDataset(items)[5]


# ---------------------------------------------------------------- item lists


def _modelnet_tree(root: Path) -> Path:
    root.mkdir()
    (root / "modelnet40_shape_names.txt").write_text("airplane\nnight_stand\nbed\n")
    shapes = {"train": ["airplane_0001", "night_stand_0002", "bed_0001"], "test": ["bed_0002", "airplane_0003"]}
    for split, ids in shapes.items():
        (root / f"modelnet40_{split}.txt").write_text("\n".join(ids) + "\n")
        for shape_id in ids:
            cls = shape_id.rsplit("_", 1)[0]
            (root / cls).mkdir(exist_ok=True)
            _write_txt(root / cls / f"{shape_id}.txt", _cloud(20, normals=True))
    return root


def test_modelnet_items(tmp_path: Path) -> None:
    root = _modelnet_tree(tmp_path / "modelnet40_normal_resampled")
    train, classes = modelnet_items(root, "train", with_classes=True)
    assert classes == ["airplane", "night_stand", "bed"]
    assert [(Path(p).name, label) for p, label in train] == [
        ("airplane_0001.txt", 0), ("night_stand_0002.txt", 1), ("bed_0001.txt", 2)
    ]  # fmt: skip
    assert [label for _, label in modelnet_items(root, "test")] == [2, 0]
    x = PointCloudDataset(train, num_points=16, use_normals=True, train=False)[1]
    assert x["points"].shape == (16, 6) and x["label"] == 1
    # A missing file is named with the list file's line number; so is an unknown class.
    (root / "bed" / "bed_0002.txt").unlink()
    with pytest.raises(PointListError, match=r"modelnet40_test\.txt:1: point file does not exist: .*bed_0002\.txt"):
        modelnet_items(root, "test")
    (root / "modelnet40_train.txt").write_text("airplane_0001\n\nchair_0001\n")
    with pytest.raises(PointListError, match=r"modelnet40_train\.txt:3: class 'chair' of 'chair_0001' is not in"):
        modelnet_items(root, "train")
    (root / "modelnet40_shape_names.txt").unlink()
    with pytest.raises(FileNotFoundError, match="modelnet40_shape_names.txt"):
        modelnet_items(root, "train")
    with pytest.raises(ValueError, match="split"):
        modelnet_items(root, "val")


def test_shapenet_items(tmp_path: Path) -> None:
    root = tmp_path / "ShapeNet55-34"
    (root / "ShapeNet-55").mkdir(parents=True)
    (root / "shapenet_pc").mkdir()
    train = ["04379243-aaa.npy", "02691156-bbb.npy", "04379243-ccc.npy"]
    test = ["03001627-ddd.npy", "02691156-eee"]  # a synset only in test; a name without .npy
    (root / "ShapeNet-55" / "train.txt").write_text("\n".join(train) + "\n")
    (root / "ShapeNet-55" / "test.txt").write_text("\n".join(test) + "\n")
    for name in train + ["03001627-ddd.npy", "02691156-eee.npy"]:
        np.save(root / "shapenet_pc" / name, _cloud(64))
    items, synsets = shapenet_items(root, "train", with_classes=True)
    assert synsets == ["02691156", "03001627", "04379243"]  # sorted over train and test lists
    assert [(Path(p).name, label) for p, label in items] == [
        ("04379243-aaa.npy", 2), ("02691156-bbb.npy", 0), ("04379243-ccc.npy", 2)
    ]  # fmt: skip
    assert [label for _, label in shapenet_items(root, "test")] == [1, 0]
    (root / "shapenet_pc" / "02691156-bbb.npy").unlink()
    with pytest.raises(PointListError, match=r"train\.txt:2: point file does not exist: .*02691156-bbb\.npy"):
        shapenet_items(root, "train")
    (root / "ShapeNet-55" / "test.txt").write_text("03001627-ddd.npy\nbroken.npy\n")
    with pytest.raises(PointListError, match=r"test\.txt:2: expected '<synset>-<model>\.npy'"):
        shapenet_items(root, "test")


def test_folder_items(tmp_path: Path) -> None:
    root = tmp_path / "clouds"
    tree = {"b_class": ["x.npy", "sub/y.txt", "notes.md"], "a_class": ["z.npz"], ".hidden": ["h.npy"]}
    for cls, names in tree.items():
        for name in names:
            (root / cls / name).parent.mkdir(parents=True, exist_ok=True)
            if name.endswith(".npy"):
                np.save(root / cls / name, _cloud(8))
            elif name.endswith(".npz"):
                np.savez(root / cls / name, points=_cloud(8))
            else:
                _write_txt(root / cls / name, _cloud(8))
    (root / "empty_class").mkdir()
    items, classes = folder_items(root, with_classes=True)
    assert classes == ["a_class", "b_class", "empty_class"]
    assert [(Path(p).relative_to(root).as_posix(), label) for p, label in items] == [
        ("a_class/z.npz", 0), ("b_class/sub/y.txt", 1), ("b_class/x.npy", 1)
    ]  # fmt: skip
    assert [Path(p).name for p, _ in folder_items(root, extensions=("npy",))] == ["x.npy"]
    with pytest.raises(PointListError, match="no class sub-folders"):
        folder_items(root / "empty_class")
    with pytest.raises(FileNotFoundError):
        folder_items(tmp_path / "nowhere")


# ---------------------------------------------------------------- embedded parts


def test_embedded_points_part(embedded_data_dir: Path) -> None:
    root = embedded_points_root(embedded_data_dir, progress=False)
    images, labels = load_digits_source()
    is_val = stratified_split(labels)
    train, classes = folder_items(root / "train", with_classes=True)
    val = folder_items(root / "val")
    assert classes == [str(c) for c in range(10)]
    assert (root / "classes.txt").read_text().split() == classes
    assert len(train) == int((~is_val).sum()) and len(val) == int(is_val.sum()) and len(train) + len(val) == 1797
    for path, label in train[::97] + val[::41]:
        i = int(Path(path).stem)
        assert label == labels[i] and ("val" in Path(path).parts) == bool(is_val[i])
    m = json.loads((root / "manifest.json").read_text())
    assert m["counts"]["total"] == 1797 and m["counts"]["num_points"] == 2048
    assert m["counts"]["per_class"]["val"]["3"] == int((is_val & (labels == 3)).sum())
    assert "load_digits" in (root / "README.txt").read_text()
    x = np.load(train[0][0])
    assert x.dtype == np.float32 and x.shape == (2048, 3)
    first = int(Path(train[0][0]).stem)
    np.testing.assert_array_equal(x, digit_point_cloud(images[first], first))
    # The xy footprint reproduces the digit: an 8x8 histogram of the points vs the 8x8 image.
    corr = []
    for i in range(0, 1797, 60):
        p = digit_point_cloud(images[i], i)
        col = np.clip(((p[:, 0] + 1) * 4).astype(int), 0, 7)
        row = np.clip(((1 - p[:, 1]) * 4).astype(int), 0, 7)
        hist = np.bincount(row * 8 + col, minlength=64).astype(float)
        corr.append(np.corrcoef(hist, images[i].ravel().astype(float))[0, 1])
        assert np.abs(p[:, 2]).max() < 0.25  # thin along z
    assert min(corr) > 0.8, corr
    ds = PointCloudDataset(val, num_points=1024, train=False)
    assert ds[0]["points"].shape == (1024, 3) and ds[0]["resampled"] == 0


def test_embedded_shapes_part(embedded_data_dir: Path) -> None:
    root = embedded_shapes_root(embedded_data_dir, progress=False)
    train, classes = folder_items(root / "train", with_classes=True)
    val = folder_items(root / "val")
    assert classes == list(SHAPE_CLASSES) == (root / "classes.txt").read_text().split()
    assert len(train) == 5 * 120 and len(val) == 5 * 30
    assert np.bincount([label for _, label in train]).tolist() == [120] * 5
    assert json.loads((root / "manifest.json").read_text())["counts"]["total"] == 750
    assert "SURFACE" in (root / "README.txt").read_text()
    by_class: dict[str, list[np.ndarray]] = {c: [] for c in classes}
    for path, label in train[::10] + val[::5]:
        x = np.load(path)
        assert x.dtype == np.float32 and x.shape == (2048, 3)
        by_class[classes[label]].append(normalize_unit_sphere(x)[0])
    for s in by_class["sphere"]:  # on the surface: radius about the fitted centre nearly constant
        assert _sphere_fit_cv(s) < 0.02
        r = np.linalg.norm(s, axis=1)  # about the centroid (off by ~1/sqrt(2048) of the radius)
        assert r.std() / r.mean() < 0.04
    for name in ("cube", "cylinder", "cone", "torus"):  # other shapes are not spheres
        assert min(_sphere_fit_cv(s) for s in by_class[name]) > 0.05
    for t in by_class["torus"]:  # a hole in the middle
        assert np.linalg.norm(t, axis=1).min() > 0.25
    for c in by_class["cube"]:  # surface only: no points deep inside
        assert np.linalg.norm(c, axis=1).min() > 0.3


def test_shape_surfaces_are_area_uniform() -> None:
    rng = np.random.default_rng(0)
    n = 40000
    box, dims = shape_surface_points("cube", n, rng, a=1.0, b=2.0, c=0.5)
    on_face = np.isclose(np.abs(box), [1.0, 2.0, 0.5]).argmax(1)  # which face pair each point is on
    area = np.array([2.0 * 0.5, 1.0 * 0.5, 1.0 * 2.0])
    np.testing.assert_allclose(np.bincount(on_face) / n, area / area.sum(), atol=0.01)
    cyl, _ = shape_surface_points("cylinder", n, rng, h=1.0)
    side = np.isclose(np.hypot(cyl[:, 0], cyl[:, 1]), 1.0) & (np.abs(cyl[:, 2]) < 1.0)
    assert side.mean() == pytest.approx(2.0 / 3.0, abs=0.01)  # side 4 pi vs caps 2 pi
    caps = cyl[~side]
    assert (np.hypot(caps[:, 0], caps[:, 1]) < 0.5).mean() == pytest.approx(0.25, abs=0.015)  # uniform on the disk
    cone, dims = shape_surface_points("cone", n, rng, h=1.0)
    lateral = cone[:, 2] > -0.5 + 1e-9
    assert lateral.mean() == pytest.approx(np.sqrt(2) / (np.sqrt(2) + 1), abs=0.01)
    # Lateral area below height z grows as the square of the distance from the apex.
    assert (cone[lateral, 2] > 0.0).mean() == pytest.approx(0.25, abs=0.015)
    torus, _ = shape_surface_points("torus", n, rng, a=0.5)
    outer = np.hypot(torus[:, 0], torus[:, 1]) > 1.0
    assert outer.mean() == pytest.approx(0.5 + 0.5 / np.pi, abs=0.01)  # outer half has more area
    with pytest.raises(ValueError, match="unknown shape"):
        shape_surface_points("pyramid", 10, rng)


def test_embedded_point_parts_rebuild_identically(embedded_data_dir: Path, tmp_path: Path) -> None:
    again = ensure_embedded_dataset(tmp_path, parts=("points", "shapes"), progress=False)
    for part in ("points", "shapes"):
        a = json.loads((embedded_data_dir / "v1" / part / "manifest.json").read_text())
        b = json.loads((again / "v1" / part / "manifest.json").read_text())
        assert a == b
