"""Point-cloud ops (FPS, kNN grouping, Chamfer) against brute-force references, and the chamfer objective."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from omnimask.objectives import OBJECTIVES
from omnimask.objectives.chamfer import MaskedChamfer
from omnimask.ops.geometry import (
    POINTNET2_MIN_NORM_SQ,
    chamfer_distance,
    chamfer_l1,
    chamfer_l2,
    farthest_point_sample,
    gather_points,
    group_points,
    knn_group,
)

# ----------------------------------------------------------------------------------- references


def _sq(a, b):
    """Squared distance, coordinates summed in order, in the inputs' numpy scalar type."""
    s = (a[0] - b[0]) * (a[0] - b[0])
    for j in range(1, len(a)):
        s = s + (a[j] - b[j]) * (a[j] - b[j])
    return s


def fps_reference(pts: np.ndarray, num: int, start: int = 0, min_norm_sq: float | None = None) -> list[int]:
    """One-thread transcription of the pointnet2 FPS kernel's rule, point by point.

    Running min distance per point; skip excluded points; the next centre is the first point with
    the strictly largest running distance (``best = -1``, ``if d > best``).
    """
    n = len(pts)
    zero = pts.dtype.type(0)
    excluded = [False] * n
    if min_norm_sq is not None:
        excluded = [float(_sq(p, [zero] * len(p))) <= min_norm_sq for p in pts]
        if all(excluded):  # documented: a fully excluded cloud ignores the filter
            excluded = [False] * n
    running = [math.inf] * n
    chosen, cur = [start], start
    for _ in range(num - 1):
        best, besti = -1.0, 0
        for j in range(n):
            if excluded[j]:
                continue
            running[j] = min(running[j], _sq(pts[j], pts[cur]))
            if running[j] > best:
                best, besti = running[j], j
        chosen.append(besti)
        cur = besti
    return chosen


def fps_kernel_threads_reference(pts: np.ndarray, num: int, min_norm_sq: float | None = None) -> list[int]:
    """The pointnet2 kernel simulated thread by thread: T strided threads, first max per thread, tree reduction."""
    n = len(pts)
    T = max(min(1 << int(math.log(n) / math.log(2.0)), 512), 1)
    zero = pts.dtype.type(0)
    excluded = [False] * n
    if min_norm_sq is not None:
        excluded = [float(_sq(p, [zero] * len(p))) <= min_norm_sq for p in pts]
    temp = [1e10] * n
    chosen, old = [0], 0
    for _ in range(num - 1):
        dists, dists_i = [-1.0] * T, [0] * T
        for tid in range(T):
            for k in range(tid, n, T):
                if excluded[k]:
                    continue
                temp[k] = min(_sq(pts[k], pts[old]), temp[k])
                if temp[k] > dists[tid]:
                    dists[tid], dists_i[tid] = temp[k], k
        s = T // 2
        while s >= 1:
            for tid in range(s):
                if dists[tid + s] > dists[tid]:
                    dists[tid], dists_i[tid] = dists[tid + s], dists_i[tid + s]
            s //= 2
        old = dists_i[0]
        chosen.append(old)
    return chosen


def check_fps(xyz: torch.Tensor, num: int, start=0, min_norm_sq=None) -> torch.Tensor:
    got = farthest_point_sample(xyz, num, start=start, min_norm_sq=min_norm_sq)
    assert got.shape == (xyz.shape[0], num) and got.dtype == torch.long
    starts = start.expand(xyz.shape[0]).tolist() if isinstance(start, torch.Tensor) else [start] * xyz.shape[0]
    for b in range(xyz.shape[0]):
        want = fps_reference(xyz[b].numpy(), num, starts[b], min_norm_sq)
        assert got[b].tolist() == want, f"batch {b}: {got[b].tolist()} != {want}"
    return got


# ----------------------------------------------------------------------------------------- FPS


