"""Building the training crop cache (:mod:`cctv_sr.data.trainset`): shards, workers, the file.

The items of a :class:`~cctv_sr.data.trainset.SourcePlan` are cut into shards (up to
``SHARD_FILES`` stills, or one clip). Each shard is aligned in this process or in a spawn pool
and saved as a part file in ``<out>.parts/`` named by the sha256 of its inputs (files, sizes,
mtimes, detector, settings), so an interrupted build resumes where it stopped; the parts are
merged into ONE file and removed. A finished file whose build key matches is reused as is.

File format (``np.savez``, uncompressed; ``allow_pickle`` is never needed):

- ``data`` uint8: the crops as concatenated lossless WebP files (``codec`` webp, the default,
  about a third of raw) or the raw (N, 128, 128, 3) BGR array (``codec`` raw);
- ``offsets`` int64 (N + 1,): byte ranges in ``data`` (webp);
- ``group`` int32 (N,) into ``group_names`` (str array); ``source`` int8 (N,) into
  ``SOURCES``; ``native_px`` float32 (N,); ``frame`` int32 (N,), -1 for stills;
- ``path_sha`` bytes (N,): the first 16 hex digits of sha256 of each source's relative path;
- ``meta``: :class:`~cctv_sr.data.trainset.TrainSetInfo` as JSON (detector and its weight
  sha256, aligner, settings, counts, skips, exclusions, build key).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from cctv_sr.data.degrade import HR_SIDE
from cctv_sr.data.trainset import (
    FORMAT_VERSION,
    SOURCES,
    SourceItem,
    SourcePlan,
    TrainSetInfo,
    check_exclusions,
    clip_allowed,
    image_files,
    lfw_allowed,
)
from cctv_sr.errors import ConfigError, ContractError
from cctv_sr.face.align import native_size, similarity_to_template, warp_face

log = logging.getLogger(__name__)

SHARD_FILES = 400
DETECT_MAX_SIDE = 640
ALIGNER = f"face.align.similarity_to_template+warp_face ArcFace-112 template at {HR_SIDE}"
_DETECTOR: dict[str, Any] = {}


@dataclass(frozen=True)
class BuildParams:
    """Settings that change what a build holds (they are part of the build key)."""

    stride: int = 3  # clips: every stride-th frame is looked at
    max_per_clip: int = 300
    dup_thresh: float = 3.0  # clips: mean abs difference (0-255, 32x32 grey) below = duplicate
    min_native_px: float = 48.0  # faces smaller than this at their own resolution are skipped
    detector: str = "auto"
    codec: str = "webp"

    def __post_init__(self) -> None:
        if self.stride < 1 or self.max_per_clip < 1 or self.dup_thresh < 0 \
                or self.min_native_px < 0:
            raise ConfigError(f"trainset: invalid build settings {self}")
        if self.codec not in ("webp", "raw"):
            raise ConfigError(f"trainset: codec must be webp or raw, got {self.codec!r}")


@dataclass(frozen=True)
class Shard:
    items: tuple[SourceItem, ...]
    key: str


def _detector(name: str, threads: int = 1) -> Any:
    if name not in _DETECTOR:
        from cctv_sr.evaluate.oracle import pick_detector

        cv2.setNumThreads(threads)
        _DETECTOR[name] = pick_detector(name)
    return _DETECTOR[name]


def detector_identity(name: str) -> tuple[str, str]:
    """(name, sha256 of its weight file or '') of the oracle detector ``name``."""
    from cctv_sr.models.resolve import sha256_file

    det = _detector(name)
    files = tuple(getattr(det, "model_files", ()))
    return str(det.name), (sha256_file(files[0]) if files else "")


def _path_sha(rel: str) -> bytes:
    return hashlib.sha256(rel.encode()).hexdigest()[:16].encode()


def shards_of(plan: SourcePlan, params: BuildParams, det_id: tuple[str, str]) -> list[Shard]:
    """The plan cut into shards, each with its input key."""
    groups: list[list[SourceItem]] = []
    stills: dict[str, list[SourceItem]] = {}
    for item in plan.items:
        if item.kind == "clip":
            groups.append([item])
        else:
            stills.setdefault(item.kind, []).append(item)
    for items in stills.values():
        groups += [items[i:i + SHARD_FILES] for i in range(0, len(items), SHARD_FILES)]
    out = []
    for items in groups:
        h = hashlib.sha256(f"v{FORMAT_VERSION}|{det_id}|{params}".encode())
        for it in items:
            st = it.path.stat()
            h.update(f"|{it.kind}:{it.rel}:{it.group}:{st.st_size}:{st.st_mtime_ns}".encode())
        out.append(Shard(tuple(items), h.hexdigest()[:32]))
    return out


def _align(image: np.ndarray, det: Any, largest: bool) -> tuple[np.ndarray, float] | None:
    """The canonical 128 crop and native size of the face nearest the centre (stills, as the
    eval oracle) or the largest face (clip frames). Frames larger than ``DETECT_MAX_SIDE`` are
    detected on a shrunk copy (4x faster at 1280x720) and warped from the full frame."""
    from cctv_sr.evaluate.oracle import nearest_centre

    scale = min(1.0, DETECT_MAX_SIDE / max(image.shape[:2]))
    small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale,
                                                  interpolation=cv2.INTER_AREA)
    faces = det.detect([small])[0]
    if len(faces) == 0:
        return None
    xyxy = np.asarray(faces.xyxy) / scale
    if largest:
        i = int(np.argmax((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])))
    else:
        j = nearest_centre(xyxy, image.shape)
        if j is None:
            return None
        i = j
    kps = np.asarray(faces.kps[i]) / scale
    try:
        m = similarity_to_template(kps, HR_SIDE)
    except ContractError:
        return None
    return warp_face(image, m, HR_SIDE), native_size(kps)


def _frames(path: Path, stride: int) -> Iterator[tuple[int, np.ndarray]]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for n, frame in enumerate(container.decode(stream)):
            if n % stride == 0:
                yield n, frame.to_ndarray(format="bgr24")


def _encode(crop: np.ndarray, codec: str) -> np.ndarray:
    if codec == "raw":
        return crop.reshape(-1)
    ok, buf = cv2.imencode(".webp", crop, [cv2.IMWRITE_WEBP_QUALITY, 101])  # 101 = lossless
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ContractError("WebP encoding of a crop failed")
    return np.asarray(buf, np.uint8).reshape(-1)


def check_items(items: tuple[SourceItem, ...]) -> None:
    """ContractError for an item the rules exclude (the plan already leaves them out; this is
    the last line, whatever built the shard)."""
    for item in items:
        if item.kind not in SOURCES:
            raise ContractError(f"{item.rel}: unknown training source {item.kind!r}")
        if item.kind == "clip" and not clip_allowed(item.group):
            raise ContractError(f"{item.rel}: only liveportrait_* clips may be trained on")
        if item.kind == "lfw" and not lfw_allowed(item.group, len(image_files(item.path.parent))):
            raise ContractError(f"{item.rel}: LFW identities with >= 2 images and HOLDOUT "
                                f"names must never be trained on")


def run_shard(shard: Shard, params: BuildParams, parts: Path) -> Path:
    """Align one shard into its part file (kept when it already exists); returns the path."""
    check_items(shard.items)
    part = parts / f"{shard.key}.npz"
    if part.is_file():
        return part
    det = _detector(params.detector)
    blobs: list[np.ndarray] = []
    rows: list[tuple[str, int, str, float, int]] = []  # group, source, rel, native, frame
    skipped = {"no_face": 0, "small": 0, "duplicate": 0, "unreadable": 0}
    for item in shard.items:
        if item.kind == "clip":
            kept, last = 0, None
            for n, frame in _frames(item.path, params.stride):
                got = _align(frame, det, largest=True)
                if got is None or got[1] < params.min_native_px:
                    skipped["no_face" if got is None else "small"] += 1
                    continue
                small = cv2.resize(cv2.cvtColor(got[0], cv2.COLOR_BGR2GRAY), (32, 32),
                                   interpolation=cv2.INTER_AREA).astype(np.float32)
                if last is not None and float(np.abs(small - last).mean()) < params.dup_thresh:
                    skipped["duplicate"] += 1
                    continue
                last = small
                blobs.append(_encode(got[0], params.codec))
                rows.append((item.group, SOURCES.index("clip"), item.rel, got[1], n))
                kept += 1
                if kept >= params.max_per_clip:
                    break
            continue
        image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if image is None:
            skipped["unreadable"] += 1
            continue
        got = _align(image, det, largest=False)
        if got is None or got[1] < params.min_native_px:
            skipped["no_face" if got is None else "small"] += 1
            continue
        blobs.append(_encode(got[0], params.codec))
        rows.append((item.group, SOURCES.index(item.kind), item.rel, got[1], -1))
    lengths = np.array([len(b) for b in blobs], np.int64)
    _save(part, data=np.concatenate(blobs) if blobs else np.zeros(0, np.uint8),
          lengths=lengths, group=np.array([r[0] for r in rows], str),
          source=np.array([r[1] for r in rows], np.int8),
          path_sha=np.array([_path_sha(r[2]) for r in rows], "S16"),
          native_px=np.array([r[3] for r in rows], np.float32),
          frame=np.array([r[4] for r in rows], np.int32),
          skipped=np.array([skipped[k] for k in sorted(skipped)], np.int64))
    return part


def _save(path: Path, **arrays: np.ndarray) -> None:
    """np.savez to a temporary file in the same folder, then an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp.name, path)


