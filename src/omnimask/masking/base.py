"""The masking contract shared by every modality.

Polarity, stated once for the whole project: ``mask`` is bool and **True = hidden from the
encoder**. Every sample in a batch keeps the same number of tokens, so the visible set is a dense
``(B, K, D)`` tensor (MAE and VideoMAE both rely on this).

A strategy is called with the batch size and the token grid of the modality and returns a
:class:`MaskSpec`. Reproducibility comes in two forms:

* ``noise`` (B, N) with MAE's argsort semantics: the tokens with the smallest noise are kept.
  Noise-driven strategies (random) use it directly, so a run can be compared number for number
  with ``transformers``' ViTMAE ``noise=``.
* an explicit ``mask`` (B, N) bool, accepted by every strategy (see :func:`spec_from_mask`), e.g.
  made in a data loader or copied from VideoMAE's ``bool_masked_pos``.

* per-sample ``seeds`` (B,): sample ``b``'s mask is a function of ``seeds[b]`` alone, drawn on the
  CPU. A data loader that draws masks per sample (VideoMAE's way, see
  :func:`MaskingStrategy.mask_for_seed`) and the model drawing them on the device from the same
  seeds get identical masks.

Structure-driven strategies (block) draw from an optional ``torch.Generator`` instead of noise.

Spatial strategies over unordered tokens (point groups) set ``needs_coords`` and receive the
tokens' coordinates (B, N, c) as ``coords=``; their ``from_noise``/``sample`` take it as a keyword.

A spec may also choose which positions the *decoder* reconstructs (``decode``, True = decoded;
VideoMAE V2's dual masking). The loss then counts positions that are hidden and decoded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..registry import Registry, discoverer

__all__ = [
    "MaskSpec",
    "MaskingStrategy",
    "MASKING",
    "gather_tokens",
    "spec_from_mask",
    "spec_from_noise",
    "uniform_noise",
    "with_decode",
    "build_masking",
]

MASKING: Registry[type[MaskingStrategy]] = Registry(
    "masking strategy", discover=discoverer("omnimask.masking", "omnimask.masking")
)


@dataclass
class MaskSpec:
    """Which tokens of one modality the encoder sees (and, optionally, which the decoder predicts).

    Attributes:
        ids_keep: (B, K) indices of visible tokens, in the order they enter the encoder.
        ids_restore: (B, N) inverse permutation: ``cat(visible, hidden)[ids_restore]`` is grid order.
        mask: (B, N) bool, True = hidden from the encoder.
        decode: optional (B, N) bool, True = the decoder reconstructs this position (the same count
            in every sample). ``None`` = every position (MAE, VideoMAE).
        ids_decode: (B, Q) indices of the decoded positions in grid order (set with ``decode``).
    """

    ids_keep: Tensor
    ids_restore: Tensor
    mask: Tensor
    decode: Tensor | None = None
    ids_decode: Tensor | None = None

    @property
    def num_visible(self) -> int:
        return self.ids_keep.shape[1]

    @property
    def loss_mask(self) -> Tensor:
        """Positions the loss counts, over the decoder's output positions: hidden (and decoded)."""
        if self.ids_decode is None:
            return self.mask
        return torch.gather(self.mask, 1, self.ids_decode)

    def to(self, device: torch.device | str) -> MaskSpec:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return MaskSpec(
            move(self.ids_keep), move(self.ids_restore), move(self.mask), move(self.decode), move(self.ids_decode)
        )