@pytest.mark.parametrize("B,N,G", [(1, 1, 1), (1, 5, 5), (2, 17, 6), (3, 64, 16), (2, 200, 32)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fps_matches_reference_start0(B, N, G, dtype):
    xyz = torch.randn(B, N, 3, dtype=dtype)
    idx = check_fps(xyz, G)
    assert (idx[:, 0] == 0).all()
    assert all(len(set(r)) == G for r in idx.tolist())  # distinct points, fewer centres than points


def test_fps_other_starts():
    xyz = torch.rand(3, 50, 3, dtype=torch.float64)
    check_fps(xyz, 12, start=7)
    check_fps(xyz, 12, start=49)
    got = check_fps(xyz, 12, start=torch.tensor([0, 13, 42]))
    assert torch.equal(
        farthest_point_sample(xyz, 12, start=torch.tensor([0, 13, 42]), chunk_elements=1), got
    )  # one cloud per block
    check_fps(xyz, 12, start=torch.tensor(5))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    r1 = farthest_point_sample(xyz, 12, start="random", generator=g1)
    r2 = farthest_point_sample(xyz, 12, start="random", generator=g2)
    assert torch.equal(r1, r2)
    check_fps(xyz, 12, start=r1[:, 0])  # the rest follows the rule from the random start


def test_fps_ties_go_to_lowest_index():
    # An integer grid: exact float distances, many exact ties at every step.
    grid = torch.tensor(list(itertools.product(range(4), repeat=3)), dtype=torch.float32)
    xyz = torch.stack([grid, grid.flip(0), grid[torch.randperm(64)]])
    check_fps(xyz, 30)
    check_fps(xyz, 30, start=21)
    # Two points equally far from the start: the lower index wins.
    pts = torch.tensor([[[0.0, 0, 0], [0, 0, 0.5], [1, 0, 0], [0, 1, 0], [-1, 0, 0]]])
    assert farthest_point_sample(pts, 2).tolist() == [[0, 2]]


def test_fps_pointnet2_tie_order_matches_thread_simulation():
    grid = torch.tensor(list(itertools.product(range(4), repeat=3)), dtype=torch.float32)
    clouds = [
        grid.unsqueeze(0),  # 64 points, 64 threads
        torch.cat([grid, grid[:10]]).unsqueeze(0),  # 74 points, 64 threads: some threads scan two points
        grid[torch.randperm(64)][:37].unsqueeze(0),  # 37 points, 32 threads
        grid[:5].unsqueeze(0),  # 5 points, 4 threads
        (torch.randn(2, 300, 3) * 3).round(),  # integer coordinates: ties and duplicates, 256 threads
        torch.randn(1, 1100, 3).round(),  # more points than the kernel's 512 threads
        torch.randn(1, 40, 3) * 1e6,  # squared distances above the kernel's 1e10 start value: all tie
    ]
    differs = False
    for xyz in clouds:
        num = min(24, xyz.shape[1])
        got = farthest_point_sample(xyz, num, ties="pointnet2")
        for b in range(xyz.shape[0]):
            assert got[b].tolist() == fps_kernel_threads_reference(xyz[b].numpy(), num)
        differs |= not torch.equal(got, farthest_point_sample(xyz, num))
    assert differs  # the two tie rules do disagree on these clouds
    # With the kernel's magnitude filter (the grid's origin point and its neighbours at norm^2 <= 1e-3).
    xyz = torch.cat([grid, grid * 0.01]).unsqueeze(0)
    got = farthest_point_sample(xyz, 30, min_norm_sq=POINTNET2_MIN_NORM_SQ, ties="pointnet2")
    assert got[0].tolist() == fps_kernel_threads_reference(xyz[0].numpy(), 30, POINTNET2_MIN_NORM_SQ)
    # Without exact ties the two rules agree.
    xyz = torch.randn(2, 100, 3)
    assert torch.equal(farthest_point_sample(xyz, 20, ties="pointnet2"), farthest_point_sample(xyz, 20))


def test_fps_duplicates_and_more_centres_than_distinct_points():
    base = torch.randn(2, 5, 3, dtype=torch.float64)
    xyz = base.repeat(1, 3, 1)  # every point three times (indices i, i+5, i+10)
    idx = check_fps(xyz, 8)
    # 5 distinct points: the first 5 picks are distinct locations, then repeats (running distance 0).
    for row in idx.tolist():
        assert len({i % 5 for i in row[:5]}) == 5
    check_fps(xyz, 15, start=3)


def test_fps_min_norm_filter():
    xyz = torch.rand(2, 40, 3, dtype=torch.float64) * 2 - 1
    near = [0, 3, 4, 10, 39]
    xyz[:, near] = torch.tensor([0.01, -0.02, 0.005], dtype=torch.float64)  # squared norm 5.25e-4 <= 1e-3
    xyz[1, 7] = torch.tensor([0.0316, 0.0, 0.0], dtype=torch.float64)  # 9.99e-4: excluded
    xyz[1, 8] = torch.tensor([0.0317, 0.0, 0.0], dtype=torch.float64)  # 1.005e-3: kept
    idx = check_fps(xyz, 20, min_norm_sq=POINTNET2_MIN_NORM_SQ)
    assert idx[:, 0].tolist() == [0, 0]  # the start is taken even though it is excluded (as the kernel does)
    for b, row in enumerate(idx.tolist()):
        assert not set(row[1:]) & set(near)
        if b == 1:
            assert 7 not in row[1:]
    check_fps(xyz, 20, start=5, min_norm_sq=POINTNET2_MIN_NORM_SQ)
    # Unfiltered FPS does pick near-origin points here (so the filter is what excludes them).
    assert set(farthest_point_sample(xyz, 40, start=1)[0].tolist()) & set(near)


def test_fps_min_norm_filter_edge_cases():
    # Fewer kept points than centres: kept points first, then repeats of chosen kept points.
    xyz = torch.zeros(1, 10, 3, dtype=torch.float64)
    xyz[0, [2, 5, 6]] = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]], dtype=torch.float64)
    idx = check_fps(xyz, 6, min_norm_sq=1e-3)
    assert sorted(idx[0, 1:4].tolist()) == [2, 5, 6] and set(idx[0, 4:].tolist()) <= {2, 5, 6}
    # Every point excluded: the filter is ignored for that cloud only.
    tiny = torch.randn(2, 30, 3, dtype=torch.float64)
    tiny[0] *= 1e-3
    got = check_fps(tiny, 9, min_norm_sq=1e-3)
    assert torch.equal(got[0], farthest_point_sample(tiny[:1], 9)[0])


