"""What ``cctv-sr models list`` and ``models fetch`` show and do.

:func:`describe_models` lists every shipped manifest with its licence, where its default file
is found now (nothing is downloaded) and how to use it from the command line. The last comes
from the registry (:mod:`cctv_sr.models.registry`): a manifest is the default of the backends
whose row names it (``--detector yunet`` loads ``yunet_2023mar``); a manifest no backend uses by
default can still be loaded by a backend of the same kind, by giving its file
(``--detector yunet --detector-model yunet_n_dynamic.onnx``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cctv_sr.errors import ModelError
from cctv_sr.models import registry
from cctv_sr.models.manifest import ModelManifest, get_manifest, load_manifests
from cctv_sr.models.resolve import find_local, resolve_file

# kind -> (flag choosing the backend, flag or setting giving the weights file); a kind without
# flags is shown as its setting (``--set head.name=lrmfn``)
CLI_FLAGS: dict[str, tuple[str, str]] = {
    "detector": ("--detector", "--detector-model "),
    "sr": ("--sr", "--sr-model "),
    "embedder": ("--embedder", "--set embedder.model_path="),
}


@dataclass(frozen=True)
class Usage:
    """One way to use a model: the backend that loads it and the command-line words for it.

    ``default`` is True when the backend loads this model with no weights file given.
    """

    kind: str
    backend: str
    default: bool
    cli: str


@dataclass(frozen=True)
class ModelStatus:
    """One row of ``cctv-sr models list``: a manifest, where its default file is, its uses."""

    name: str
    task: str
    backend: str
    version: str
    license: str
    license_url: str
    default_file: str
    location: str
    serves: tuple[Usage, ...]


def _cli(kind: str, name: str, model_file: str = "") -> str:
    if kind not in CLI_FLAGS:
        choose = f"--set {registry.KINDS[kind].setting}={name}"
        return f"{choose} --set {kind}.model_path={model_file}" if model_file else choose
    flag, file_flag = CLI_FLAGS[kind]
    return f"{flag} {name} {file_flag}{model_file}" if model_file else f"{flag} {name}"


def _arch(manifest: ModelManifest) -> str:
    return manifest.model_spec().arch


def usages(manifest: ModelManifest) -> tuple[Usage, ...]:
    """The backends that load ``manifest`` by default or can load its default file (an
    ``arch`` row names a network, not a use of a weights file: never listed)."""
    if manifest.task == "embed" and manifest.model_spec().window > 1:
        return ()  # a T-frame head (lrmfn_t5): cctv-sr run embeds one crop at a time (eval only)
    rows = [b for b in registry.entries() if b.kind != "arch"]
    defaults = [b for b in rows if b.manifest == manifest.name
                or (b.manifest is None and b.name == manifest.backend)]
    if defaults:
        return tuple(Usage(b.kind, b.name, True, _cli(b.kind, b.name)) for b in defaults)
    # Backends whose default model has the same backend; where several share it (the OpenCV
    # baselines), the architecture decides, since the name picks the algorithm there.
    same = [b for b in rows if b.manifest and get_manifest(b.manifest).backend == manifest.backend]
    by_arch = [b for b in same if b.manifest and _arch(get_manifest(b.manifest)) == _arch(manifest)]
    return tuple(Usage(b.kind, b.name, False, _cli(b.kind, b.name, manifest.default_file))
                 for b in (by_arch or same))


def describe_models() -> list[ModelStatus]:
    """Every shipped model and where its default file is found now (nothing is downloaded)."""
    rows = []
    for m in sorted(load_manifests().values(), key=lambda x: (x.task, x.name)):
        entry = m.file()
        try:
            found = find_local(m, entry)
        except ModelError as exc:
            location = f"error: {exc}"
        else:
            if found is not None:
                location = str(found)
            elif entry.url:
                location = "not found (downloads on first use)"
            else:
                location = "not found (supply it yourself: see the manifest source)"
        rows.append(ModelStatus(m.name, m.task, m.backend, m.version, m.license, m.license_url,
                                entry.name, location, usages(m)))
    return rows


def fetch_model(manifest: ModelManifest | str, *, progress: bool = True) -> list[Path]:
    """Resolve (downloading when needed and allowed) every file of a model (a manifest or a
    shipped manifest's name)."""
    m = get_manifest(manifest) if isinstance(manifest, str) else manifest
    return [resolve_file(m, f.name, progress=progress) for f in m.files]