def with_decode(spec: MaskSpec, decode: Tensor, where: str = "decode") -> MaskSpec:
    """Attach a decoder selection (True = reconstructed) to ``spec``; every sample selects the same count."""
    if decode.dtype != torch.bool:
        raise TypeError(
            f"{where}: expected a bool tensor (True = reconstructed by the decoder), got dtype {decode.dtype}"
        )
    if tuple(decode.shape) != tuple(spec.mask.shape):
        raise ValueError(f"{where}: expected shape {tuple(spec.mask.shape)}, got {tuple(decode.shape)}")
    decode = decode.to(spec.mask.device)
    counts = decode.sum(1)
    if counts.numel() and not bool((counts == counts[0]).all()):
        raise ValueError(
            f"{where}: every sample must select the same number of positions; counts are {counts.tolist()}"
        )
    if counts.numel() and int(counts[0]) == 0:
        raise ValueError(f"{where}: selects no position for the decoder")
    ids = torch.argsort((~decode).to(torch.int8), dim=1, stable=True)[:, : int(counts[0]) if counts.numel() else 0]
    return MaskSpec(spec.ids_keep, spec.ids_restore, spec.mask, decode, ids)


def uniform_noise(shape: tuple[int, ...], device: torch.device | str, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) noise of ``shape`` on ``device``, drawn from ``generator`` (on its own device) if given."""
    if generator is not None:
        return torch.rand(shape, generator=generator, device=generator.device).to(device)
    return torch.rand(shape, device=device)


def gather_tokens(tokens: Tensor, ids: Tensor) -> Tensor:
    """tokens (B, N, D), ids (B, K) -> (B, K, D): the tokens at ``ids``, per sample."""
    return torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def spec_from_noise(noise: Tensor, num_keep: int) -> MaskSpec:
    """MAE's random masking: keep the ``num_keep`` tokens with the smallest noise."""
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    hidden = torch.ones_like(noise, dtype=torch.bool)
    hidden[:, :num_keep] = False
    mask = torch.gather(hidden, 1, ids_restore)
    return MaskSpec(ids_shuffle[:, :num_keep], ids_restore, mask)


def spec_from_mask(mask: Tensor, where: str = "mask") -> MaskSpec:
    """Build a spec from an explicit bool mask (True = hidden); visible tokens keep grid order."""
    if mask.dtype != torch.bool:
        raise TypeError(f"{where}: expected a bool tensor (True = hidden), got dtype {mask.dtype}")
    if mask.ndim != 2:
        raise ValueError(f"{where}: expected shape (batch, tokens), got {tuple(mask.shape)}")
    visible = (~mask).sum(1)
    if visible.numel() and not bool((visible == visible[0]).all()):
        raise ValueError(
            f"{where}: every sample must hide the same number of tokens so the visible set stays "
            f"dense; visible counts per sample are {visible.tolist()}"
        )
    # A stable sort puts visible tokens (0) first, each group in ascending grid order.
    ids_shuffle = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    num_keep = int(visible[0]) if visible.numel() else 0
    return MaskSpec(ids_shuffle[:, :num_keep], ids_restore, mask)


