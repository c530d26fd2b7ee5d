"""Sub-commands that packages add to the ``omnimask`` command line.

The built-in commands (``list``, ``train``, ``convert``, ``data``, ``export``) live in :mod:`omnimask.cli`.
A modality that brings a tool of its own (``audio-stats``) registers a :class:`Command` here from
its package; :data:`COMMANDS` fills itself on first lookup through the modality registry's
discovery, so a third-party modality's commands appear as well.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from .registry import Registry

__all__ = ["COMMANDS", "Command", "register_command"]


@dataclass(frozen=True)
class Command:
    """One sub-command: ``add_arguments(parser)`` declares its arguments, ``run(args)`` returns the
    exit code (user errors raise ``ValueError``/``KeyError``/``FileNotFoundError``: the CLI prints
    them as one ``error:`` line)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _discover() -> None:
    from .modalities.base import MODALITIES

    MODALITIES.discover()


COMMANDS: Registry[Command] = Registry("command", discover=_discover)


def register_command(command: Command) -> Command:
    """Register ``command`` under its name; raises KeyError on a duplicate."""
    COMMANDS.register(command.name)(command)
    return command
