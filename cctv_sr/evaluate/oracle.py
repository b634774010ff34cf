"""Oracle alignment for the evaluations (docs/EVAL.md section 1).

The ground truth of every benchmark is the full-resolution image aligned by a detector that
sees it whole: the 5 landmarks of the face nearest the image centre (YuNet when its weights
are found locally, else the embedded MTCNN), warped to the ArcFace template at 128 x 128.
Images without a face give no crop (``found`` is False for them). Crops are cached per
(file list, detector) under :func:`eval_cache_dir`.

Example::

    detector = pick_detector()
    crops, found = align_all(root, paths, detector, cache=eval_cache_dir())
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from cctv_sr.config import DetectorConfig
from cctv_sr.data.degrade import HR_SIDE
from cctv_sr.errors import CctvSrError, ContractError
from cctv_sr.face.align import similarity_to_template, warp_face

log = logging.getLogger(__name__)

AUTO_DETECTOR = "auto"
CACHE_VERSION = 1  # bump when the alignment changes

__all__ = [
    "AUTO_DETECTOR",
    "CACHE_VERSION",
    "align_all",
    "align_image",
    "cache_key",
    "eval_cache_dir",
    "nearest_centre",
    "pick_detector",
]


def pick_detector(name: str = AUTO_DETECTOR) -> Any:
    """The oracle detector: ``auto`` = YuNet when its weights are found locally (no download),
    else MTCNN (weights embedded in the ``mtcnn`` package)."""
    from cctv_sr.detect import create_detector
    from cctv_sr.models.registry import default_manifest
    from cctv_sr.models.resolve import find_local

    if name == AUTO_DETECTOR:
        name = "mtcnn"
        try:
            manifest = default_manifest("detector", "yunet")
            if manifest is not None and find_local(manifest, manifest.file()) is not None:
                name = "yunet"
        except CctvSrError as exc:
            log.info("yunet weights unusable (%s); oracle alignment with mtcnn", exc)
        if name == "mtcnn":
            log.info("yunet weights not found locally; oracle alignment with mtcnn")
    return create_detector(DetectorConfig(name=name))


def nearest_centre(xyxy: np.ndarray, shape: tuple[int, ...]) -> int | None:
    """Index of the box whose centre is nearest the image centre (None when no box)."""
    if len(xyxy) == 0:
        return None
    h, w = shape[:2]
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2.0 - w / 2.0
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2.0 - h / 2.0
    return int(np.argmin(cx * cx + cy * cy))


def align_image(image: np.ndarray, detector: Any, side: int = HR_SIDE) -> np.ndarray | None:
    """The canonical ``side`` crop of the face nearest the centre, or None without a face."""
    faces = detector.detect([image])[0]
    i = nearest_centre(np.asarray(faces.xyxy), image.shape)
    if i is None:
        return None
    try:
        m = similarity_to_template(np.asarray(faces.kps[i]), side)
    except ContractError:  # degenerate landmarks
        return None
    return warp_face(image, m, side)


def eval_cache_dir() -> Path:
    """The eval cache, ``<cache root>/eval``: ``$CCTV_SR_CACHE/eval``, else
    ``$XDG_CACHE_HOME/cctv-sr/eval``, else ``~/.cache/cctv-sr/eval`` (see
    :func:`cctv_sr.models.resolve.cache_root`)."""
    from cctv_sr.models.resolve import cache_root

    return cache_root() / "eval"


def cache_key(root: Path, paths: Sequence[Path], detector: str) -> str:
    """sha256 of the detector, the alignment version and each file (relative path, size,
    mtime)."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{detector}|{HR_SIDE}|{Path(root).resolve()}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"|{p.relative_to(root).as_posix()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def align_all(root: Path, paths: Sequence[Path], detector: Any, *, cache: Path | None,
              quiet: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Canonical 128 crops ``(N, 128, 128, 3)`` and a found-a-face mask ``(N,)`` for ``paths``,
    from the cache when it holds this exact list for this detector."""
    file = None
    if cache is not None:
        file = cache / f"aligned-{detector.name}-{cache_key(root, paths, detector.name)[:24]}.npz"
        if file.is_file():
            try:
                with np.load(file) as data:
                    crops, found = data["crops"], data["found"]
                want = (len(paths), HR_SIDE, HR_SIDE, 3)
                if crops.shape == want and found.shape == (len(paths),):
                    log.info("aligned crops from the cache: %s", file)
                    return crops, found.astype(bool)
            except (OSError, KeyError, ValueError) as exc:
                log.warning("%s: unreadable cache file (%s); aligning again", file, exc)
    crops = np.zeros((len(paths), HR_SIDE, HR_SIDE, 3), np.uint8)
    found = np.zeros(len(paths), bool)
    bar = tqdm(total=len(paths), desc=f"align ({detector.name})", unit="img", disable=quiet,
               file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
    for i, p in enumerate(paths):
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("%s: cannot be read as an image; counted as no face", p)
        else:
            crop = align_image(image, detector)
            if crop is not None:
                crops[i], found[i] = crop, True
        bar.update(1)
    bar.close()
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=file.parent, suffix=".tmp", delete=False) as tmp:
                np.savez(tmp, crops=crops, found=found)
            os.replace(tmp.name, file)
        except OSError as exc:
            log.warning("cannot write the alignment cache %s: %s", file, exc)
    return crops, found
