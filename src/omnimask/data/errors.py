"""Errors shared by the data readers of every modality, and the skip-or-stop policy for bad files."""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

__all__ = ["DataReadError", "read_with_policy"]


class DataReadError(RuntimeError):
    """A sample file that cannot be read (missing, empty, corrupt, wrong format).

    The message names the file and the problem. Readers raise a subclass per modality; the recipe
    runner reports any of them as a one-line error.
    """


def read_with_policy(
    items: Sequence[tuple[str, Any]],
    index: int,
    read: Callable[[str], Any],
    *,
    on_error: str,
    max_skips: int,
    skipped: list[tuple[str, str]],
    error: type[DataReadError],
    what: str,
    logger: logging.Logger,
) -> tuple[int, Any, Any, int]:
    """Read ``items[index]`` (a ``(path, label)`` list) under the ``on_error`` policy.

    ``"raise"`` lets ``read``'s ``error`` propagate. ``"skip"`` logs it, records ``(path, message)``
    in ``skipped`` once per file, and tries the next items (wrapping around) up to ``max_skips``
    reads in all; after that it raises ``error`` naming how many failed.

    Returns:
        ``(j, label, read(path), failures)``: the item actually read and the failed reads before it.
    """
    n = len(items)
    failures = 0
    last: DataReadError | None = None
    for k in range(min(n, max_skips) if on_error == "skip" else 1):
        j = (index + k) % n
        path, label = items[j]
        try:
            value = read(path)
        except error as e:
            if on_error == "raise":
                raise
            failures, last = failures + 1, e
            if path not in {p for p, _ in skipped}:  # each bad file once, however often it is hit
                skipped.append((path, str(e)))
            logger.warning("skipping %s %s: %s", what, path, e)
            continue
        return j, label, value, failures
    why = f"every {what}" if failures == n else f"{failures} consecutive {what}s"
    raise error(f"giving up at index {index}: {why} failed to read (from {items[index][0]}); last error: {last}") from last