class MaskingStrategy:
    """Base class: subclasses register under a name and implement either

    * :meth:`noise_shape` + :meth:`from_noise` (noise-driven: set ``uses_noise = True``), or
    * :meth:`sample` (structure-driven, drawing from the generator it is given).
    """

    #: Whether ``noise`` drives this strategy (MAE argsort semantics).
    uses_noise: bool = False
    #: Whether the strategy needs each token's coordinates (``coords=`` (B, N, c)), e.g. point-group centres.
    needs_coords: bool = False

    #: How the ratio becomes a count: "visible" = MAE's ``int(N * (1 - ratio))`` visible tokens;
    #: "hidden" = Point-MAE's ``int(N * ratio)`` hidden ones (64 groups at 0.6: 26 vs 25 visible).
    COUNTS = ("visible", "hidden")

    def __init__(self, ratio: float, count: str = "visible") -> None:
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
        if count not in self.COUNTS:
            raise ValueError(f"mask count must be one of {self.COUNTS}, got {count!r}")
        self.ratio = float(ratio)
        self.count = count

    def num_keep(self, num_tokens: int) -> int:
        """Visible tokens per sample: MAE's ``int(N * (1 - ratio))``, or ``N - int(N * ratio)`` with ``count="hidden"``."""
        if self.count == "hidden":
            return num_tokens - int(num_tokens * self.ratio)
        return int(num_tokens * (1 - self.ratio))

    def num_hidden(self, num_tokens: int) -> int:
        return num_tokens - self.num_keep(num_tokens)

    # ---- noise-driven strategies ----------------------------------------------------------------
    def noise_shape(self, grid: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample shape of the uniform noise that decides the mask (noise-driven strategies)."""
        return (math.prod(grid),)

    def from_noise(self, noise: Tensor, grid: tuple[int, ...]) -> MaskSpec:
        """The mask decided by ``noise`` (B, *noise_shape); smallest noise = kept, as in MAE."""
        raise NotImplementedError(f"{type(self).__name__} is not noise-driven")

    def sample(
        self,
        batch_size: int,
        grid: tuple[int, ...],
        *,
        device: torch.device,
        generator: torch.Generator | None,
        **coords: Tensor,
    ) -> MaskSpec:
        """Draw a batch of masks; the default draws uniform noise and calls :meth:`from_noise`."""
        if not self.uses_noise:
            raise NotImplementedError(f"{type(self).__name__} must implement sample()")
        return self.from_noise(uniform_noise((batch_size, *self.noise_shape(grid)), device, generator), grid, **coords)

    # ---- the one entry point ----------------------------------------------------------------------
    def __call__(
        self,
        batch_size: int,
        grid: tuple[int, ...],
        *,
        device: torch.device | str = "cpu",
        noise: Tensor | None = None,
        mask: Tensor | None = None,
        decode: Tensor | None = None,
        generator: torch.Generator | None = None,
        seeds: Sequence[int] | Tensor | None = None,
        coords: Tensor | None = None,
        valid: Tensor | None = None,
    ) -> MaskSpec:
        """Masks for a batch. At most one of ``noise``, ``mask``, ``seeds`` and ``generator`` decides
        the encoder mask; ``decode`` (B, N) bool optionally fixes the decoder's targets; ``coords``
        (B, N, c) are the tokens' coordinates, required by ``needs_coords`` strategies.

        ``valid`` (B, N) bool marks real tokens (False = padding). When a strategy with one noise
        value per token draws its own noise (no ``noise``/``mask``/``seeds``), padded positions get
        noise -1 so they stay visible and the ratio falls on real tokens. Per-sample ``seeds``
        ignore it, so loader-made and model-made masks stay equal."""
        device = torch.device(device)
        if self.needs_coords and mask is None:
            n = math.prod(grid)
            if coords is None:
                raise ValueError(
                    f"{type(self).__name__} needs the tokens' coordinates (coords=); this modality has none"
                )
            if coords.ndim != 3 or tuple(coords.shape[:2]) != (batch_size, n):
                raise ValueError(
                    f"coords: expected shape ({batch_size}, {n}, c) for grid {grid}, got {tuple(coords.shape)}"
                )
        given = [
            name
            for name, v in (("noise", noise), ("mask", mask), ("seeds", seeds), ("generator", generator))
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(f"pass at most one of noise=, mask=, seeds=, generator=; got {given}")
        if seeds is not None:
            seeds = [int(s) for s in (seeds.tolist() if isinstance(seeds, Tensor) else seeds)]
            if len(seeds) != batch_size:
                raise ValueError(f"seeds: expected {batch_size} per-sample seeds, got {len(seeds)}")
            cpu = None if coords is None else coords.detach().cpu()
            if self._batchable_seeds():  # one noise row per seed, then one batched draw: the same masks
                rows = [
                    uniform_noise((1, *self.noise_shape(grid)), "cpu", torch.Generator().manual_seed(s)) for s in seeds
                ]
                drawn = self._draw(len(seeds), grid, torch.device("cpu"), noise=torch.cat(rows), coords=cpu)
                spec = spec_from_mask(drawn.mask.to(device))
                return spec if decode is None else with_decode(spec, decode.to(device))
            specs = [
                self._draw(
                    1,
                    grid,
                    torch.device("cpu"),
                    generator=torch.Generator().manual_seed(s),
                    coords=None if cpu is None else cpu[i : i + 1],
                )
                for i, s in enumerate(seeds)
            ]
            spec = spec_from_mask(torch.cat([s.mask for s in specs]).to(device))
            if decode is None and specs and specs[0].decode is not None:
                decode = torch.cat([s.decode for s in specs])  # type: ignore[misc]
            return spec if decode is None else with_decode(spec, decode.to(device))
        return self._draw(
            batch_size,
            grid,
            device,
            noise=noise,
            mask=mask,
            decode=decode,
            generator=generator,
            coords=coords,
            valid=valid,
        )

    def _batchable_seeds(self) -> bool:
        """Per-sample seeds can be drawn as one batch: a noise-driven strategy whose draw is the
        default one (a single noise tensor, rows independent), so row i of the batched draw is the
        draw of seed i alone."""
        cls = type(self)
        return self.uses_noise and cls._draw is MaskingStrategy._draw and cls.sample is MaskingStrategy.sample

    def mask_for_seed(self, grid: tuple[int, ...], seed: int) -> tuple[Tensor, Tensor | None]:
        """One sample's ``(mask (N,), decode (N,) or None)`` as a function of ``seed`` (CPU).

        This is what a data loader calls per sample; ``strategy(B, grid, seeds=...)`` on any device
        returns the same masks for the same seeds.
        """
        if self.needs_coords:
            raise ValueError(
                f"{type(self).__name__} draws from the tokens' coordinates, which only the model knows; "
                "it cannot make masks in the data loader (set train.masks_in_loader=false)"
            )
        spec = self._draw(1, grid, torch.device("cpu"), generator=torch.Generator().manual_seed(int(seed)))
        return spec.mask[0], None if spec.decode is None else spec.decode[0]

    def _draw(
        self,
        batch_size: int,
        grid: tuple[int, ...],
        device: torch.device,
        *,
        noise: Tensor | None = None,
        mask: Tensor | None = None,
        decode: Tensor | None = None,
        generator: torch.Generator | None = None,
        coords: Tensor | None = None,
        valid: Tensor | None = None,
    ) -> MaskSpec:
        n = math.prod(grid)
        shape = (batch_size, *self.noise_shape(grid)) if self.uses_noise else None
        if noise is None and mask is None and valid is not None and shape == tuple(valid.shape):
            noise = uniform_noise(shape, device, generator).masked_fill(~valid.to(device), -1.0)  # padding kept
        extra = {"coords": coords.to(device)} if self.needs_coords and coords is not None else {}
        if mask is not None:
            if tuple(mask.shape) != (batch_size, n):
                raise ValueError(f"mask: expected shape {(batch_size, n)} for grid {grid}, got {tuple(mask.shape)}")
            spec = spec_from_mask(mask.to(device))
        elif noise is not None:
            if not self.uses_noise:
                raise ValueError(
                    f"{type(self).__name__} is not driven by noise; pass generator= or seeds= for a reproducible "
                    "draw or mask= for an explicit mask"
                )
            expected = (batch_size, *self.noise_shape(grid))
            if tuple(noise.shape) != expected:
                raise ValueError(f"noise: expected shape {expected} for grid {grid}, got {tuple(noise.shape)}")
            spec = self.from_noise(noise.to(device), grid, **extra)
        else:
            spec = self.sample(batch_size, grid, device=device, generator=generator, **extra)
        return spec if decode is None else with_decode(spec, decode.to(device))

    def __repr__(self) -> str:
        count = "" if self.count == "visible" else f", count={self.count!r}"
        return f"{type(self).__name__}(ratio={self.ratio}{count})"


def build_masking(cfg: dict, where: str = "masking") -> MaskingStrategy:
    """Build a strategy from ``{"name": ..., **kwargs}`` (``name`` defaults to ``random``)."""
    cfg = dict(cfg)
    name = cfg.pop("name", "random")
    return MASKING.build(name, cfg, where=where)
