"""Named registries for the pluggable parts: modalities, masking, decoders, objectives.

A registry maps a lower-case name to a class (or factory). Unknown names and duplicate
registrations raise, and keyword arguments are checked against the constructor signature
*before* anything is built, so a typo in a config names the bad key and the valid ones.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Generic, Iterable, TypeVar

__all__ = ["Registry", "ConfigError", "check_keys"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names it and the valid choices."""


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_keys(given: Iterable[str], valid: Iterable[str], where: str) -> None:
    """Raise ConfigError naming every key of ``given`` that is not in ``valid``."""
    valid = sorted(valid)
    bad = [k for k in given if k not in valid]
    if bad:
        hints = "".join(_suggest(k, valid) for k in bad)
        raise ConfigError(f"unknown key(s) {bad} in {where}; valid keys: {valid}.{hints}")


class Registry(Generic[T]):
    """A name -> class registry with signature-checked construction.

    Example:
        >>> MASKING = Registry("masking strategy")
        >>> @MASKING.register("random")
        ... class RandomMasking: ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        if not name or name != name.lower():
            raise ValueError(f"{self.kind} names are non-empty lower-case strings, got {name!r}")

        def deco(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} is already registered (by {self._items[name]!r})")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        if name not in self._items:
            raise KeyError(
                f"unknown {self.kind} {name!r}; registered: {self.names()}.{_suggest(name, self._items)}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def parameters(self, name: str) -> dict[str, Any]:
        """Constructor parameters of ``name`` with their defaults (``inspect.Parameter.empty`` if none)."""
        sig = inspect.signature(self.get(name))
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
        }

    def check(self, name: str, kwargs: dict[str, Any], where: str, injected: Iterable[str] = ()) -> None:
        """Validate ``kwargs`` for ``name``; ``injected`` are filled in by the builder, not the user."""
        params = self.parameters(name)
        injected = set(injected)
        check_keys(kwargs, [p for p in params if p not in injected], f"{where} ({self.kind} {name!r})")
        missing = [p for p, d in params.items() if d is inspect.Parameter.empty and p not in kwargs and p not in injected]
        if missing:
            raise ConfigError(f"{where} ({self.kind} {name!r}) is missing required key(s) {missing}")

    def build(self, name: str, kwargs: dict[str, Any], where: str = "config", **injected: Any) -> Any:
        """Construct ``name`` from user ``kwargs`` plus builder-supplied ``injected`` values.

        Injected values are only passed when the constructor accepts them, so a component asks for
        what it needs (e.g. ``channels``) simply by naming it in its signature.
        """
        params = self.parameters(name)
        self.check(name, kwargs, where, injected=[k for k in injected if k in params])
        extra = {k: v for k, v in injected.items() if k in params and k not in kwargs}
        return self.get(name)(**kwargs, **extra)