def test_fps_half_and_cuda_layouts_agree():
    xyz = torch.randn(2, 64, 3)
    ref = farthest_point_sample(xyz.double(), 16)
    assert torch.equal(farthest_point_sample(xyz, 16), ref)
    assert torch.equal(farthest_point_sample(xyz, 16, chunk_elements=64), ref)
    assert farthest_point_sample(xyz.half(), 16).shape == (2, 16)  # computed in float32
    assert farthest_point_sample(torch.randn(0, 8, 3), 4).shape == (0, 4)
    if torch.cuda.is_available():
        assert torch.equal(farthest_point_sample(xyz.cuda(), 16).cpu(), farthest_point_sample(xyz, 16))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: farthest_point_sample(torch.rand(2, 8, 3), 0), "num"),
        (lambda: farthest_point_sample(torch.rand(2, 8, 3), 9), r"num must be in \[1, 8\]"),
        (lambda: farthest_point_sample(torch.rand(8, 3), 2), r"xyz: expected a \(B, N, D\)"),
        (lambda: farthest_point_sample(torch.rand(2, 0, 3), 1), "at least one point"),
        (lambda: farthest_point_sample(torch.tensor([[[0.0, 0, 0], [math.nan, 0, 0]]]), 1), "finite"),
        (lambda: farthest_point_sample(torch.tensor([[[0.0, 0, 0], [math.inf, 0, 0]]]), 1), "finite"),
        (lambda: farthest_point_sample(torch.rand(2, 8, 3), 2, start=8), "start"),
        (lambda: farthest_point_sample(torch.rand(2, 8, 3), 2, start=-1), "start"),
        (lambda: farthest_point_sample(torch.rand(2, 8, 3), 2, start="first"), "start"),
        (
            lambda: farthest_point_sample(torch.rand(2, 8, 3), 2, start=torch.tensor([0, 1, 2])),
            r"start: expected a scalar or a \(2,\)",
        ),
        (lambda: farthest_point_sample(torch.rand(2, 8, 3), 2, start=torch.tensor([0, 8])), "start: indices"),
        (lambda: farthest_point_sample(torch.rand(2, 8, 3), 2, min_norm_sq=math.nan), "min_norm_sq"),
        (lambda: farthest_point_sample(torch.rand(2, 8, 3), 2, ties="first"), "ties"),
        (lambda: knn_group(torch.rand(2, 8, 3), torch.rand(2, 4, 3), 9), r"k must be in \[1, 8\]"),
        (lambda: knn_group(torch.rand(2, 8, 3), torch.rand(3, 4, 3), 2), "centers: expected shape"),
        (lambda: knn_group(torch.rand(2, 8, 3), torch.rand(2, 4, 2), 2), "centers: expected shape"),
        (
            lambda: knn_group(torch.rand(2, 8, 3), torch.full((2, 4, 3), math.nan), 2),
            "centers: coordinates must be finite",
        ),
        (
            lambda: gather_points(torch.rand(2, 8, 3), torch.tensor([[0, 8], [1, 2]])),
            r"idx: indices must be in \[0, 7\]",
        ),
        (lambda: gather_points(torch.rand(2, 8, 3), torch.tensor([[0, 1]])), "idx: expected shape"),
        (lambda: chamfer_distance(torch.rand(2, 4, 3), torch.rand(2, 5, 2)), "same leading dims and D"),
        (lambda: chamfer_distance(torch.rand(2, 4, 3), torch.rand(3, 5, 3)), "same leading dims and D"),
        (lambda: chamfer_distance(torch.rand(3), torch.rand(3)), "at least 2 dims"),
        (lambda: chamfer_distance(torch.rand(2, 0, 3), torch.rand(2, 5, 3)), "pred: expected at least one point"),
        (lambda: chamfer_l1(torch.rand(2, 4, 3), torch.rand(2, 5, 3), eps=-1.0), "eps"),
    ],
)
def test_value_errors_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors_name_the_problem():
    with pytest.raises(TypeError, match="xyz: expected floating-point"):
        farthest_point_sample(torch.ones(1, 4, 3, dtype=torch.long), 2)
    with pytest.raises(TypeError, match="num: expected an int"):
        farthest_point_sample(torch.rand(1, 4, 3), 2.0)
    with pytest.raises(TypeError, match="start: expected an integer tensor"):
        farthest_point_sample(torch.rand(1, 4, 3), 2, start=torch.tensor(0.0))
    with pytest.raises(TypeError, match="idx: expected an integer tensor"):
        gather_points(torch.rand(1, 4, 3), torch.zeros(1, 2))


