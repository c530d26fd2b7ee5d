"""Recipe configuration: YAML loading, command-line overrides and strict dataclass building.

A recipe is a nested mapping loaded from YAML. ``apply_overrides`` edits it with
``dotted.key=value`` strings, and ``from_dict`` turns a section into a dataclass, rejecting
unknown keys and wrongly typed values with a message that names the key, so typos fail before
any training starts.

PyYAML implements YAML 1.1, whose float pattern needs a dot and a signed exponent, so ``1e-4``
would load as the *string* ``"1e-4"``. :class:`ConfigLoader` resolves such scalars as floats.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from .registry import ConfigError, check_keys

__all__ = ["ConfigError", "ConfigLoader", "load_yaml", "parse_value", "apply_overrides", "from_dict", "to_dict"]

T = TypeVar("T")

_FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.1 floats plus the forms people actually write: 1e-4, 1E5, 1.5e-4, .5e3 (exponent sign
# optional). A bare integer must not match: the float resolver is consulted before the int one.
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``1e-4`` as a float and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # A repeated key in a recipe is almost always a copy-paste mistake; PyYAML would
        # silently keep the last one.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, typing.Hashable) and key in seen:
                raise ConfigError(f"duplicate key {key!r} {key_node.start_mark}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Replace the stock float resolver (on a copy, so yaml.SafeLoader itself is untouched) and put
# ours first so it wins over the int resolver for the characters both start with.
ConfigLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT_TAG]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _ch in list("-+0123456789."):
    ConfigLoader.yaml_implicit_resolvers.setdefault(_ch, []).insert(0, (_FLOAT_TAG, _FLOAT_RE))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping from ``path`` (an empty file gives ``{}``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        with path.open("r", encoding="utf-8") as f:
            data = yaml.load(f, Loader=ConfigLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot parse YAML in {str(path)!r}: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must contain a mapping at top level, got {type(data).__name__}")
    return data


def parse_value(text: str) -> Any:
    """Parse one override value the way YAML would (``1e-4`` -> float, ``[1,2]`` -> list)."""
    try:
        return yaml.load(text, Loader=ConfigLoader)
    except yaml.YAMLError:
        # Not valid YAML on its own (e.g. "a: b: c"): the user meant a plain string.
        return text


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``cfg`` with ``dotted.key=value`` set and ``~dotted.key`` deleted.

    The parent section of every key must exist; whether the leaf key itself is valid is left to
    the schema (``from_dict``), so overrides may add keys that have a default.
    """
    out = copy.deepcopy(cfg)
    for item in overrides:
        delete = item.startswith("~")
        if delete:
            key, value = item[1:], None
            if "=" in key:
                raise ConfigError(f"malformed override {item!r}: '~key' deletes a key and takes no value")
        else:
            if "=" not in item:
                raise ConfigError(f"malformed override {item!r}: expected 'dotted.key=value' or '~dotted.key'")
            key, raw = item.split("=", 1)
            value = parse_value(raw)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"malformed override {item!r}: empty key component in {key!r}")
        node: Any = out
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"override {item!r}: section {where!r} does not exist"
                    + (f"; available: {sorted(node)}" if isinstance(node, dict) else "")
                )
            node = node[part]
        leaf = parts[-1]
        if delete:
            if leaf not in node:
                raise ConfigError(f"override {item!r}: key {key!r} does not exist; available: {sorted(node)}")
            del node[leaf]
        else:
            node[leaf] = value
    return out


def _type_name(tp: Any) -> str:
    """A readable name of an annotation: ``int``, ``bool | 'auto'``, ``float | None``."""
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return " | ".join("None" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp``; return it converted (list -> tuple, int -> float)."""

    def bad() -> ConfigError:
        return ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")

    if tp is Any or tp is object:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union or origin is types.UnionType:
        if value is None:
            if type(None) in args:
                return None
            raise bad()
        arms = [a for a in args if a is not type(None)]
        if len(arms) == 1:  # Optional[X]: X's own message is the most precise one
            return _coerce(value, arms[0], key)
        for arm in arms:
            try:
                return _coerce(value, arm, key)
            except ConfigError:
                continue
        raise bad()
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{key}: expected one of {list(args)}, got {value!r}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise bad()
        return from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        # bool is an int subclass, but "epochs: true" is a mistake; an integral float (1e3) is not.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    if tp in (tuple, list) or origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad()
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} items ({_type_name(tp)}), got {value!r}")
            items = [_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        elif args:
            items = [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        else:
            items = list(value)
        return tuple(items) if (origin or tp) is tuple else items
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise bad()
        if len(args) == 2:
            return {k: _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
        return dict(value)
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise bad()
    return value  # an annotation we do not understand: accept rather than guess


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str) -> T:
    """Build dataclass ``cls`` from ``data``, strictly.

    Unknown keys raise :class:`ConfigError` (with a did-you-mean), values are type-checked
    against the field annotations, and nested dataclass fields are built recursively with
    ``where`` extended (``"optim.sub"``).
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"from_dict needs a dataclass type, got {cls!r}")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r} ({type(data).__name__})")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(data, fields, where)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _coerce(data[name], hints.get(name, Any), f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {name!r}")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Inverse of :func:`from_dict`: plain dicts/lists/scalars (tuples become lists, YAML-safe)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj
