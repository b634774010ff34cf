"""The one backend registry: every detector, super-resolver, embedder, LR identity head and
architecture by name.

:data:`BACKENDS` is the single table. Each row names a backend ``kind`` (``detector``, ``sr``,
``embedder``, ``head`` or ``arch``), the name users choose it by (``detector.name = "yunet"``),
a lazy ``"module:Class"`` target (imported only when that backend is chosen, so a missing optional
dependency only matters to the user who asked for it) and its default manifest: the weights it
loads when no ``model_path`` is set, or None when the weights come from elsewhere (MTCNN's from
the ``mtcnn`` package, read by the detector itself) or there are none (bicubic).

:func:`build` is the one way to make a backend, the same for every kind::

    explicit cfg.model_path  ->  resolve_file(default manifest, explicit=...)  ->  cls(cfg, path)

so a default file is found through ``$CCTV_SR_MODELS``, an installed package or the cache, or
downloaded (see :mod:`cctv_sr.models.resolve`); without a default manifest the explicit path (or
None) is passed as it is. The family helpers (:func:`cctv_sr.detect.create_detector`,
:func:`cctv_sr.sr.create_super_resolver`, :func:`cctv_sr.embed.create_embedder`) call it.

Example::

    detector = build("detector", DetectorConfig(name="yunet"), FaceDetector)
    default_manifest("sr", "espcn").name        # "espcn_x4"
"""

from __future__ import annotations

import difflib
import importlib
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from cctv_sr.errors import ConfigError, ContractError
from cctv_sr.models.manifest import ModelManifest, get_manifest
from cctv_sr.models.resolve import resolve_file

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """A family of backends: how errors name it and which setting chooses it."""

    name: str
    label: str
    setting: str


KINDS: dict[str, Kind] = {
    "detector": Kind("detector", "detector", "detector.name"),
    "sr": Kind("sr", "super-resolver", "sr.name"),
    "embedder": Kind("embedder", "embedder", "embedder.name"),
    # LR identity heads: LR crop -> the gallery embedder's space (cctv_sr/embed/lrhead.py)
    "head": Kind("head", "LR identity head", "head.name"),
    # the project's own model architectures (cctv_sr/archs/, built with archs.build_arch)
    "arch": Kind("arch", "model architecture", "arch.name"),
}


@dataclass(frozen=True)
class Backend:
    """One row of the registry (see the module docstring)."""

    kind: str
    name: str
    target: str
    manifest: str | None = None

    def __post_init__(self) -> None:
        module, _, attr = self.target.partition(":")
        if self.kind not in KINDS or not module or not attr:
            raise ConfigError(f"registry: bad entry {self!r} (kind one of {', '.join(KINDS)}, "
                              "target 'module:Class')")


_OPENCV_SR = "cctv_sr.sr.opencv_sr:OpenCVSR"

BACKENDS: tuple[Backend, ...] = (
    Backend("detector", "mtcnn", "cctv_sr.detect.mtcnn:MtcnnDetector"),
    Backend("detector", "yunet", "cctv_sr.detect.yunet:YunetDetector", "yunet_2023mar"),
    Backend("detector", "scrfd", "cctv_sr.detect.scrfd:ScrfdDetector", "scrfd_500m"),
    Backend("sr", "bicubic", "cctv_sr.sr.bicubic:BicubicSR"),
    Backend("sr", "espcn", _OPENCV_SR, "espcn_x4"),
    Backend("sr", "fsrcnn", _OPENCV_SR, "fsrcnn_x4"),
    Backend("sr", "lapsrn", _OPENCV_SR, "lapsrn_x4"),
    Backend("sr", "lapsrn_x8", _OPENCV_SR, "lapsrn_x8"),
    Backend("sr", "trained", "cctv_sr.sr.trained:TrainedSR"),  # a cctv-sr train checkpoint
    Backend("sr", "lrnet", "cctv_sr.sr.trained:TrainedSR", "lrnet"),  # the project's own, shipped
    Backend("sr", "lrnet_t5", "cctv_sr.sr.trained:TrainedSR", "lrnet_t5"),  # T = 5, shipped
    Backend("sr", "ipunet", "cctv_sr.sr.trained:TrainedSR", "ipunet"),  # seed design, shipped
    Backend("sr", "srgan", "cctv_sr.sr.trained:TrainedSR", "srgan"),  # seed design, shipped
    Backend("embedder", "dlib", "cctv_sr.embed.dlib_resnet:DlibEmbedder", "dlib"),
    Backend("embedder", "arcface", "cctv_sr.embed.onnx_arcface:ArcFaceEmbedder", "arcface_r50"),
    Backend("embedder", "mobilefacenet", "cctv_sr.embed.mobilefacenet:MobileFaceNetEmbedder",
            "mobilefacenet"),
    Backend("embedder", "mobilefacenet_onnx",
            "cctv_sr.embed.onnx_arcface:MobileFaceNetOnnxEmbedder", "mobilefacenet_onnx"),
    # any `cctv-sr train` checkpoint of lrhead / lrmfn, given as head.model_path
    Backend("head", "checkpoint", "cctv_sr.embed.lrhead:LrHeadEmbedder"),
    Backend("head", "lrmfn", "cctv_sr.embed.lrhead:LrHeadEmbedder", "lrmfn"),  # shipped
    # shipped, T = 5: embeds each face's track window (issue 10)
    Backend("head", "lrmfn_t5", "cctv_sr.embed.lrhead:LrHeadEmbedder", "lrmfn_t5"),
    # the project's own architectures: built with cctv_sr.archs.build_arch(name, config)
    Backend("arch", "srgan", "cctv_sr.archs.srgan:SrganGenerator"),
    Backend("arch", "srgan_d", "cctv_sr.archs.srgan:SrganDiscriminator"),
    Backend("arch", "ipunet", "cctv_sr.archs.ipunet:IpuNet"),
    Backend("arch", "lrnet", "cctv_sr.archs.lrnet:LrNet"),
    Backend("arch", "vgg19_features", "cctv_sr.archs.vgg:Vgg19Features"),
    Backend("arch", "lrhead", "cctv_sr.archs.lrhead:LrHead"),
    Backend("arch", "lrmfn", "cctv_sr.archs.lrmfn:LrMfn"),
)

_table: dict[tuple[str, str], Backend] = {(b.kind, b.name): b for b in BACKENDS}
_lock = threading.Lock()


class BackendConfig(Protocol):
    """What :func:`build` reads from a config section (DetectorConfig, SRConfig, ...)."""

    @property
    def name(self) -> str: ...

    @property
    def model_path(self) -> str: ...


def register(entry: Backend) -> None:
    """Add a row (for kinds whose backends live outside the package's table, e.g. ``arch``).

    Names are unique per kind; registering a taken name raises ConfigError.
    """
    with _lock:
        key = (entry.kind, entry.name)
        if key in _table and _table[key] != entry:
            raise ConfigError(f"registry: {entry.kind} '{entry.name}' is already registered as "
                              f"{_table[key].target}")
        _table[key] = entry


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ConfigError(f"registry: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind]


def entries(kind: str | None = None) -> list[Backend]:
    """Every row (of ``kind``, when given), in table order."""
    if kind is not None:
        _kind(kind)
    with _lock:
        return [b for b in _table.values() if kind is None or b.kind == kind]


def names(kind: str) -> list[str]:
    """The names of ``kind``, in table order (what its ``<kind>.name`` setting accepts)."""
    return [b.name for b in entries(kind)]


def lookup(kind: str, name: str) -> Backend:
    """The row for ``name``; unknown names raise ConfigError naming the setting, e.g.
    ``detector.name: unknown detector 'yunett' (did you mean 'yunet'? known: mtcnn, ...)``."""
    spec = _kind(kind)
    with _lock:
        found = _table.get((kind, name))
    if found is not None:
        return found
    known = names(kind)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(f"{spec.setting}: unknown {spec.label} {name!r} ({hint}known: "
                      f"{', '.join(known)})")


def load_class(kind: str, name: str, base: type[T]) -> type[T]:
    """The class registered as ``name``, imported now; it must subclass ``base``."""
    entry = lookup(kind, name)
    module_name, _, attr = entry.target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ContractError(f"registry: {entry.target} (the {kind} '{name}') is not a "
                            f"{base.__name__}")
    return cls


def default_manifest(kind: str, name: str) -> ModelManifest | None:
    """The manifest whose default file ``name`` loads without a ``model_path`` (None: none)."""
    entry = lookup(kind, name)
    return get_manifest(entry.manifest) if entry.manifest else None


def resolve_weights(kind: str, cfg: BackendConfig) -> Path | None:
    """The weights ``cfg`` asks for: ``cfg.model_path`` or the default manifest's file, found
    with :func:`~cctv_sr.models.resolve.resolve_file`; without a default manifest the explicit
    path as given, or None."""
    manifest = default_manifest(kind, cfg.name)
    explicit = cfg.model_path or None
    if manifest is not None:
        return resolve_file(manifest, explicit=explicit)
    return Path(explicit).expanduser() if explicit else None


def build(kind: str, cfg: BackendConfig, base: type[T]) -> T:
    """The backend ``cfg.name`` of ``kind``, with its weights resolved (module docstring)."""
    cls = load_class(kind, cfg.name, base)  # unknown names fail here, before any weight lookup
    check = getattr(cls, "check_available", None)
    if check is not None:  # a missing dependency is reported before any file is looked for
        check()
    backend = cls(cfg, resolve_weights(kind, cfg))  # type: ignore[call-arg]
    files = ", ".join(str(p) for p in getattr(backend, "model_files", ())) or "no weights"
    log.info("%s: %s (%s)", kind, getattr(backend, "name", "") or cfg.name, files)
    return backend


class BackendTable(Mapping[str, str]):
    """A live read-only view ``name -> "module:Class"`` of one kind (``detect.DETECTORS``,
    ``sr.SR_BACKENDS``, ``embed.EMBEDDERS``)."""

    def __init__(self, kind: str) -> None:
        self.kind = _kind(kind).name

    def __getitem__(self, name: str) -> str:
        with _lock:
            entry = _table.get((self.kind, name))
        if entry is None:
            raise KeyError(name)
        return entry.target

    def __iter__(self) -> Iterator[str]:
        return iter(names(self.kind))

    def __len__(self) -> int:
        return len(names(self.kind))

    def __repr__(self) -> str:
        return f"BackendTable({self.kind!r}: {', '.join(self)})"
