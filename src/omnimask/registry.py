"""Named registries for the pluggable parts: modalities, masking, decoders, objectives, converters.

A registry maps a lower-case name to a class (or factory). Unknown names and duplicate
registrations raise, and keyword arguments are checked against the constructor signature
*before* anything is built, so a typo in a config names the bad key and the valid ones.

Registration is discovery: a registry built with ``discover=`` fills itself on its first lookup by
importing every module of its package (:func:`import_submodules`) and every entry point of its
group (:func:`load_entry_points`, e.g. ``omnimask.modalities`` for a third-party modality). No list
of members is kept by hand anywhere: a new file in the package, or an installed plugin, is found.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "ConfigError", "check_keys", "import_submodules", "load_entry_points", "discoverer"]

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


def import_submodules(package: str, skip: Iterable[str] = (), packages_only: bool = False) -> list[str]:
    """Import every public module of ``package`` (not ``_private`` ones, nor the names in ``skip``)
    so that their registrations run; ``packages_only`` imports only sub-packages (one folder per
    modality). Returns the imported module names."""
    pkg = importlib.import_module(package)
    skip = set(skip)
    names = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_") or info.name in skip or (packages_only and not info.ispkg):
            continue
        importlib.import_module(f"{package}.{info.name}")
        names.append(info.name)
    return names


def load_entry_points(group: str) -> list[str]:
    """Load every installed entry point of ``group`` (importing a module runs its registrations; a
    loaded callable is called once, so ``module:register`` works too). A plugin that fails to load
    is reported with its name and distribution, never silently dropped."""
    loaded = []
    for ep in metadata.entry_points(group=group):
        try:
            obj = ep.load()
        except Exception as err:  # name the broken plugin, whatever it raised
            dist = getattr(ep.dist, "name", "?")
            raise ImportError(
                f"entry point {ep.name!r} = {ep.value!r} of {dist!r} (group {group!r}) failed to load: {err}"
            ) from err
        if callable(obj) and not isinstance(obj, type):
            obj()
        loaded.append(ep.name)
    return loaded


def discoverer(
    package: str, group: str, skip: Iterable[str] = ("base",), packages_only: bool = False
) -> Callable[[], None]:
    """The usual ``discover=`` of a registry: the package's own modules, then installed plugins."""

    def discover() -> None:
        import_submodules(package, skip, packages_only)
        load_entry_points(group)

    return discover


class Registry(Generic[T]):
    """A name -> class registry with signature-checked construction.

    Example:
        >>> MASKING = Registry("masking strategy", discover=discoverer("omnimask.masking", "omnimask.masking"))
        >>> @MASKING.register("random")
        ... class RandomMasking: ...

    Args:
        kind: what the members are, for messages ("masking strategy").
        discover: called once, on the first lookup (``get``, ``names``, ``in``), to import the
            modules that register members. Registration itself never triggers it, so a module may
            register while the discovery that imported it is still running.
    """

    def __init__(self, kind: str, discover: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._discover = discover
        self._discovered = discover is None

    def discover(self) -> None:
        """Run discovery now (once); later calls do nothing."""
        if self._discovered:
            return
        self._discovered = True  # set first: modules imported below may look members up
        try:
            self._discover()  # type: ignore[misc]
        except BaseException:
            self._discovered = False  # let a later lookup retry (and raise the same error again)
            raise

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
        self.discover()
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {self.names()}.{_suggest(name, self._items)}")
        return self._items[name]

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self.discover()
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
        missing = [
            p for p, d in params.items() if d is inspect.Parameter.empty and p not in kwargs and p not in injected
        ]
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
        try:
            return self.get(name)(**kwargs, **extra)
        except ConfigError:
            raise
        except (ValueError, TypeError) as err:  # a bad value: say which config entry it came from
            raise ConfigError(f"{where} ({self.kind} {name!r}): {err}") from err
