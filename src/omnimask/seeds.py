"""Deterministic seeds from integers, shared by the data pipeline and the model.

:func:`mix_seed` turns (run seed, epoch, index, stream, ...) into a well-mixed non-negative 63-bit
seed, stable across runs and platforms: the loader seeds each sample's augmentation and mask with
it, and the model draws per-sample choices (partial decoding) from the same kind of seed, so both
stay functions of the sample alone.
"""

from __future__ import annotations

__all__ = ["mix_seed"]

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    # A well-mixed 64-bit bijection: neighbouring inputs give unrelated outputs, so the seeds of
    # samples i and i+1 (or epochs e and e+1) do not produce correlated random streams.
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(*parts: int) -> int:
    """Deterministic non-negative 63-bit seed from integers (stable across runs and platforms)."""
    h = 0
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _MASK64))
    return h >> 1  # keep it below 2**63 so every RNG API accepts it
