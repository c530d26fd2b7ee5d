"""Point-cloud operations in pure PyTorch: farthest point sampling, kNN grouping, Chamfer distance.

These replace the CUDA extensions Point-MAE depends on (``pointnet2_ops`` FPS + gather,
``knn_cuda``, ``extensions/chamfer_dist``) with batched tensor code that runs on CPU and CUDA
alike and needs no compilation.

Every function takes batched clouds ``(B, N, D)`` with ``D`` coordinates per point (``D = 3`` for
Point-MAE; any ``D >= 1`` works). Half-precision inputs are computed in float32, float32 and
float64 in their own precision. Bad shapes, dtypes and values raise errors that name the argument
and the problem (``ValueError`` for shapes and values, ``TypeError`` for dtypes).

Work is done in blocks of about ``chunk_elements`` elements (pairwise distances for kNN and
Chamfer, clouds x points for FPS); chunking changes speed and memory only, never the result. The
default (:func:`default_chunk_elements`) is large on CUDA, where fewer kernel launches matter, and
``2**15`` on CPU: below torch's intra-op parallel grain (32768 elements), so each op runs on the
calling thread. That gives up multi-threading inside these ops, and buys robustness: on a busy
machine every multi-threaded op waits for its slowest thread, which we measured at ~8 ms *per op*
on a loaded 2-core box (FPS on 128 clouds: 4.9 s with 2 threads and whole-batch ops, 17 ms on one
thread). Pass a larger ``chunk_elements`` to let big blocks use several threads on an idle machine.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "POINTNET2_MIN_NORM_SQ",
    "chamfer_distance",
    "chamfer_l1",
    "chamfer_l2",
    "default_chunk_elements",
    "farthest_point_sample",
    "gather_points",
    "group_points",
    "knn_group",
]

#: ``pointnet2_ops``' FPS kernel skips points with ``x*x + y*y + z*z <= 1e-3``; pass this as
#: ``min_norm_sq`` to :func:`farthest_point_sample` for the kernel's exact selection rule.
POINTNET2_MIN_NORM_SQ = 1e-3

_CPU_CHUNK = 1 << 15  # elements per block on CPU: at torch's intra-op parallel grain (see module docstring)
_DEVICE_CHUNK = 1 << 26  # elsewhere (CUDA): big chunks, few launches; 256 MiB per float32 buffer


def default_chunk_elements(device: torch.device | str) -> int:
    """Pairwise distances computed per chunk by :func:`knn_group` / :func:`chamfer_distance` on ``device``."""
    return _CPU_CHUNK if torch.device(device).type == "cpu" else _DEVICE_CHUNK


# --------------------------------------------------------------------------------------------- checks


def _work_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype the arithmetic runs in: the promoted input dtype, half precision raised to float32."""
    dt = dtypes[0]
    for d in dtypes[1:]:
        dt = torch.promote_types(dt, d)
    return torch.float64 if dt == torch.float64 else torch.float32


def _check_points(t: object, name: str, ndim: int | None = 3, finite: bool = True) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected floating-point coordinates, got dtype {t.dtype}")
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name}: expected a (B, N, D) point tensor with {ndim} dims, got shape {tuple(t.shape)}")
    if ndim is None and t.ndim < 2:
        raise ValueError(
            f"{name}: expected a (..., N, D) point tensor with at least 2 dims, got shape {tuple(t.shape)}"
        )
    if t.shape[-1] < 1:
        raise ValueError(f"{name}: points need at least one coordinate, got shape {tuple(t.shape)}")
    if t.shape[-2] < 1:
        raise ValueError(f"{name}: expected at least one point, got shape {tuple(t.shape)}")
    if finite and t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: coordinates must be finite (found NaN or inf)")
    return t


