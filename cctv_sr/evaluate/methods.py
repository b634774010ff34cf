"""Restoration methods scored by ``cctv-sr eval identify``: LR probes -> 128x128 crops.

A method declares ``frames``, the LR frames it reads per probe:

* ``frames == 1`` (single-frame): ``restore`` gets ``(N, s, s, 3)``; with bursts it sees the
  centre frame of each burst.
* ``frames > 1`` (multi-frame, for temporal models): ``restore`` gets ``(N, T, s, s, 3)``, every
  frame of each burst (``T == 1`` when the benchmark runs on stills).

Every method also gets the undegraded 128 crops (``gt``); only ``hr`` (the upper bound) may look.
Names: ``hr``, every SR backend of the project (:data:`cctv_sr.sr.SR_BACKENDS`: ``bicubic``,
``espcn``, ``fsrcnn``, ``lapsrn``, ``lapsrn_x8``, ...), ``trained=CKPT`` (a ``cctv-sr train``
checkpoint of an SR architecture, run by :mod:`cctv_sr.sr.trained`) and ``default``, the SR
that ``cctv-sr run`` uses by default (``SRConfig().name``)::

    m = create_method("lapsrn")
    out = m.restore(probes, gt)       # (N, 128, 128, 3) uint8 BGR
"""

from __future__ import annotations

import abc
import difflib
from pathlib import Path

import numpy as np

from cctv_sr.config import SRConfig
from cctv_sr.errors import ConfigError
from cctv_sr.sr import SR_BACKENDS, SuperResolver, create_super_resolver

OUT_SIDE = 128
DEFAULT = "default"
HR = "hr"


class EvalMethod(abc.ABC):
    """Maps LR probes to ``OUT_SIDE`` crops (see the module docstring)."""

    name: str = ""
    frames: int = 1
    #: the output does not depend on the probe size (only ``hr``): scored once, reused per size
    size_independent: bool = False

    @abc.abstractmethod
    def restore(self, probes: np.ndarray, gt: np.ndarray) -> np.ndarray:
        """Probes (shape per ``frames``) and their undegraded crops -> (N, 128, 128, 3) uint8."""

    def describe(self, size: int) -> str:
        """What the method does at probe side ``size`` (for the output's provenance)."""
        return self.name


class HRMethod(EvalMethod):
    """The undegraded crop itself: the upper bound."""

    name = HR
    size_independent = True

    def restore(self, probes: np.ndarray, gt: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(gt)

    def describe(self, size: int) -> str:
        return "undegraded"


class SRMethod(EvalMethod):
    """A single-frame SR backend of the project (``cctv_sr.sr``)."""

    def __init__(self, name: str, sr_name: str | None = None, model_path: str = "") -> None:
        self.name = name
        self.sr: SuperResolver = create_super_resolver(
            SRConfig(name=sr_name or name, model_path=model_path))

    def restore(self, probes: np.ndarray, gt: np.ndarray) -> np.ndarray:
        return self.sr.upscale(np.ascontiguousarray(probes), OUT_SIDE)

    def describe(self, size: int) -> str:
        return self.sr.describe(size, OUT_SIDE)


TRAINED = "trained"  # trained=CKPT: a checkpoint file


def method_names() -> list[str]:
    """Every plain name ``--methods`` accepts (besides ``trained=CKPT``)."""
    return [HR, *(n for n in SR_BACKENDS if n != TRAINED), DEFAULT]


def _is_trained(name: str) -> bool:
    return name.startswith(TRAINED + "=") and len(name) > len(TRAINED) + 1


def parse_methods(text: str) -> list[str]:
    """``"hr,bicubic,lapsrn"`` -> the names, checked, duplicates dropped (order kept)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("--methods: no method given (known: " + ", ".join(method_names()) + ")")
    known = method_names()
    out: list[str] = []
    for name in names:
        if _is_trained(name):
            if not Path(name.split("=", 1)[1]).expanduser().is_file():
                raise ConfigError(f"--methods: {name}: no such checkpoint file")
        elif name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"--methods: unknown method '{name}' ({hint}known: "
                              f"{', '.join(known)}, trained=CKPT)")
        if name not in out:
            out.append(name)
    return out


def default_sr_name() -> str:
    """The SR backend ``cctv-sr run`` uses by default."""
    return SRConfig().name


def create_method(name: str) -> EvalMethod:
    """Build the method ``name`` (unknown names raise ConfigError)."""
    if name == HR:
        return HRMethod()
    if name == DEFAULT:
        return SRMethod(DEFAULT, default_sr_name())
    if _is_trained(name):
        return SRMethod(name, TRAINED, str(Path(name.split("=", 1)[1]).expanduser()))
    if name in SR_BACKENDS and name != TRAINED:
        return SRMethod(name)
    parse_methods(name)  # raises with the list of known names
    raise ConfigError(f"unknown method {name!r}")  # pragma: no cover


def select_frames(method: EvalMethod, probes: np.ndarray) -> np.ndarray:
    """What ``method`` reads from a probe batch: stills ``(N, s, s, 3)`` or bursts
    ``(N, T, s, s, 3)`` -> the centre frame for single-frame methods, all frames for
    multi-frame ones (a still becomes a burst of one)."""
    burst = probes.ndim == 5
    if method.frames <= 1:
        return probes[:, probes.shape[1] // 2] if burst else probes
    return probes if burst else probes[:, None]