# ----------------------------------------------------------------------------------- kNN / group


def _brute_sq_dists(xyz: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    return ((centers[:, :, None, :] - xyz[:, None, :, :]) ** 2).sum(-1)  # (B, G, N), float64 inputs


@pytest.mark.parametrize("B,N,G,k", [(1, 1, 1, 1), (2, 50, 8, 5), (3, 128, 16, 32), (2, 64, 64, 64)])
def test_knn_matches_sorted_exact_search(B, N, G, k):
    xyz = torch.randn(B, N, 3, dtype=torch.float64)
    centers = torch.randn(B, G, 3, dtype=torch.float64)
    d = _brute_sq_dists(xyz, centers)
    ref_vals, ref_idx = d.sort(dim=-1, stable=True)
    for chunk in (None, 7, 1 << 20):
        idx = knn_group(xyz, centers, k, chunk_elements=chunk)
        assert idx.shape == (B, G, k) and idx.dtype == torch.long
        got_vals = d.gather(-1, idx)
        assert torch.equal(got_vals, ref_vals[..., :k])  # the k smallest, sorted ascending
        assert torch.equal(idx.sort(-1).values, ref_idx[..., :k].sort(-1).values)  # same sets (no ties here)


def test_knn_ties_and_duplicates():
    grid = torch.tensor(list(itertools.product(range(4), repeat=3)), dtype=torch.float32)
    xyz = torch.cat([grid, grid[:10]]).unsqueeze(0).repeat(2, 1, 1)  # ties and exact duplicates
    xyz[1] = xyz[1, torch.randperm(74)]
    centers = xyz[:, [0, 5, 21, 63]] + torch.tensor([0.0, 0.0, 0.5])
    d = _brute_sq_dists(xyz.double(), centers.double())
    ref_vals, ref_idx = d.sort(dim=-1, stable=True)
    for chunk in (None, 11):
        idx = knn_group(xyz, centers, 9, chunk_elements=chunk)
        assert len(set(idx[0, 0].tolist())) == 9
        assert torch.equal(d.gather(-1, idx), ref_vals[..., :9])  # ties: compare distances, not indices
        stable = knn_group(xyz, centers, 9, stable=True, chunk_elements=chunk)
        assert torch.equal(stable, ref_idx[..., :9])  # stable=True: ties -> lowest index


def test_group_points_relative_and_grad():
    xyz = torch.randn(2, 40, 3, dtype=torch.float64, requires_grad=True)
    centers = gather_points(xyz, farthest_point_sample(xyz, 6))
    assert torch.equal(
        centers.detach(), torch.stack([xyz[b, farthest_point_sample(xyz, 6)[b]] for b in range(2)]).detach()
    )
    nb, idx = group_points(xyz, centers, 5)
    raw, idx2 = group_points(xyz, centers, 5, relative=False)
    assert nb.shape == (2, 6, 5, 3) and torch.equal(idx, idx2)
    ref = torch.stack([xyz[b][idx[b]] for b in range(2)])
    assert torch.equal(raw, ref) and torch.allclose(nb, ref - centers[:, :, None], atol=0, rtol=0)
    assert torch.equal(nb[:, :, 0], torch.zeros_like(nb[:, :, 0]))  # each centre is its own nearest point
    nb.square().sum().backward()
    assert torch.isfinite(xyz.grad).all()


# --------------------------------------------------------------------------------------- Chamfer


def _hand_sets():
    # d1 = [0, 1], d2 = [0, 4, 4]  and  d1 = [1, 4], d2 = [1, 1, 1]
    pred = torch.tensor([[[0.0, 0, 0], [1, 0, 0]], [[0, 0, 0], [0, 0, 3]]], dtype=torch.float64)
    target = torch.tensor([[[0.0, 0, 0], [0, 2, 0], [3, 0, 0]], [[0, 0, 1], [0, 0, 1], [0, 0, 1]]], dtype=torch.float64)
    return pred, target


def test_chamfer_hand_computed():
    pred, target = _hand_sets()
    d1, d2 = chamfer_distance(pred, target)
    assert d1.tolist() == [[0, 1], [1, 4]] and d2.tolist() == [[0, 4, 4], [1, 1, 1]]
    # One set: L2 = mean(0, 1) + mean(0, 4, 4); L1 = (mean(0, 1) + mean(0, 2, 2)) / 2.
    assert chamfer_l2(pred[0], target[0]).item() == pytest.approx(0.5 + 8 / 3, abs=1e-12)
    assert chamfer_l1(pred[0], target[0], eps=0).item() == pytest.approx((0.5 + 4 / 3) / 2, abs=1e-12)
    assert chamfer_l1(pred[0], target[0]).item() == pytest.approx((0.5 + 4 / 3) / 2, abs=1e-6)
    # Both sets: means over all sets' points together.
    assert chamfer_l2(pred, target).item() == pytest.approx(6 / 4 + 11 / 6, abs=1e-12)
    assert chamfer_l1(pred, target, eps=0).item() == pytest.approx((4 / 4 + 7 / 6) / 2, abs=1e-12)
    # Leading dims are kept; float32 in, float32 out.
    d1, d2 = chamfer_distance(pred.float().view(1, 2, 2, 3), target.float().view(1, 2, 3, 3))
    assert d1.shape == (1, 2, 2) and d2.shape == (1, 2, 3) and d1.dtype == torch.float32


def test_chamfer_matches_brute_force_values_and_grads():
    pred = torch.randn(5, 7, 3, dtype=torch.float64, requires_grad=True)
    target = torch.randn(5, 9, 3, dtype=torch.float64, requires_grad=True)
    pair = ((pred[:, :, None] - target[:, None]) ** 2).sum(-1)
    ref = pair.min(2).values.mean() + pair.min(1).values.mean()
    gp_ref, gt_ref = torch.autograd.grad(ref, (pred, target))
    for chunk in (None, 5, 100):
        loss = chamfer_l2(pred, target, chunk_elements=chunk)
        assert loss.item() == pytest.approx(ref.item(), rel=1e-14)
        gp, gt = torch.autograd.grad(loss, (pred, target))
        assert torch.allclose(gp, gp_ref, rtol=1e-12, atol=1e-14) and torch.allclose(gt, gt_ref, rtol=1e-12, atol=1e-14)
    small_p = pred[:2, :3].detach().clone().requires_grad_()
    small_t = target[:2, :4].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: chamfer_l1(a, b), (small_p, small_t))