def _worker_init(models_env: str) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if models_env:
        os.environ["CCTV_SR_MODELS"] = models_env
    cv2.setNumThreads(1)


def build_key(shards: list[Shard], params: BuildParams) -> str:
    h = hashlib.sha256(f"v{FORMAT_VERSION}|{params}".encode())
    for s in shards:
        h.update(s.key.encode())
    return h.hexdigest()[:32]


def existing(out: Path, key: str) -> TrainSetInfo | None:
    """The info of ``out`` when it is a finished cache of this exact build."""
    if not out.is_file():
        return None
    try:
        with np.load(out, allow_pickle=False) as z:
            info = TrainSetInfo.from_json(str(z["meta"]), out)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        log.warning("%s: unreadable training cache (%s); building again", out, exc)
        return None
    return info if info.build_key == key and info.version == FORMAT_VERSION else None


def run_build(plan: SourcePlan, out: Path, params: BuildParams, *, workers: int = 1,
              quiet: bool = False) -> TrainSetInfo:
    """Align every shard of ``plan`` (resuming from part files), then write ``out``."""
    t0 = time.perf_counter()
    det_id = detector_identity(params.detector)
    shards = shards_of(plan, params, det_id)
    key = build_key(shards, params)
    done = existing(out, key)
    if done is not None:
        log.info("training cache up to date: %s (%d crops)", out, done.count)
        return done
    parts = out.with_name(out.name + ".parts")
    units = sum(len(s.items) for s in shards)
    bar = tqdm(total=units, desc="align train faces", unit="file", disable=quiet,
               file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
    files: dict[str, Path] = {}
    if workers <= 1:
        for s in shards:
            files[s.key] = run_shard(s, params, parts)
            bar.update(len(s.items))
    else:
        ctx = multiprocessing.get_context("spawn")
        env = os.environ.get("CCTV_SR_MODELS", "")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(env,)) as pool:
            # clips first: they are the longest tasks
            order = sorted(shards, key=lambda s: s.items[0].kind != "clip")
            futures = {pool.submit(run_shard, s, params, parts): s for s in order}
            for fut in as_completed(futures):
                files[futures[fut].key] = fut.result()
                bar.update(len(futures[fut].items))
    bar.close()
    info = _merge(shards, files, out, params, plan, det_id, key, t0)
    shutil.rmtree(parts, ignore_errors=True)
    log.info("training cache %s: %d crops %s, %.1f MB, %.0f s", out, info.count, info.counts,
             info.file_bytes / 1e6, info.seconds)
    return info


