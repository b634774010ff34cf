"""Backends by name: a table of lazy ``"module:Class"`` strings, imported only when chosen."""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

from cctv_sr.errors import ConfigError


def load_backend(table: dict[str, str], name: str, kind: str, setting: str) -> Any:
    """The class registered as ``name`` in ``table`` (importing its module now).

    An unknown name raises ConfigError naming the ``setting``, e.g.
    ``detector.name: unknown detector 'yunett' (did you mean 'yunet'? known: mtcnn, ...)``.
    """
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"{setting}: unknown {kind} {name!r} ({hint}known: "
                          f"{', '.join(table)})")
    module_name, _, attr = table[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def given_model_path(model_path: Path | str | None, cfg_model_path: str) -> Path | None:
    """The weights a backend was asked for: the argument, else the setting, else None."""
    chosen = model_path if model_path is not None else (cfg_model_path or None)
    return None if chosen is None else Path(chosen)