def _check_int(v: object, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__} {v!r}")
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def _check_chunk(chunk_elements: int | None, device: torch.device) -> int:
    if chunk_elements is None:
        return default_chunk_elements(device)
    return _check_int(chunk_elements, "chunk_elements", 1, 1 << 62)


# ---------------------------------------------------------------------------------------------- FPS


def _start_indices(
    start: int | Tensor | str, B: int, N: int, device: torch.device, generator: torch.Generator | None
) -> Tensor:
    """(B, 1) long start index per cloud."""
    if isinstance(start, str):
        if start != "random":
            raise ValueError(f"start: expected an int, a tensor of indices or 'random', got {start!r}")
        gen_device = generator.device if generator is not None else device
        return torch.randint(0, N, (B, 1), generator=generator, device=gen_device).to(device)
    if isinstance(start, Tensor):
        if start.dtype.is_floating_point or start.dtype.is_complex or start.dtype == torch.bool:
            raise TypeError(f"start: expected an integer tensor, got dtype {start.dtype}")
        if start.ndim > 1 or (start.ndim == 1 and start.shape[0] != B):
            raise ValueError(f"start: expected a scalar or a ({B},) tensor of indices, got shape {tuple(start.shape)}")
        if start.numel() and bool(((start < 0) | (start >= N)).any()):
            raise ValueError(f"start: indices must be in [0, {N - 1}], got {start.tolist()}")
        return start.to(device=device, dtype=torch.long).reshape(-1, 1).expand(B, 1).contiguous()
    start = _check_int(start, "start", 0, N - 1)
    return torch.full((B, 1), start, dtype=torch.long, device=device)


@torch.no_grad()
def farthest_point_sample(
    xyz: Tensor,
    num: int,
    start: int | Tensor | Literal["random"] = 0,
    min_norm_sq: float | None = None,
    generator: torch.Generator | None = None,
    *,
    ties: Literal["lowest", "pointnet2"] = "lowest",
    chunk_elements: int | None = None,
) -> Tensor:
    """Iterative farthest point sampling; returns the (B, num) long indices of the chosen points.

    The selection rule is that of ``pointnet2_ops``' ``furthest_point_sample`` CUDA kernel:

    1. the first index is ``start`` (the kernel always uses 0, the default here);
    2. every point keeps its running minimum squared distance to the points chosen so far,
       computed as ``(dx*dx + dy*dy) + dz*dz`` in the input precision (float32 for half inputs);
    3. the next index is the argmax of that running distance; with ``ties="lowest"`` (default)
       exact ties go to the **lowest index** (``torch.argmax`` returns the first maximum).

    Args:
        xyz: (B, N, D) point coordinates (D = 3 for the kernel); must be finite.
        num: number of points to choose, ``1 <= num <= N``.
        start: first index: an int, a scalar or (B,) integer tensor (one per cloud), or
            ``"random"`` (uniform per cloud, drawn with ``generator``).
        min_norm_sq: if set, points with squared norm ``<= min_norm_sq`` are *excluded*: they are
            never chosen (except as ``start``, which is always taken first, as in the kernel). The
            comparison is done in float64, like the kernel's ``mag <= 1e-3`` (a double literal).
            Use :data:`POINTNET2_MIN_NORM_SQ` (1e-3) to reproduce the kernel; ``None`` (default)
            excludes nothing. If fewer than ``num`` points of a cloud remain, the remaining picks
            repeat already-chosen kept points (their running distance is 0; the tie rule picks
            one), as the kernel does. **If every point of a cloud is excluded, the filter is
            ignored for that cloud** (plain FPS); the kernel would instead return index 0 ``num``
            times, which is useless as a set of centres.
        generator: random generator for ``start="random"``.
        ties: ``"lowest"``: exact ties go to the lowest index, running distances start at +inf.
            ``"pointnet2"``: the kernel's own tie order and its 1e10 initial running distance.
            The kernel runs ``T = 2**floor(log2 N)`` threads (at most 512); thread ``t`` scans
            points ``t, t+T, ...`` keeping its first maximum (strict ``>``), then a tree reduction
            keeps the lower slot on ties, so among tied points the winner is the one whose thread
            id has the smallest *bit-reversed* value, then the lowest index within that thread.
            This is emulated by running the lowest-index rule on the points reordered by that
            priority (one permutation up front, no per-step cost).

    ``chunk_elements`` (default :func:`default_chunk_elements`): the batch is processed in blocks
    of ``max(1, chunk_elements // N)`` clouds, each running the whole loop; on CPU this keeps every
    step's tensors below torch's intra-op parallel grain (see the module docstring).

    With ``ties="pointnet2"`` and ``min_norm_sq=POINTNET2_MIN_NORM_SQ`` the only remaining
    differences from the kernel are that nvcc may fuse the multiply-adds (FMA), so the last bit of
    a distance can differ (which only matters for near-ties), and the fully-excluded case above.
    The two tie rules give the same result whenever no two candidates tie exactly.

    The loop runs ``num`` steps of O(B*N) tensor work with no host synchronisation inside the
    loop, on any device.
    Coordinates are stored as (B, D, N) so each step reads contiguous rows.
    """
    _check_points(xyz, "xyz")
    B, N, _ = xyz.shape
    _check_fps_args(num, N, min_norm_sq, ties)
    device = xyz.device
    far = _start_indices(start, B, N, device, generator)
    out = torch.empty(B, num, dtype=torch.long, device=device)
    if B == 0:
        return out
    pts = xyz.detach().to(_work_dtype(xyz.dtype))
    perm = None
    if ties == "pointnet2":
        pts, far, perm = _to_pointnet2_order(pts, far)
    coords = pts.transpose(1, 2).contiguous().unbind(1)  # D x (B, N)
    dist = _initial_distances(coords, 1e10 if ties == "pointnet2" else math.inf, min_norm_sq)
    _fps_blocks(coords, dist, far, out, _check_chunk(chunk_elements, device))
    return out if perm is None else perm[out]