def _merge(shards: list[Shard], files: dict[str, Path], out: Path, params: BuildParams,
           plan: SourcePlan, det_id: tuple[str, str], key: str, t0: float) -> TrainSetInfo:
    cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                         ("data", "lengths", "group", "source", "path_sha",
                                          "native_px", "frame")}
    skipped = np.zeros(4, np.int64)
    for s in shards:  # plan order, whatever order the workers finished in
        with np.load(files[s.key], allow_pickle=False) as z:
            for k in cols:
                cols[k].append(z[k])
            skipped += z["skipped"]
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    names_all = cat["group"].astype(str)
    group_names, group = np.unique(names_all, return_inverse=True)
    source = cat["source"].astype(np.int8)
    check_exclusions(tuple(str(n) for n in group_names), source, group)
    offsets = np.concatenate([[0], np.cumsum(cat["lengths"].astype(np.int64))])
    counts = {k: int((source == i).sum()) for i, k in enumerate(SOURCES)}
    info = TrainSetInfo(
        path=out, version=FORMAT_VERSION, count=len(source), counts=counts,
        groups=len(group_names), detector=det_id[0], detector_sha256=det_id[1],
        aligner=ALIGNER, codec=params.codec,
        params={"stride": params.stride, "max_per_clip": params.max_per_clip,
                "dup_thresh": params.dup_thresh, "min_native_px": params.min_native_px},
        skipped=dict(zip(("duplicate", "no_face", "small", "unreadable"),
                         (int(x) for x in skipped))),
        excluded={"dev_clips": len(plan.excluded_clips),
                  "lfw_identities": plan.excluded_lfw_identities},
        build_key=key, seconds=round(time.perf_counter() - t0, 2), file_bytes=0)
    _save(out, data=cat["data"].astype(np.uint8), offsets=offsets,
          group=group.astype(np.int32), group_names=group_names.astype(str), source=source,
          native_px=cat["native_px"].astype(np.float32), frame=cat["frame"].astype(np.int32),
          path_sha=cat["path_sha"].astype("S16"), meta=np.array(info.to_json()))
    return TrainSetInfo.from_json(info.to_json(), out)
