"""Model manifests and weight-file resolution.

Every model the package can load is described by a TOML manifest shipped in
``cctv_sr/manifests/`` (name, task, backend, licence, files with sha256, size and the official
download URL). :func:`resolve_file` finds a manifest file on disk, in this order:

1. an explicit path (``model_path``): must exist; a sha256 different from the manifest is only
   logged, so users may bring their own weights;
2. ``$CCTV_SR_MODELS``: ``<dir>/<file>``, ``<dir>/<manifest name>/<file>`` or ``<dir>/*/<file>``,
   sha256 checked;
3. a PyPI package that ships the file (found with :func:`importlib.util.find_spec`, never
   imported);
4. the user cache, ``<cache>/<manifest name>/<file>``, sha256 checked, where ``<cache>`` is
   ``$CCTV_SR_CACHE``, ``$XDG_CACHE_HOME/cctv-sr/models`` or ``~/.cache/cctv-sr/models``;
5. a download from the manifest URL into the cache (sha256 verified while streaming, atomic
   rename), unless ``allow_download=False`` or ``$CCTV_SR_OFFLINE=1``.

Anything else raises :class:`~cctv_sr.errors.ModelError` with one line naming the file, where to
get it and where to put it.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.resources
import importlib.util
import logging
import os
import re
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cctv_sr.errors import ModelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)

TASKS = ("detect", "embed", "sr")
ENV_MODELS = "CCTV_SR_MODELS"
ENV_CACHE = "CCTV_SR_CACHE"
ENV_OFFLINE = "CCTV_SR_OFFLINE"
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

SpecValue = str | int | float | bool


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
    """A model: what it is for, its licence and its files. ``spec`` holds (key, value) pairs."""

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
    for key, value in raw_spec.items():
        if not isinstance(value, (str, int, float, bool)):
            raise ModelError(f"{where}: field 'spec.{key}' must be a string or number")
    return ModelManifest(
        name=name,
        task=task,
        backend=_field(data, "backend", where),
        version=_field(data, "version", where),
        license=_field(data, "license", where),
        description=_field(data, "description", where),
        default_file=default,
        files=files,
        license_url=_field(data, "license_url", where, required=False),
        spec=tuple(sorted(raw_spec.items())),
    )


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


# ---------------------------------------------------------------------------------- hashing

_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, remembered per (path, mtime, size) for the life of the process."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    hexdigest = digest.hexdigest()
    with _hash_lock:
        _hash_cache[key] = hexdigest
    return hexdigest


def _verify(path: Path, entry: ModelFile, where: str) -> Path:
    if entry.sha256:
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise ModelError(f"{path}: sha256 mismatch for {entry.name} ({where}): expected "
                             f"{entry.sha256}, got {actual}; delete or replace the file")
    else:
        log.info("%s: %s has no pinned sha256; using it unverified", path, entry.name)
    return path


# ---------------------------------------------------------------------------------- locations


def user_cache_root() -> Path:
    """``$XDG_CACHE_HOME/cctv-sr`` or ``~/.cache/cctv-sr`` (each cache is a folder in it)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "cctv-sr"


