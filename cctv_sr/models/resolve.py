"""Finding a model file on disk: hashing, the places searched, and the one resolve function.

:func:`resolve_file` finds one file of a manifest, in this order:

1. an explicit path (``model_path``): must exist; a sha256 different from the manifest is only
   logged, so users may bring their own weights;
2. ``$CCTV_SR_MODELS``: ``<dir>/<file>``, ``<dir>/<manifest name>/<file>`` or ``<dir>/*/<file>``,
   sha256 checked;
3. a PyPI package that ships the file (found with :func:`importlib.util.find_spec`, never
   imported);
4. the model cache, ``<cache root>/models/<manifest name>/<file>``, sha256 checked; the cache
   root is ``$CCTV_SR_CACHE``, else ``$XDG_CACHE_HOME/cctv-sr``, else ``~/.cache/cctv-sr``
   (:func:`cache_root`; the evaluations cache their crops in ``<cache root>/eval``);
5. a download from the manifest URL into the model cache (:mod:`cctv_sr.models.download`),
   unless ``allow_download=False`` or ``$CCTV_SR_OFFLINE=1``.

Anything else raises :class:`~cctv_sr.errors.ModelError` with one line naming the file, where to
get it and where to put it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from pathlib import Path

from cctv_sr.errors import ModelError
from cctv_sr.models.download import DOWNLOAD_TIMEOUT_S, download_file
from cctv_sr.models.manifest import ModelFile, ModelManifest, get_manifest, manifests_with_file

log = logging.getLogger(__name__)

ENV_MODELS = "CCTV_SR_MODELS"
ENV_CACHE = "CCTV_SR_CACHE"
ENV_OFFLINE = "CCTV_SR_OFFLINE"
_CHUNK = 1 << 20

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


def cache_root() -> Path:
    """The cctv-sr cache root: ``$CCTV_SR_CACHE``, else ``$XDG_CACHE_HOME/cctv-sr``, else
    ``~/.cache/cctv-sr``. Each cache is a folder in it (``models``, ``eval``)."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "cctv-sr"


def model_cache_dir() -> Path:
    """The model cache, ``<cache root>/models`` (see :func:`cache_root`)."""
    return cache_root() / "models"


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


def where_to_get(manifest: ModelManifest, entry: ModelFile) -> str:
    """How to get ``entry`` by hand and where to put it, for error messages."""
    if entry.url:
        how = f"download {entry.url}"
    elif entry.package:
        how = f"pip install {entry.package} (or get it from: {entry.source or entry.package})"
    else:
        how = f"get it from {entry.source}"
    return (f"{how}, then put it in ${ENV_MODELS}=<dir> (as <dir>/{entry.name}) "
            f"or {model_cache_dir() / manifest.name}/, or set model_path to the file")


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
    cached = model_cache_dir() / manifest.name / entry.name
    return _verify(cached, entry, "in the cache") if cached.is_file() else None


def resolve_file(
    manifest: ModelManifest | str,
    file: str | None = None,
    explicit: str | Path | None = None,
    *,
    allow_download: bool | None = None,
    progress: bool = True,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Local path of one model file (see the module docstring for the search order).

    ``manifest`` is a manifest or a shipped manifest's name; ``file`` a file name in it (default:
    its ``default_file``); ``explicit`` a user-given path that wins over everything else.
    """
    m = get_manifest(manifest) if isinstance(manifest, str) else manifest
    entry = m.file(file)

    if explicit is not None and str(explicit) != "":
        path = Path(explicit).expanduser()
        if not path.is_file() and path.name == str(explicit):
            # a bare file name that is not in the working directory: the file of a shipped
            # manifest (as `cctv-sr models list` suggests), found like any default file
            listed = [x for x in manifests_with_file(path.name) if x.backend == m.backend]
            if listed:
                return resolve_file(listed[0], path.name, allow_download=allow_download,
                                    progress=progress, timeout_s=timeout_s)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found (model_path for '{m.name}')")
        if entry.sha256 and sha256_file(path) != entry.sha256:
            log.info("%s: not the manifest's %s of '%s' (sha256 differs); using it as given",
                     path, entry.name, m.name)
        return path

    found = find_local(m, entry)
    if found is not None:
        return found
    if entry.url and downloads_allowed(allow_download):
        return download_file(m, entry, model_cache_dir() / m.name / entry.name,
                             progress=progress, timeout_s=timeout_s, hint=where_to_get(m, entry))

    reason = "downloads are off" if entry.url else "it cannot be downloaded automatically"
    if entry.url and allow_download is None:
        reason += f" (${ENV_OFFLINE} is set)"
    raise ModelError(f"{entry.name} for model '{m.name}' not found and {reason}: "
                     f"{where_to_get(m, entry)}")
