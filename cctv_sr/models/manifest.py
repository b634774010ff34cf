"""Model manifests: what each model is, its licence, its files and its ``[spec]``.

Every model the package can load is described by a TOML manifest shipped in
``cctv_sr/models/manifests/`` (name, task, backend, version, licence, description, files with
sha256, size and the official download URL or the PyPI package that ships them, and a ``[spec]``
table read by :class:`~cctv_sr.models.spec.ModelSpec`). This module parses and validates them;
:mod:`cctv_sr.models.resolve` finds their files on disk.

Example::

    manifest = get_manifest("yunet_2023mar")
    manifest.file().name               # "face_detection_yunet_2023mar.onnx"
    manifest.model_spec().colour       # "bgr"
"""

from __future__ import annotations

import difflib
import importlib.resources
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cctv_sr.errors import ModelError
from cctv_sr.models.spec import ModelSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TASKS = ("detect", "embed", "sr")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# [spec] values: TOML scalars, or an array of integers (e.g. input_sides = [16, 32])
SpecValue = str | int | float | bool | tuple[int, ...]


@dataclass(frozen=True)
class ModelFile:
    """One weight file of a model.

    ``sha256`` is empty only for files that cannot be verified (they are then never downloaded);
    ``url`` is the official direct download, empty when there is none; ``package`` names a PyPI
    package that ships the file at ``package_path`` inside it; ``source`` says in words where
    the file comes from.
    """

    name: str
    sha256: str = ""
    size: int | None = None
    url: str = ""
    package: str = ""
    package_path: str = ""
    source: str = ""


@dataclass(frozen=True)
class ModelManifest:
    """A model: what it is for, its licence and its files.

    ``spec`` holds the ``[spec]`` table as sorted (key, value) pairs: the :class:`ModelSpec`
    keys (:meth:`model_spec`) and any others, such as calibrated match thresholds
    (:meth:`spec_value`).
    """

    name: str
    task: str
    backend: str
    version: str
    license: str
    description: str
    default_file: str
    files: tuple[ModelFile, ...]
    license_url: str = ""
    spec: tuple[tuple[str, SpecValue], ...] = ()

    def file(self, name: str | None = None) -> ModelFile:
        """The named file (default: ``default_file``); unknown names raise ModelError."""
        wanted = name or self.default_file
        for entry in self.files:
            if entry.name == wanted:
                return entry
        names = [f.name for f in self.files]
        raise ModelError(f"model '{self.name}' has no file '{wanted}' (files: {', '.join(names)})")

    def spec_value(self, key: str, default: SpecValue | None = None) -> SpecValue | None:
        """One ``[spec]`` entry, or ``default`` when the manifest does not set it."""
        return dict(self.spec).get(key, default)

    def model_spec(self) -> ModelSpec:
        """The typed :class:`~cctv_sr.models.spec.ModelSpec`: ``[spec]`` plus the licence."""
        return ModelSpec.from_manifest(self)

    def has_file(self, name: str) -> bool:
        """Whether one of the manifest's files is called ``name``."""
        return any(f.name == name for f in self.files)


# ---------------------------------------------------------------------------------- manifests

_MANIFEST_KEYS = {
    "name", "task", "backend", "version", "license", "license_url", "description",
    "default_file", "files", "spec",
}
_FILE_KEYS = {"name", "sha256", "size", "url", "package", "package_path", "source"}