def cache_dir() -> Path:
    """The user model cache: $CCTV_SR_CACHE, $XDG_CACHE_HOME/cctv-sr/models or ~/.cache/..."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    return user_cache_root() / "models"


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """``allow_download`` when given, else False when $CCTV_SR_OFFLINE is set truthy."""
    if allow_download is not None:
        return allow_download
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("1", "true", "yes", "on")


def package_file(entry: ModelFile) -> Path | None:
    """Where an installed PyPI package ships ``entry``, found without importing the package."""
    if not entry.package:
        return None
    try:
        spec = importlib.util.find_spec(entry.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / entry.package_path
        if candidate.is_file():
            return candidate
    return None


def _where_to_get(manifest: ModelManifest, entry: ModelFile) -> str:
    if entry.url:
        how = f"download {entry.url}"
    elif entry.package:
        how = f"pip install {entry.package} (or get it from: {entry.source or entry.package})"
    else:
        how = f"get it from {entry.source}"
    return (f"{how}, then put it in ${ENV_MODELS}=<dir> (as <dir>/{entry.name}) "
            f"or {cache_dir() / manifest.name}/, or set model_path to the file")


# ---------------------------------------------------------------------------------- download


def _download(manifest: ModelManifest, entry: ModelFile, dest: Path, *, progress: bool,
              timeout: float) -> Path:
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    log.info("downloading %s for model '%s' from %s", entry.name, manifest.name, entry.url)
    try:
        digest = hashlib.sha256()
        request = urllib.request.Request(entry.url, headers={"User-Agent": "cctv-sr"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or entry.size
            with tqdm(total=total, unit="B", unit_scale=True, desc=entry.name,
                      disable=not progress, leave=False) as bar:
                while chunk := resp.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
        actual = digest.hexdigest()
        if actual != entry.sha256:
            raise ModelError(f"{entry.url}: sha256 mismatch for downloaded {entry.name}: "
                             f"expected {entry.sha256}, got {actual}; the download was deleted")
        os.replace(tmp, dest)
    except ModelError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, urllib.error.URLError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"downloading {entry.name} from {entry.url} failed ({exc}); "
                         f"{_where_to_get(manifest, entry)}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("saved %s to %s (sha256 verified)", entry.name, dest)
    return dest


# ---------------------------------------------------------------------------------- resolve


def find_local(manifest: ModelManifest, entry: ModelFile) -> Path | None:
    """``entry`` from $CCTV_SR_MODELS, its PyPI package or the cache (no explicit path, no
    download); None when it is in none of them; a sha256 mismatch raises ModelError."""
    models_env = os.environ.get(ENV_MODELS, "")
    if models_env:
        root = Path(models_env).expanduser()
        if not root.is_dir():
            raise ModelError(f"{root}: ${ENV_MODELS} is not a directory")
        # The file at the top, in a folder named after the manifest, or in any folder one level
        # down (so a tree such as ../shared/models works as it is).
        candidates = [root / entry.name, root / manifest.name / entry.name]
        candidates += sorted(root.glob(f"*/{entry.name}"))
        for candidate in candidates:
            if candidate.is_file():
                return _verify(candidate, entry, f"from ${ENV_MODELS}")
    packaged = package_file(entry)
    if packaged is not None:
        if entry.sha256 and sha256_file(packaged) != entry.sha256:
            log.warning("%s: differs from the manifest's sha256 for %s (another version of the "
                        "%s package?); using it", packaged, entry.name, entry.package)
        return packaged
    cached = cache_dir() / manifest.name / entry.name
    return _verify(cached, entry, "in the cache") if cached.is_file() else None


def resolve_file(
    manifest: ModelManifest | str,
    file: str | None = None,
    explicit: str | Path | None = None,
    *,
    allow_download: bool | None = None,
    progress: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Local path of one model file (see the module docstring for the search order).

    ``manifest`` is a manifest or a shipped manifest's name; ``file`` a file name in it (default:
    its ``default_file``); ``explicit`` a user-given path that wins over everything else.
    """
    m = get_manifest(manifest) if isinstance(manifest, str) else manifest
    entry = m.file(file)

    if explicit is not None and str(explicit) != "":
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ModelError(f"{path}: model file not found (model_path for '{m.name}')")
        if entry.sha256 and sha256_file(path) != entry.sha256:
            log.info("%s: not the manifest's %s of '%s' (sha256 differs); using it as given",
                     path, entry.name, m.name)
        return path

    found = find_local(m, entry)
    if found is not None:
        return found
    cached = cache_dir() / m.name / entry.name
    if entry.url and downloads_allowed(allow_download):
        return _download(m, entry, cached, progress=progress, timeout=timeout)

    reason = "downloads are off" if entry.url else "it cannot be downloaded automatically"
    if entry.url and allow_download is None:
        reason += f" (${ENV_OFFLINE} is set)"
    raise ModelError(f"{entry.name} for model '{m.name}' not found and {reason}: "
                     f"{_where_to_get(m, entry)}")


# ---------------------------------------------------------------------------------- CLI helpers


@dataclass(frozen=True)
class ModelStatus:
    """One row of ``cctv-sr models list``: a manifest and where its default file is."""

    name: str
    task: str
    backend: str
    license: str
    default_file: str
    location: str


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
        rows.append(ModelStatus(m.name, m.task, m.backend, m.license, entry.name, location))
    return rows


def fetch_model(name: str, *, progress: bool = True) -> list[Path]:
    """Resolve (downloading when needed and allowed) every file of the named model."""
    manifest = get_manifest(name)
    return [resolve_file(manifest, f.name, progress=progress) for f in manifest.files]
