"""Errors shared by the data readers of every modality, and the skip-or-stop policy for bad files."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["DataReadError", "check_item_labels", "check_readable_file", "read_with_policy", "split_list_line"]


class DataReadError(RuntimeError):
    """A sample file that cannot be read (missing, empty, corrupt, wrong format).

    The message names the file and the problem. Readers raise a subclass per modality; the recipe
    runner reports any of them as a one-line error.
    """

    #: True when ``on_error: skip`` already ran and gave up (so the hint to set it is not given).
    after_skipping: bool = False


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
    err = error(f"giving up at index {index}: {why} failed to read (from {items[index][0]}); last error: {last}")
    err.after_skipping = True  # the skip policy ran and gave up: suggesting it would be wrong
    raise err from last


def check_readable_file(
    path: str | os.PathLike[str], error: type[DataReadError], what: str, allow_empty: bool = False
) -> int:
    """Size in bytes of the regular file ``path``; else ``error("cannot read <what> <path>: <why>")``
    (missing, not a regular file, unreadable metadata, or empty unless ``allow_empty``)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"cannot read {what} {path}: the file does not exist") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e}") from e
    if not stat.S_ISREG(st.st_mode):
        raise error(f"cannot read {what} {path}: not a regular file")
    if st.st_size == 0 and not allow_empty:
        raise error(f"cannot read {what} {path}: the file is empty (0 bytes)")
    return st.st_size


def _looks_like_a_path(field: str) -> bool:
    """True for ``one.wav`` or ``clips/a``: a file name, not a mistyped label (``cat``, ``1.5``)."""
    ext = os.path.splitext(field)[1]
    return "/" in field or "\\" in field or any(ch.isalpha() for ch in ext)


def split_list_line(line: str, where: str, error: type[Exception]) -> tuple[str, int]:
    """Split one ``<path> <label>`` list line into ``(path, label)``.

    The line is split at its **last** run of whitespace (spaces or a tab), so paths may contain
    spaces as long as the label follows them. The label must be an integer >= 0 (a class index).

    Raises:
        error: ``<where>: ...`` saying the line has no label (one field, or a last field that is a
            file name such as ``'my clip.wav'``), that the label is not an integer, or that it is
            negative; the line is quoted.
    """
    fields = line.rsplit(maxsplit=1)
    rule = "lines are '<path> <label>', split at the last space or tab (paths may contain spaces)"
    if len(fields) != 2 or _looks_like_a_path(fields[-1]):
        raise error(f"{where}: the line has no label: {line!r}; {rule}")
    path, raw = fields
    try:
        label = int(raw)
    except ValueError:
        raise error(f"{where}: the label {raw!r} is not an integer (line {line!r}; {rule})") from None
    if label < 0:
        raise error(f"{where}: the label {label} is negative (line {line!r}); labels are class indices 0, 1, 2, ...")
    return path, label


def check_item_labels(items: Iterable[tuple[str, Any]], what: str) -> None:
    """Raise ValueError naming the item and its file when an int label of ``(path, label)`` items is
    negative (it would only fail later, in the loss, as ``Target -1 is out of bounds``)."""
    for k, (path, label) in enumerate(items):
        if isinstance(label, int) and label < 0:
            raise ValueError(
                f"{what} item {k} ({path}): the label {label} is negative; labels are class indices 0, 1, 2, ..."
            )