def _field(data: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ModelError(f"{where}: field '{key}' must be a non-empty string, got {value!r}")
    return value


def _unknown(data: dict[str, Any], known: set[str], where: str) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ModelError(f"{where}: unknown field '{key}'{hint}")


def _parse_file(data: Any, where: str) -> ModelFile:
    if not isinstance(data, dict):
        raise ModelError(f"{where}: each [[files]] entry must be a table")
    _unknown(data, _FILE_KEYS, where)
    name = _field(data, "name", where)
    if not _NAME_RE.match(name):
        raise ModelError(f"{where}: field 'name' must be a plain file name, got {name!r}")
    sha = _field(data, "sha256", where, required=False).lower()
    if sha and not _SHA_RE.match(sha):
        raise ModelError(f"{where}: field 'sha256' must be 64 hex digits, got {sha!r}")
    size = data.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise ModelError(f"{where}: field 'size' must be a positive integer, got {size!r}")
    url = _field(data, "url", where, required=False)
    if url and not url.startswith(("https://", "http://")):
        raise ModelError(f"{where}: field 'url' must be an http(s) URL, got {url!r}")
    if url and not sha:
        raise ModelError(f"{where}: field 'sha256' is required when 'url' is set")
    package = _field(data, "package", where, required=False)
    package_path = _field(data, "package_path", where, required=False)
    if package and (not package.isidentifier() or not package_path):
        raise ModelError(f"{where}: field 'package' needs a top-level module name and "
                         f"'package_path', got {package!r}, {package_path!r}")
    source = _field(data, "source", where, required=False)
    if not (url or package or source):
        raise ModelError(f"{where}: field 'source' is required when there is no url or package")
    return ModelFile(name, sha, size, url, package, package_path, source)


def parse_manifest(data: dict[str, Any], where: str) -> ModelManifest:
    """Validate one parsed manifest table; ``where`` (a file name) prefixes every error."""
    _unknown(data, _MANIFEST_KEYS, where)
    name = _field(data, "name", where)
    if not _NAME_RE.match(name):
        raise ModelError(f"{where}: field 'name' must be a plain identifier, got {name!r}")
    task = _field(data, "task", where)
    if task not in TASKS:
        raise ModelError(f"{where}: field 'task' must be one of {', '.join(TASKS)}, got {task!r}")
    raw_files = data.get("files")
    if not isinstance(raw_files, list) or not raw_files:
        raise ModelError(f"{where}: field 'files' must be a non-empty array of tables")
    files = tuple(_parse_file(f, f"{where} files[{i}]") for i, f in enumerate(raw_files))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ModelError(f"{where}: field 'files' repeats a file name: {names}")
    default = _field(data, "default_file", where)
    if default not in names:
        raise ModelError(f"{where}: field 'default_file' {default!r} is not one of {names}")
    raw_spec = data.get("spec", {})
    if not isinstance(raw_spec, dict):
        raise ModelError(f"{where}: field 'spec' must be a table")
    spec: dict[str, SpecValue] = {}
    for key, value in raw_spec.items():
        if isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            spec[key] = tuple(value)
        elif isinstance(value, (str, int, float, bool)):
            spec[key] = value
        else:
            raise ModelError(f"{where}: field 'spec.{key}' must be a string, a number or an "
                             "array of integers")
    manifest = ModelManifest(
        name=name,
        task=task,
        backend=_field(data, "backend", where),
        version=_field(data, "version", where),
        license=_field(data, "license", where),
        description=_field(data, "description", where),
        default_file=default,
        files=files,
        license_url=_field(data, "license_url", where, required=False),
        spec=tuple(sorted(spec.items())),
    )
    try:  # a bad [spec] fails when the manifest is read, not when the model is first used
        ModelSpec.from_mapping({"arch": name, **spec, "license": manifest.license})
    except ModelError as exc:
        raise ModelError(f"{where}: field 'spec': {exc}") from None
    return manifest


def load_manifest_file(path: str | Path) -> ModelManifest:
    """Parse and validate one manifest TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"{path}: cannot read manifest: {exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path.name}: not valid TOML: {exc}") from None
    return parse_manifest(data, path.name)


_manifests: dict[str, ModelManifest] | None = None
_manifests_lock = threading.Lock()


def load_manifests() -> dict[str, ModelManifest]:
    """Every shipped manifest by name (parsed once per process; a fresh dict each call)."""
    global _manifests
    with _manifests_lock:
        if _manifests is None:
            found: dict[str, ModelManifest] = {}
            folder = importlib.resources.files("cctv_sr.models") / "manifests"
            for entry in sorted(folder.iterdir(), key=lambda e: e.name):
                if not entry.name.endswith(".toml"):
                    continue
                try:
                    data = tomllib.loads(entry.read_text(encoding="utf-8"))
                except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                    raise ModelError(f"{entry.name}: not valid TOML: {exc}") from None
                manifest = parse_manifest(data, entry.name)
                if entry.name != f"{manifest.name}.toml":
                    raise ModelError(f"{entry.name}: field 'name' {manifest.name!r} must match "
                                     "the file name")
                found[manifest.name] = manifest
            _manifests = found
        return dict(_manifests)


def get_manifest(name: str) -> ModelManifest:
    """The shipped manifest called ``name``; unknown names raise ModelError with a suggestion."""
    manifests = load_manifests()
    if name in manifests:
        return manifests[name]
    close = difflib.get_close_matches(name, list(manifests), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ModelError(f"unknown model '{name}': {hint}known: {', '.join(sorted(manifests))}")


def manifests_with_file(file_name: str, backend: str | None = None) -> list[ModelManifest]:
    """Shipped manifests (of ``backend``, when given) that list a file called ``file_name``."""
    return [m for m in sorted(load_manifests().values(), key=lambda m: m.name)
            if m.has_file(file_name) and (backend is None or m.backend == backend)]