def test_chamfer_exact_squared_differences():
    # Large offset, tiny separation: the |a|^2 - 2ab + |b|^2 expansion cancels catastrophically here.
    base = torch.full((1, 1, 3), 1000.0)
    pred = base + torch.tensor([[[1e-3, 0, 0]]])
    d1, d2 = chamfer_distance(pred, base)
    want = (pred[0, 0, 0] - base[0, 0, 0]) ** 2  # float32 difference, squared
    assert d1.item() == want.item() and d2.item() == want.item()


@pytest.mark.parametrize("loss_fn", [chamfer_l2, chamfer_l1])
def test_chamfer_finite_gradients_at_coincident_points(loss_fn):
    target = torch.randn(3, 8, 3)
    pred = target.clone().requires_grad_()  # every predicted point coincides with a target point
    loss = loss_fn(pred, target)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().max() == 0
    same = torch.full((2, 6, 3), 0.25, requires_grad=True)  # all points identical, both sides
    other = torch.full((2, 4, 3), 0.25, requires_grad=True)
    loss_fn(same, other).backward()
    assert torch.isfinite(same.grad).all() and torch.isfinite(other.grad).all()
    mixed = torch.cat([target[:, :4], target[:, :4] + 1], 1).requires_grad_()  # some coincide, some not
    loss_fn(mixed, target).backward()
    assert torch.isfinite(mixed.grad).all()


