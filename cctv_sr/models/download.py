"""Downloading one model file: streamed, sha256-verified, written atomically.

The file is streamed into a temporary ``.part`` file beside its destination, hashed on the way,
and renamed into place only when the sha256 matches the manifest, so an interrupted or tampered
download never leaves a file that a later run would trust. Every failure is one
:class:`~cctv_sr.errors.ModelError` line naming the file, its model and the URL.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from cctv_sr.errors import ModelError
from cctv_sr.models.manifest import ModelFile, ModelManifest

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


def download_file(manifest: ModelManifest, entry: ModelFile, dest: Path, *, progress: bool = True,
                  timeout_s: float = DOWNLOAD_TIMEOUT_S, hint: str = "") -> Path:
    """Download ``entry`` of ``manifest`` from its URL to ``dest`` (sha256 checked).

    ``hint`` (where else to get the file) is appended to the message of a failed transfer.
    Returns ``dest``; nothing is left behind on failure.
    """
    from tqdm import tqdm

    if not entry.url or not entry.sha256:
        raise ModelError(f"{entry.name} for model '{manifest.name}' has no URL with a pinned "
                         "sha256 to download from")
    what = f"{entry.name} for model '{manifest.name}'"
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    log.info("downloading %s from %s", what, entry.url)
    try:
        digest = hashlib.sha256()
        request = urllib.request.Request(entry.url, headers={"User-Agent": "cctv-sr"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout_s) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or entry.size
            with tqdm(total=total, unit="B", unit_scale=True, desc=entry.name,
                      disable=not progress, leave=False) as bar:
                while chunk := resp.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
        actual = digest.hexdigest()
        if actual != entry.sha256:
            raise ModelError(f"{entry.url}: sha256 mismatch for downloaded {what}: expected "
                             f"{entry.sha256}, got {actual}; the download was deleted")
        os.replace(tmp, dest)
    except ModelError:
        tmp.unlink(missing_ok=True)
        raise
    # HTTPException covers a connection closed mid-body (IncompleteRead), which is not an OSError
    except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        reason = str(exc) or type(exc).__name__
        tail = f"; {hint}" if hint else ""
        raise ModelError(f"downloading {what} from {entry.url} failed ({reason}){tail}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("saved %s to %s (sha256 verified)", entry.name, dest)
    return dest
