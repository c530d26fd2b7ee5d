"""The ``omnimask`` command line's exit statuses and one-line error messages, shared by the CLI
and the recipe runners (docs/cli.md lists the codes)."""

from __future__ import annotations

import os

__all__ = [
    "exit_code",
    "error_line",
    "debug_enabled",
    "EXIT_OK",
    "EXIT_NON_FINITE",
    "EXIT_USAGE",
    "EXIT_DATA",
    "EXIT_IO",
]

EXIT_OK = 0
EXIT_NON_FINITE = 1  # training stopped on a non-finite loss (the last good checkpoint is kept)
EXIT_USAGE = 2  # bad arguments or configuration: unknown key/name, a path that does not exist
EXIT_DATA = 3  # an input that exists but cannot be read (sample files, a source checkpoint to convert)
EXIT_IO = 4  # a checkpoint or output that cannot be written or read (disk full, damaged checkpoint)


def debug_enabled() -> bool:
    """``OMNIMASK_DEBUG`` is set to something other than ``0``/``false``/``no``: raise, show tracebacks."""
    return os.environ.get("OMNIMASK_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def exit_code(err: BaseException) -> int | None:
    """The documented exit status for a user-facing error, or None for a bug (let it raise)."""
    from .convert import SourceReadError
    from .data.errors import DataReadError
    from .training import CheckpointError, NonFiniteLossError

    if isinstance(err, NonFiniteLossError):
        return EXIT_NON_FINITE
    if isinstance(err, (DataReadError, SourceReadError)):
        return EXIT_DATA
    if isinstance(err, CheckpointError):
        return EXIT_IO
    if isinstance(err, (ValueError, KeyError, FileNotFoundError, NotADirectoryError)):  # ConfigError too
        return EXIT_USAGE
    if isinstance(err, OSError):  # disk full, permissions, read-only file system
        return EXIT_IO
    return None


def error_line(err: BaseException) -> str:
    """``err``'s message on one line (a KeyError's without the quotes ``str`` adds)."""
    text = err.args[0] if isinstance(err, KeyError) and len(err.args) == 1 else str(err)
    text = " ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return text or type(err).__name__