# -------------------------------------------------------------------------------------- objective


def _objective_inputs(B=3, N=6, k=5):
    pred = torch.randn(B, N, k * 3, requires_grad=True)
    target = torch.randn(B, N, k * 3)
    mask = torch.zeros(B, N, dtype=torch.bool)
    for b in range(B):
        mask[b, torch.randperm(N)[: int(0.6 * N)]] = True  # Point-MAE: the same count per sample
    return pred, target, mask


def test_chamfer_objective_registered_and_built():
    assert OBJECTIVES.get("chamfer") is MaskedChamfer
    obj = OBJECTIVES.build("chamfer", {"norm": "l1"}, "test", channels=3, input_mean=None, input_std=None)
    assert isinstance(obj, MaskedChamfer) and obj.norm == "l1" and obj.channels == 3
    with pytest.raises(ValueError, match="norm must be one of"):
        MaskedChamfer(norm="emd")
    with pytest.raises(ValueError, match="eps"):
        MaskedChamfer(eps=-1.0)


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_chamfer_objective_counts_only_masked_groups(norm):
    pred, target, mask = _objective_inputs()
    obj = MaskedChamfer(norm=norm)
    loss = obj(pred, target, mask)
    flat = pred[mask].view(-1, 5, 3), target[mask].view(-1, 5, 3)
    want = chamfer_l2(*flat) if norm == "l2" else chamfer_l1(*flat)
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    # Point-MAE: rebuild_points = pred[mask].reshape(B * M, k, 3); loss over the stacked groups.
    B, M = mask.shape[0], int(mask[0].sum())
    assert torch.equal(pred[mask].reshape(B * M, 5, 3), flat[0])
    # Uncounted groups do not matter: neither the value nor the gradient.
    other = pred.detach().clone()
    other[~mask] = torch.randn_like(other[~mask]) * 100
    assert obj(other, target, mask).item() == loss.item()
    target2 = target.clone()
    target2[~mask] = 7.0
    assert obj(pred, target2, mask).item() == loss.item()
    loss.backward()
    assert pred.grad[~mask].abs().max() == 0 and pred.grad[mask].abs().max() > 0
    assert torch.equal(obj.denormalize_pred(pred, target), pred)


def test_chamfer_objective_edge_cases():
    pred, target, mask = _objective_inputs()
    obj = MaskedChamfer()
    zero = obj(pred, target, torch.zeros_like(mask))
    assert zero.item() == 0.0 and zero.requires_grad
    # Half precision in, float32 loss; a different point count in pred than in target is allowed.
    assert obj(pred.detach().bfloat16(), target, mask).dtype == torch.float32
    assert torch.isfinite(obj(pred[..., :9], target, mask))
    # Another channel count that divides the token vector (15 = 3 points x 5 coordinates).
    assert torch.isfinite(MaskedChamfer(channels=5)(pred, target, mask))
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        obj(pred, target, mask.float())
    with pytest.raises(ValueError, match="mask shape"):
        obj(pred, target, mask[:, :4])
    with pytest.raises(ValueError, match="differ in"):
        obj(pred, target[:2], mask)
    with pytest.raises(ValueError, match="not a positive multiple of channels=3"):
        obj(pred[..., :14], target, mask)
    with pytest.raises(ValueError, match=r"must be \(B, N, P\)"):
        obj(pred[0], target[0], mask[0])
