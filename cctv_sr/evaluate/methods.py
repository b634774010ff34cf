"""Restoration methods scored by ``cctv-sr eval identify``: LR probes -> 128x128 crops.

A method declares ``frames``, the LR frames it reads per probe:

* ``frames == 1`` (single-frame): ``restore`` gets ``(N, s, s, 3)``; with bursts it sees the
  centre frame of each burst.
* ``frames > 1`` (multi-frame, for temporal models): ``restore`` gets ``(N, T, s, s, 3)``, every
  frame of each burst (``T == 1`` when the benchmark runs on stills).

Every method also gets the undegraded 128 crops (``gt``); only ``hr`` (the upper bound) may look.
Names: ``hr``, every SR backend of the project (:data:`cctv_sr.sr.SR_BACKENDS`: ``bicubic``,
``espcn``, ``fsrcnn``, ``lapsrn``, ``lapsrn_x8``, ...), ``trained=CKPT`` (a ``cctv-sr train``
checkpoint of an SR architecture, its slim ``.pt`` or ``.onnx`` from ``cctv-sr export``, run
by :mod:`cctv_sr.sr.trained`) and ``default``, the SR that ``cctv-sr run`` uses by default
(``SRConfig().name``)::

    m = create_method("lapsrn")
    out = m.restore(probes, gt)       # (N, 128, 128, 3) uint8 BGR

An :class:`EmbeddingMethod` skips the image: ``embed_probes`` maps the LR probes straight to unit
vectors in the space of one embedder (``space``), so it is scored only under that embedder.
``lrhead=CKPT`` is one: a ``cctv-sr train`` checkpoint (or its slim ``.pt``) of an LR identity
head (:mod:`cctv_sr.archs.lrhead` or :mod:`cctv_sr.archs.lrmfn`), distilled from MobileFaceNet::

    m = create_method("lrhead=runs/lrhead/last.pt")
    emb = m.embed_probes(select_frames(m, probes))   # (N, 128) float32, unit length
"""

from __future__ import annotations

import abc
import difflib
import logging
from pathlib import Path

import numpy as np

from cctv_sr.config import SRConfig
from cctv_sr.errors import ConfigError, ContractError
from cctv_sr.sr import SR_BACKENDS, SuperResolver, create_super_resolver

log = logging.getLogger(__name__)

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


class EmbeddingMethod(abc.ABC):
    """Maps LR probes straight to unit embeddings in the space of the embedder ``space``
    (its rows under any other embedder are not applicable)."""

    name: str = ""
    frames: int = 1
    space: str = ""
    size_independent: bool = False  # always depends on the probe

    @abc.abstractmethod
    def embed_probes(self, probes: np.ndarray) -> np.ndarray:
        """Probes (shape per ``frames``, uint8 BGR) -> (N, D) float32, unit length."""

    def describe(self, size: int) -> str:
        """What the method does at probe side ``size`` (for the output's provenance)."""
        return self.name


Method = EvalMethod | EmbeddingMethod

TRAINED = "trained"  # trained=CKPT: a checkpoint file of an SR architecture
LRHEAD = "lrhead"  # lrhead=CKPT: a checkpoint file of an LR identity head