def _check_fps_args(num: int, N: int, min_norm_sq: float | None, ties: str) -> None:
    """Validate :func:`farthest_point_sample`'s ``num``, ``min_norm_sq`` and ``ties`` (in that order)."""
    _check_int(num, "num", 1, N)
    if min_norm_sq is not None and (
        isinstance(min_norm_sq, bool) or not isinstance(min_norm_sq, (int, float)) or not math.isfinite(min_norm_sq)
    ):
        raise ValueError(f"min_norm_sq: expected a finite number or None, got {min_norm_sq!r}")
    if ties not in ("lowest", "pointnet2"):
        raise ValueError(f"ties: expected 'lowest' or 'pointnet2', got {ties!r}")


def _to_pointnet2_order(pts: Tensor, far: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Reorder the points of ``pts`` (B, N, D) by the pointnet2 kernel's tie priority.

    Returns ``(pts, far, perm)``: the reordered points, the (B, 1) start indices in the new order,
    and ``perm`` (new position -> original index), which maps the chosen indices back.
    """
    B, N = pts.shape[:2]
    perm = _pointnet2_priority(N).to(pts.device)
    far = torch.argsort(perm).gather(0, far.view(-1)).view(B, 1)
    return pts[:, perm], far, perm


def _initial_distances(coords: tuple[Tensor, ...], init: float, min_norm_sq: float | None) -> Tensor:
    """The (B, N) running distances before the first step: ``init``, and -1 for excluded points.

    A point is excluded when its squared norm (summed over ``coords``, D x (B, N), in order,
    compared in float64) is ``<= min_norm_sq``, unless every point of its cloud is. Kept points
    always have a running distance >= 0, so -1 is never the argmax, and ``minimum`` keeps it at -1.
    """
    dist = torch.full(coords[0].shape, init, dtype=coords[0].dtype, device=coords[0].device)
    if min_norm_sq is not None:
        mag = coords[0] * coords[0]
        for c in coords[1:]:
            mag = mag + c * c
        excluded = mag.double() <= float(min_norm_sq)
        excluded &= ~excluded.all(1, keepdim=True)  # a fully excluded cloud ignores the filter
        dist.masked_fill_(excluded, -1.0)
    return dist


def _fps_blocks(coords: tuple[Tensor, ...], dist: Tensor, far: Tensor, out: Tensor, chunk: int) -> None:
    """Run :func:`_fps_block` on blocks of ``max(1, chunk // N)`` clouds, filling ``out`` (B, num)."""
    B, N = dist.shape
    bs = max(1, chunk // N)  # clouds per block
    for b0 in range(0, B, bs):
        b1 = min(B, b0 + bs)
        _fps_block([c[b0:b1] for c in coords], dist[b0:b1], far[b0:b1], out[b0:b1], out.shape[1])


def _fps_block(coords: list[Tensor], dist: Tensor, far: Tensor, out: Tensor, num: int) -> None:
    """The FPS loop over one block of clouds: coords D x (b, N), running distances (b, N), start (b, 1) -> out (b, num)."""
    d = torch.empty_like(dist)
    t = torch.empty_like(dist)
    for i in range(num):
        out[:, i : i + 1] = far
        if i == num - 1:
            break
        torch.sub(coords[0], coords[0].gather(1, far), out=d).square_()
        for c in coords[1:]:
            torch.sub(c, c.gather(1, far), out=t).square_()
            d.add_(t)
        torch.minimum(dist, d, out=dist)
        far = dist.argmax(1, keepdim=True)


def _pointnet2_priority(N: int) -> Tensor:
    """Point indices ordered by the pointnet2 FPS kernel's tie priority (see ``ties="pointnet2"``)."""
    T = max(min(1 << int(math.log(N) / math.log(2.0)), 512), 1)  # opt_n_threads(n), same float formula
    bits = T.bit_length() - 1
    k = torch.arange(N)
    tid = k % T
    rev = torch.zeros_like(tid)
    for b in range(bits):
        rev |= ((tid >> b) & 1) << (bits - 1 - b)
    return torch.argsort(rev * ((N + T - 1) // T) + k // T)


# ------------------------------------------------------------------------------------- gather / kNN


def _gather(xyz: Tensor, idx: Tensor) -> Tensor:
    """xyz (B, N, D), idx (B, *S) -> (B, *S, D); no checks."""
    B, D = xyz.shape[0], xyz.shape[-1]
    flat = idx.reshape(B, -1, 1).expand(-1, -1, D)
    return torch.gather(xyz, 1, flat).reshape(*idx.shape, D)


def gather_points(xyz: Tensor, idx: Tensor) -> Tensor:
    """Points of each cloud at ``idx``: xyz (B, N, D), idx (B, G) (or (B, *S)) -> (B, G, D) (or (B, *S, D)).

    The pure-PyTorch ``gather_operation`` (differentiable with respect to ``xyz``). Indices are
    range-checked (one host synchronisation on CUDA).
    """
    _check_points(xyz, "xyz", finite=False)
    if not isinstance(idx, Tensor) or idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise TypeError(f"idx: expected an integer tensor, got {getattr(idx, 'dtype', type(idx).__name__)}")
    if idx.ndim < 2 or idx.shape[0] != xyz.shape[0]:
        raise ValueError(
            f"idx: expected shape ({xyz.shape[0]}, G, ...) for xyz of shape {tuple(xyz.shape)}, got {tuple(idx.shape)}"
        )
    N = xyz.shape[1]
    if idx.numel() and bool(((idx < 0) | (idx >= N)).any()):
        raise ValueError(f"idx: indices must be in [0, {N - 1}] (xyz has {N} points)")
    return _gather(xyz, idx.to(device=xyz.device, dtype=torch.long))


def _sq_dist_block(a: list[Tensor], b: list[Tensor], out: Tensor, tmp: Tensor) -> Tensor:
    """Exact pairwise squared distances ``sum_c (a_c - b_c)**2`` into ``out``, coordinate by coordinate.

    ``a[c]`` and ``b[c]`` broadcast to ``out``'s shape; the sum runs over c in order, so the result
    is bit-identical to ``(dx*dx + dy*dy) + dz*dz`` computed point by point.
    """
    torch.sub(a[0], b[0], out=out).square_()
    for ac, bc in zip(a[1:], b[1:]):
        torch.sub(ac, bc, out=tmp).square_()
        out.add_(tmp)
    return out


@torch.no_grad()
def knn_group(
    xyz: Tensor,
    centers: Tensor,
    k: int,
    *,
    stable: bool = False,
    chunk_elements: int | None = None,
) -> Tensor:
    """Exact k nearest neighbours of each centre among its cloud's points: idx (B, G, k) long.

    Distances are exact squared Euclidean distances (per-coordinate differences, squared and summed;
    not the ``|a|^2 - 2ab + |b|^2`` expansion ``torch.cdist`` uses for large inputs, which can
    reorder near neighbours). Neighbours are sorted by increasing distance, so ``idx[..., 0]`` is
    the nearest point (the centre itself when it is one of the points).

    Tie order: with ``stable=False`` (default, ``topk``), when several points lie at exactly the
    same distance from a centre, their relative order, and which of them fill the last slots when
    the tie straddles the k-th place, are unspecified (as in ``knn_cuda``); the returned distances
    are always the k smallest. Exact ties come from duplicate points, which give the same grouped
    coordinates whichever index is taken. ``stable=True`` breaks ties by lowest index, using a
    stable full sort per centre (about 2-4x slower on CPU).

    Args:
        xyz: (B, N, D) points; centers: (B, G, D) query points (e.g. from FPS); both finite.
        k: neighbours per centre, ``1 <= k <= N``.
        chunk_elements: pairwise distances per chunk (default :func:`default_chunk_elements`);
            working memory is O(max(chunk, N)) besides the (B, G, k) output.
    """
    _check_points(xyz, "xyz")
    _check_points(centers, "centers")
    B, N, D = xyz.shape
    if centers.shape[0] != B or centers.shape[2] != D:
        raise ValueError(
            f"centers: expected shape ({B}, G, {D}) to match xyz {tuple(xyz.shape)}, got {tuple(centers.shape)}"
        )
    if centers.device != xyz.device:
        raise ValueError(f"centers is on {centers.device} but xyz is on {xyz.device}")
    _check_int(k, "k", 1, N)
    G = centers.shape[1]
    chunk = _check_chunk(chunk_elements, xyz.device)
    out = torch.empty(B, G, k, dtype=torch.long, device=xyz.device)
    if B == 0:
        return out
    dt = _work_dtype(xyz.dtype, centers.dtype)
    pts = xyz.to(dt).transpose(1, 2).contiguous()  # (B, D, N)
    cen = centers.to(dt)
    rows = max(1, chunk // N)  # centres per chunk
    if rows >= G:
        bs, gs = max(1, rows // G), G
    else:
        bs, gs = 1, rows
    dbuf = torch.empty(bs * gs * N, dtype=dt, device=xyz.device)
    tbuf = torch.empty_like(dbuf)
    vbuf = torch.empty(bs * gs * k, dtype=dt, device=xyz.device)
    for b0 in range(0, B, bs):
        b1 = min(B, b0 + bs)
        for g0 in range(0, G, gs):
            g1 = min(G, g0 + gs)
            shape = (b1 - b0, g1 - g0, N)
            n = shape[0] * shape[1] * N
            c = cen[b0:b1, g0:g1]
            p = pts[b0:b1]
            d = _sq_dist_block(
                [c[..., j : j + 1] for j in range(D)],
                [p[:, None, j, :] for j in range(D)],
                dbuf[:n].view(shape),
                tbuf[:n].view(shape),
            )
            if stable:
                out[b0:b1, g0:g1] = d.sort(dim=-1, stable=True).indices[..., :k]
            else:
                vals = vbuf[: shape[0] * shape[1] * k].view(shape[0], shape[1], k)
                torch.topk(d, k, dim=-1, largest=False, sorted=True, out=(vals, out[b0:b1, g0:g1]))
    return out


def group_points(
    xyz: Tensor,
    centers: Tensor,
    k: int,
    relative: bool = True,
    *,
    stable: bool = False,
    chunk_elements: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Point-MAE's grouping: the k nearest points of each centre.

    Returns ``(neighborhood, idx)``: neighborhood (B, G, k, D) = ``xyz[idx] - center`` when
    ``relative`` (Point-MAE's only per-group normalisation), else the raw coordinates; idx
    (B, G, k) from :func:`knn_group` (see there for ``stable`` and ``chunk_elements``).
    Differentiable with respect to ``xyz`` and ``centers``.
    """
    idx = knn_group(xyz, centers, k, stable=stable, chunk_elements=chunk_elements)
    nb = _gather(xyz, idx)
    if relative:
        nb = nb - centers.unsqueeze(2).to(nb.dtype)
    return nb, idx


# ------------------------------------------------------------------------------------------ Chamfer


@torch.no_grad()
def _nearest(a: Tensor, b: Tensor, chunk: int) -> Tensor:
    """For each point of a (M, D, P), the index of its nearest point of b (M, D, Q): (M, P) long; ties -> lowest index.

    Blocks of at most ``chunk`` distances, laid out (rows, points of a, points of b) so every
    reduction runs over the contiguous last dim (``argmin`` returns the first minimum). When one
    point's row alone exceeds ``chunk``, b is scanned in pieces with a running minimum.
    """
    M, D, P = a.shape
    Q = b.shape[2]
    out = torch.empty(M, P, dtype=torch.long, device=a.device)
    qc = min(Q, chunk)  # points of b per block
    pc = min(P, max(1, chunk // qc))  # points of a per block
    ms = min(M, max(1, chunk // (pc * qc)))  # rows per block
    buf = torch.empty(ms * pc * qc, dtype=a.dtype, device=a.device)
    tmp = torch.empty_like(buf)
    for m0 in range(0, M, ms):
        m1 = min(M, m0 + ms)
        for p0 in range(0, P, pc):
            p1 = min(P, p0 + pc)
            best_v = best_i = None
            for q0 in range(0, Q, qc):
                q1 = min(Q, q0 + qc)
                shape = (m1 - m0, p1 - p0, q1 - q0)
                n = shape[0] * shape[1] * shape[2]
                x, y = a[m0:m1, :, p0:p1], b[m0:m1, :, q0:q1]
                d = _sq_dist_block(
                    [x[:, j, :, None] for j in range(D)],
                    [y[:, j, None, :] for j in range(D)],
                    buf[:n].view(shape),
                    tmp[:n].view(shape),
                )
                i = d.argmin(dim=2, keepdim=True)
                if q0 == 0 and q1 == Q:
                    best_i = i
                    break
                v = d.gather(2, i)
                i = i + q0
                if best_v is None:
                    best_v, best_i = v, i
                else:  # strictly smaller only, so ties keep the earlier (lower) index
                    better = v < best_v
                    best_v, best_i = torch.where(better, v, best_v), torch.where(better, i, best_i)
            out[m0:m1, p0:p1] = best_i.squeeze(2)
    return out


def _sq_dist_points(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise squared distance of (..., D) point tensors, summed over coordinates in order (differentiable)."""
    diff = a - b
    out = diff[..., 0] * diff[..., 0]
    for j in range(1, a.shape[-1]):
        out = out + diff[..., j] * diff[..., j]
    return out


def chamfer_distance(pred: Tensor, target: Tensor, *, chunk_elements: int | None = None) -> tuple[Tensor, Tensor]:
    """Squared nearest-neighbour distances both ways between point sets.

    Args:
        pred: (..., P, D); target: (..., Q, D) with the same leading dims and D.
    Returns:
        ``d1`` (..., P): for each predicted point, the squared distance to its nearest target point;
        ``d2`` (..., Q): for each target point, the squared distance to its nearest predicted point.
        This is what Point-MAE's ``ChamferFunction`` (CUDA) returns.

    Distances are exact squared differences (no ``cdist``, no ``|a|^2 - 2ab + |b|^2``). The nearest
    points are found without autograd (ties -> lowest index); ``d1``/``d2`` are then recomputed from
    the matched pairs, so gradients are the CUDA kernel's: ``2 (p - q)`` to both sides of every
    matched pair, zero when the points coincide, and backward costs O(P + Q), not O(P Q).
    Values are not checked for finiteness: NaN propagates into the result.
    """
    _check_points(pred, "pred", ndim=None, finite=False)
    _check_points(target, "target", ndim=None, finite=False)
    if pred.ndim != target.ndim or pred.shape[:-2] != target.shape[:-2] or pred.shape[-1] != target.shape[-1]:
        raise ValueError(
            f"pred (..., P, D) and target (..., Q, D) must have the same leading dims and D, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.device != target.device:
        raise ValueError(f"pred is on {pred.device} but target is on {target.device}")
    lead, (P, D), Q = pred.shape[:-2], pred.shape[-2:], target.shape[-2]
    dt = _work_dtype(pred.dtype, target.dtype)
    p = pred.to(dt).reshape(-1, P, D)
    q = target.to(dt).reshape(-1, Q, D)
    if p.shape[0] == 0:
        return p.new_zeros(*lead, P), q.new_zeros(*lead, Q)
    chunk = _check_chunk(chunk_elements, p.device)
    with torch.no_grad():
        pt, qt = p.detach().transpose(1, 2).contiguous(), q.detach().transpose(1, 2).contiguous()  # (M, D, P|Q)
        idx1, idx2 = _nearest(pt, qt, chunk), _nearest(qt, pt, chunk)
    d1 = _sq_dist_points(p, _gather(q, idx1))
    d2 = _sq_dist_points(q, _gather(p, idx2))
    return d1.reshape(*lead, P), d2.reshape(*lead, Q)


def chamfer_l2(pred: Tensor, target: Tensor, *, chunk_elements: int | None = None) -> Tensor:
    """Point-MAE's ``ChamferDistanceL2``: ``d1.mean() + d2.mean()`` over all sets and points (a scalar)."""
    d1, d2 = chamfer_distance(pred, target, chunk_elements=chunk_elements)
    return d1.mean() + d2.mean()


def chamfer_l1(pred: Tensor, target: Tensor, eps: float = 1e-12, *, chunk_elements: int | None = None) -> Tensor:
    """Point-MAE's ``ChamferDistanceL1``: ``(sqrt(d1 + eps).mean() + sqrt(d2 + eps).mean()) / 2``.

    ``eps`` (default 1e-12) keeps the gradient finite where a predicted point coincides with a
    target point (``sqrt`` has an infinite derivative at 0; Point-MAE's CUDA version has no eps
    and gives NaN there). It raises each distance by at most ``sqrt(eps)`` (1e-6). ``eps=0`` gives
    Point-MAE's exact value, with NaN gradients at coincident points.
    """
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps: expected a finite number >= 0, got {eps!r}")
    d1, d2 = chamfer_distance(pred, target, chunk_elements=chunk_elements)
    return ((d1 + eps).sqrt().mean() + (d2 + eps).sqrt().mean()) / 2
