"""Errors shared by the data readers of every modality."""

from __future__ import annotations

__all__ = ["DataReadError"]


class DataReadError(RuntimeError):
    """A sample file that cannot be read (missing, empty, corrupt, wrong format).

    The message names the file and the problem. Readers raise a subclass per modality; the recipe
    runner reports any of them as a one-line error.
    """