class LrHeadMethod(EmbeddingMethod):
    """A ``cctv-sr train`` checkpoint of an LR identity head (``lrhead`` or ``lrmfn``): LR
    probe -> MobileFaceNet's space.

    Runs the head as ``cctv-sr run`` does (:class:`cctv_sr.embed.lrhead.LrHeadEmbedder`, on
    the CPU in batches of ``batch_size``). With a window T > 1 a still fills every slot, and a
    burst longer than T gives its centre T frames."""

    def __init__(self, name: str, path: Path, batch_size: int = 64) -> None:
        from cctv_sr.config import HeadConfig
        from cctv_sr.embed.lrhead import LrHeadEmbedder

        self.head = LrHeadEmbedder(HeadConfig(name="checkpoint", batch_size=max(1, batch_size),
                                              device="cpu"), path)
        self.name = name
        self.arch = self.head.arch
        self.space = self.head.space
        self.step = self.head.step
        self.dim = self.head.dim
        self.window = self.head.window
        self.frames = self.window
        log.info("lrhead method: %s (window %d, step %d)", path, self.window, self.step)

    def _windows(self, probes: np.ndarray) -> np.ndarray:
        """(N, s, s, 3) or (N, T, s, s, 3) -> (N, window, s, s, 3)."""
        if probes.ndim == 4:
            probes = probes[:, None]
        if probes.ndim != 5 or probes.shape[-1] != 3:
            raise ContractError(f"{self.name}: expected probes (N, [T,] s, s, 3), got "
                                f"{probes.shape}")
        t, w = probes.shape[1], self.window
        if t == 1:
            return np.broadcast_to(probes, (probes.shape[0], w, *probes.shape[2:]))
        if t < w:
            raise ConfigError(f"--methods {self.name}: the checkpoint fuses {w} frames, the "
                              f"bursts have {t} (use --burst {w} or stills)")
        start = (t - w) // 2
        return probes[:, start:start + w]

    def embed_probes(self, probes: np.ndarray) -> np.ndarray:
        return self.head.embed_windows(self._windows(np.asarray(probes, np.uint8)))

    def describe(self, size: int) -> str:
        return (f"{self.arch}_{size}_to_{self.space}_space (window {self.window}, step "
                f"{self.step})")


def method_names() -> list[str]:
    """Every plain name ``--methods`` accepts (besides ``trained=CKPT`` and ``lrhead=CKPT``)."""
    return [HR, *(n for n in SR_BACKENDS if n != TRAINED), DEFAULT]


def _file_of(kind: str, name: str) -> Path | None:
    """The checkpoint path of ``kind=CKPT``, or None when ``name`` is not of that form."""
    if name.startswith(kind + "=") and len(name) > len(kind) + 1:
        return Path(name.split("=", 1)[1]).expanduser()
    return None


def _is_trained(name: str) -> bool:
    return _file_of(TRAINED, name) is not None


def parse_methods(text: str) -> list[str]:
    """``"hr,bicubic,lapsrn"`` -> the names, checked, duplicates dropped (order kept)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("--methods: no method given (known: " + ", ".join(method_names()) + ")")
    known = method_names()
    out: list[str] = []
    for name in names:
        ckpt = _file_of(TRAINED, name) or _file_of(LRHEAD, name)
        if ckpt is not None:
            if not ckpt.is_file():
                raise ConfigError(f"--methods: {name}: no such checkpoint file")
        elif name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"--methods: unknown method '{name}' ({hint}known: "
                              f"{', '.join(known)}, trained=CKPT, lrhead=CKPT)")
        if name not in out:
            out.append(name)
    return out


def default_sr_name() -> str:
    """The SR backend ``cctv-sr run`` uses by default."""
    return SRConfig().name


def create_method(name: str) -> Method:
    """Build the method ``name`` (unknown names raise ConfigError, a checkpoint of the wrong
    architecture ModelError)."""
    head = _file_of(LRHEAD, name)
    if head is not None:
        return LrHeadMethod(name, head)
    if name == HR:
        return HRMethod()
    if name == DEFAULT:
        return SRMethod(DEFAULT, default_sr_name())
    if _is_trained(name):
        return SRMethod(name, TRAINED, str(_file_of(TRAINED, name)))
    if name in SR_BACKENDS and name != TRAINED:
        return SRMethod(name)
    parse_methods(name)  # raises with the list of known names
    raise ConfigError(f"unknown method {name!r}")  # pragma: no cover


def select_frames(method: Method, probes: np.ndarray) -> np.ndarray:
    """What ``method`` reads from a probe batch: stills ``(N, s, s, 3)`` or bursts
    ``(N, T, s, s, 3)`` -> the centre frame for single-frame methods, all frames for
    multi-frame ones (a still becomes a burst of one)."""
    burst = probes.ndim == 5
    if method.frames <= 1:
        return probes[:, probes.shape[1] // 2] if burst else probes
    return probes if burst else probes[:, None]
