"""Frozen dataclasses from TOML and ``--set a.b=value``: the mechanism behind
:mod:`cctv_sr.config` (run settings) and :mod:`cctv_sr.train.recipe` (training recipes).

:func:`apply_mapping` replaces fields of a (nested) frozen dataclass from a mapping, checking
each value against its annotation (lossless conversions only) and answering an unknown key
with the nearest known one; :func:`parse_override` turns ``a.b=value`` into such a mapping;
:func:`read_toml` reads a file, each failure a one-line ConfigError.
"""

from __future__ import annotations

import difflib
import sys
import types
import typing
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from cctv_sr.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _known(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a dataclass field annotation, converting lossless cases."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(annotation)[0]
        return tuple(_coerce(v, inner, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: union-typed settings are not supported")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(str(value), 10) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if annotation is str:
        return str(value)
    raise ConfigError(f"{where}: unsupported setting type {annotation!r}")


def apply_mapping(obj: Any, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    changes: dict[str, Any] = {}
    known = _known(type(obj))
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where or 'config'}: unknown key '{key}'{_suggest(key, known)}")
        current = getattr(obj, key)
        path = f"{where}.{key}" if where else key
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: expected a table, got {value!r}")
            changes[key] = apply_mapping(current, value, path)
        else:
            changes[key] = _coerce(value, hints[key], path)
    return replace(obj, **changes)


def parse_override(text: str) -> dict[str, Any]:
    """``'a.b=value'`` -> ``{'a': {'b': 'value'}}`` (the value is type-checked later)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. detector.name=yunet")
    key, value = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {text!r}: empty key")
    out: dict[str, Any] = {}
    node = out
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value.strip()
    return out


def read_toml(path: Path, what: str = "config") -> dict[str, Any]:
    """A TOML file as a mapping; a missing or invalid file raises ConfigError naming ``what``."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
