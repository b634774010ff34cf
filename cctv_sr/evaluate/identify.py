"""``cctv-sr eval identify``: identification from tiny faces (EVAL.md sections 1 and 2).

1. The set (:mod:`cctv_sr.data.lfw`): gallery = first image of every identity with
   >= 2 images, probes = the others (a whole-identity subsample with ``max_probes``).
2. Oracle alignment on the full-resolution image: 5 landmarks of the face nearest the image
   centre (YuNet when its weights are found locally, else the embedded MTCNN), warped to the
   ArcFace template at 128 x 128. That is the ground truth; images without a face are left out
   (counted), and an identity whose gallery image has no face is left out whole. Crops are
   cached per (file list, detector) under ``$CCTV_SR_CACHE/eval`` (or
   ``~/.cache/cctv-sr/eval``).
3. Each probe is degraded (:mod:`cctv_sr.data.degrade`) at every size, restored to 128 by
   each method (:mod:`cctv_sr.evaluate.methods`) and embedded by each embedder; the gallery is
   embedded once per embedder, undegraded. Work is split in chunks of probes over a pool of
   worker processes, each with its own models.
4. Rank-1 and TAR at FAR = 1e-2 per (method, size, embedder) (:mod:`cctv_sr.evaluate.metrics`).

Example::

    result = run_identify(IdentifyConfig(data=Path("lfw_dev"), methods=("hr", "bicubic"),
                                         max_probes=750))
    json.dumps(result.to_json())
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from cctv_sr.config import DetectorConfig, EmbedderConfig
from cctv_sr.data.degrade import HR_SIDE, make_probes
from cctv_sr.data.lfw import EvalImage, EvalSet, load_dataset
from cctv_sr.errors import CctvSrError, ConfigError, ContractError, PipelineError
from cctv_sr.evaluate import metrics
from cctv_sr.evaluate.methods import (
    EvalMethod,
    create_method,
    default_sr_name,
    parse_methods,
    select_frames,
)
from cctv_sr.face.align import similarity_to_template, warp_face

log = logging.getLogger(__name__)

DEFAULT_METHODS: tuple[str, ...] = ("hr", "bicubic", "default")
DEFAULT_SIZES: tuple[int, ...] = (16, 24, 32)
DEFAULT_EMBEDDERS: tuple[str, ...] = ("mobilefacenet", "dlib")
FAR = 1e-2
TAR_KEY = "tar_at_far_1e-2"
AUTO_DETECTOR = "auto"
CACHE_VERSION = 1  # bump when the alignment changes
EMBEDDER_LABELS = {"mobilefacenet": "MFN", "dlib": "dlib", "arcface": "ArcF"}


# ------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class IdentifyConfig:
    """What one benchmark run measures (``workers`` 0 = ``os.cpu_count()``; ``burst`` 0 =
    stills, T > 0 = bursts of T frames; ``cache_dir`` None = the default, ``use_cache`` off =
    align every time)."""

    data: Path
    methods: tuple[str, ...] = DEFAULT_METHODS
    sizes: tuple[int, ...] = DEFAULT_SIZES
    embedders: tuple[str, ...] = DEFAULT_EMBEDDERS
    max_probes: int | None = None
    burst: int = 0
    workers: int = 0
    detector: str = AUTO_DETECTOR
    cache_dir: Path | None = None
    use_cache: bool = True
    quiet: bool = False


def check_config(cfg: IdentifyConfig) -> IdentifyConfig:
    """``cfg`` with its lists checked (ConfigError one-liners) and de-duplicated."""
    from cctv_sr.embed import EMBEDDERS

    methods = tuple(parse_methods(",".join(cfg.methods)))
    if not cfg.sizes:
        raise ConfigError("--sizes: no size given")
    sizes: list[int] = []
    for s in cfg.sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 4 <= s <= HR_SIDE:
            raise ConfigError(f"--sizes: each size must be an integer in 4..{HR_SIDE}, got {s!r}")
        if int(s) not in sizes:
            sizes.append(int(s))
    if not cfg.embedders:
        raise ConfigError("--embedder: no embedder given")
    embedders: list[str] = []
    for e in cfg.embedders:
        if e not in EMBEDDERS:
            raise ConfigError(f"--embedder: unknown embedder '{e}' (known: "
                              f"{', '.join(EMBEDDERS)})")
        if e not in embedders:
            embedders.append(e)
    if cfg.burst < 0:
        raise ConfigError(f"--burst must be >= 0 frames, got {cfg.burst}")
    if cfg.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {cfg.workers}")
    if cfg.max_probes is not None and cfg.max_probes < 0:
        raise ConfigError(f"--max-probes must be >= 0, got {cfg.max_probes}")
    return IdentifyConfig(
        data=Path(cfg.data), methods=methods, sizes=tuple(sizes), embedders=tuple(embedders),
        max_probes=cfg.max_probes, burst=int(cfg.burst), workers=int(cfg.workers),
        detector=cfg.detector, cache_dir=cfg.cache_dir, use_cache=cfg.use_cache, quiet=cfg.quiet,
    )


# ----------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class IdentifyRow:
    """One figure pair: ``method`` at probe side ``size`` under ``embedder`` (fractions)."""

    method: str
    size: int
    embedder: str
    rank1: float
    tar_at_far_1e_2: float

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "size": self.size, "embedder": self.embedder,
                "rank1": _num(self.rank1), TAR_KEY: _num(self.tar_at_far_1e_2)}


@dataclass(frozen=True)
class IdentifyResult:
    """The benchmark's figures and what they were measured on.

    ``identities``: gallery identities; ``probes``: probes scored; ``no_face``: images left
    out because the oracle detector found no face (``no_face_files`` relative to the root);
    ``burst``: frames per probe (0 = stills); ``methods``: what each method did per size;
    ``embedder_versions``: provenance of each embedder's weights.
    """

    rows: tuple[IdentifyRow, ...]
    identities: int
    probes: int
    seconds: float
    detector: str
    no_face: int
    burst: int
    probe_identities: int
    total_probes: int
    sizes: tuple[int, ...]
    methods: tuple[str, ...]
    embedders: tuple[str, ...]
    dropped_identities: int = 0
    no_face_files: tuple[str, ...] = ()
    method_info: dict[str, dict[str, str]] = field(default_factory=dict)
    embedder_versions: dict[str, str] = field(default_factory=dict)
    workers: int = 1

    def row(self, method: str, size: int, embedder: str) -> IdentifyRow:
        for r in self.rows:
            if (r.method, r.size, r.embedder) == (method, size, embedder):
                return r
        raise KeyError((method, size, embedder))

    def to_json(self) -> dict[str, Any]:
        """The EVAL.md object (``rows``, ``identities``, ``probes``, ``seconds``) plus
        provenance keys."""
        return {
            "rows": [r.to_json() for r in self.rows],
            "identities": self.identities,
            "probes": self.probes,
            "seconds": round(self.seconds, 2),
            "detector": self.detector,
            "no_face": self.no_face,
            "no_face_files": list(self.no_face_files),
            "dropped_identities": self.dropped_identities,
            "burst": self.burst,
            "probe_identities": self.probe_identities,
            "total_probes": self.total_probes,
            "far": FAR,
            "methods": self.method_info,
            "embedders": self.embedder_versions,
            "workers": self.workers,
        }


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 6)


# --------------------------------------------------------------------------- oracle alignment


def pick_detector(name: str = AUTO_DETECTOR) -> Any:
    """The oracle detector: ``auto`` = YuNet when its weights are found locally (no download),
    else MTCNN (weights embedded in the ``mtcnn`` package)."""
    from cctv_sr.engine.build import DETECTOR_DEFAULT_MANIFEST, create_detector
    from cctv_sr.models.weights import find_local, get_manifest

    if name == AUTO_DETECTOR:
        name = "mtcnn"
        try:
            manifest = get_manifest(DETECTOR_DEFAULT_MANIFEST["yunet"] or "yunet_2023mar")
            if find_local(manifest, manifest.file()) is not None:
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
    """``$CCTV_SR_CACHE/eval``, ``$XDG_CACHE_HOME/cctv-sr/eval`` or ``~/.cache/cctv-sr/eval``."""
    env = os.environ.get("CCTV_SR_CACHE")
    if env:
        return Path(env).expanduser() / "eval"
    from cctv_sr.models.weights import user_cache_root

    return user_cache_root() / "eval"


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


# ------------------------------------------------------------------------------------ workers

# Per-process models, built on first use (a pool worker builds its own).
_MODELS: dict[str, Any] = {}


def _worker_init(threads: int) -> None:
    """Pool initializer: keep each worker to ``threads`` threads (set before backends load)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    cv2.setNumThreads(threads)
    _MODELS["threads"] = threads


def _method(name: str) -> EvalMethod:
    key = f"method:{name}"
    if key not in _MODELS:
        _MODELS[key] = create_method(name)
    m: EvalMethod = _MODELS[key]
    return m


def _embedder(name: str) -> Any:
    key = f"embedder:{name}"
    if key not in _MODELS:
        from cctv_sr.embed import create_embedder

        threads = int(_MODELS.get("threads", 0))
        _MODELS[key] = create_embedder(EmbedderConfig(name=name, num_threads=threads))
    return _MODELS[key]


@dataclass(frozen=True)
class _ProbeTask:
    crops: np.ndarray  # (n, 128, 128, 3) ground truth
    file_names: tuple[str, ...]
    sizes: tuple[int, ...]
    burst: int
    methods: tuple[str, ...]  # one per distinct computation
    embedders: tuple[str, ...]


EmbKey = tuple[str, int, str]  # (method, size (0 = any), embedder)


def _embed_gallery(crops: np.ndarray, embedders: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {e: _embedder(e).embed(crops) for e in embedders}


def _embed_probes(task: _ProbeTask) -> dict[EmbKey, np.ndarray]:
    """Degrade, restore and embed one chunk of probes: every (method, size, embedder)."""
    out: dict[EmbKey, np.ndarray] = {}
    methods = [_method(m) for m in task.methods]
    for m in methods:
        if m.size_independent:
            restored = m.restore(np.zeros((len(task.crops), 0, 0, 3), np.uint8), task.crops)
            for e in task.embedders:
                out[(m.name, 0, e)] = _embedder(e).embed(restored)
    for size in task.sizes:
        probes = make_probes(task.crops, list(task.file_names), size, task.burst)
        for m in methods:
            if m.size_independent:
                continue
            restored = m.restore(select_frames(m, probes), task.crops)
            if restored.shape != (len(task.crops), HR_SIDE, HR_SIDE, 3):
                raise CctvSrError(f"method {m.name} returned {restored.shape}, expected "
                                  f"({len(task.crops)}, {HR_SIDE}, {HR_SIDE}, 3)")
            for e in task.embedders:
                out[(m.name, size, e)] = _embedder(e).embed(restored)
    return out


class _Runner:
    """Runs tasks in this process (workers == 1) or in a spawn pool of worker processes."""

    def __init__(self, workers: int, threads: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            self._pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init, initargs=(threads,))

    def map(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]],
            on_done: Callable[[int], None]) -> Iterator[Any]:
        """``fn(*a)`` for each ``a`` in order; ``on_done(i)`` as each finishes."""
        if self._pool is None:
            for i, a in enumerate(args):
                result = fn(*a)
                on_done(i)
                yield result
            return
        futures: list[Future[Any]] = []
        for i, a in enumerate(args):
            fut = self._pool.submit(fn, *a)
            fut.add_done_callback(lambda _f, i=i: on_done(i))
            futures.append(fut)
        try:
            for fut in futures:
                yield fut.result()
        except BrokenProcessPool as exc:
            for fut in futures:
                fut.cancel()
            raise PipelineError(
                "an eval worker process died (out of memory? or a script calling run_identify "
                "without `if __name__ == '__main__':`); try --workers 1") from exc
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(a, min(n, a + size)) for a in range(0, n, size)]


# ---------------------------------------------------------------------------------- benchmark


def compute_name(method: str) -> str:
    """The computation a method name stands for (``default`` shares its SR backend's)."""
    from cctv_sr.evaluate.methods import DEFAULT

    return default_sr_name() if method == DEFAULT else method


def run_identify(cfg: IdentifyConfig) -> IdentifyResult:
    """Run the benchmark (see the module docstring)."""
    t0 = time.perf_counter()
    cfg = check_config(cfg)
    ds = load_dataset(cfg.data, cfg.max_probes)
    workers = cfg.workers or os.cpu_count() or 1
    cpus = os.cpu_count() or 1
    threads = max(1, cpus // workers)

    # Build every model here first: bad names or missing weights fail before the slow part,
    # and the descriptions/versions go into the output.
    _MODELS.clear()  # settings (e.g. $CCTV_SR_MODELS) may differ from a previous run
    computes = list(dict.fromkeys(compute_name(m) for m in cfg.methods))
    built = {m: create_method(m) for m in computes}
    _MODELS.update({f"method:{k}": v for k, v in built.items()})
    method_info = {m: {str(s): built[compute_name(m)].describe(s) for s in cfg.sizes}
                   for m in cfg.methods}
    embedder_versions = {e: str(getattr(_embedder(e), "version", "")) for e in cfg.embedders}

    detector = pick_detector(cfg.detector)
    gallery, probes, no_face_files, dropped = _aligned_set(ds, detector, cfg)
    gal_crops = np.stack([c for _, c in gallery]) if gallery else np.zeros(
        (0, HR_SIDE, HR_SIDE, 3), np.uint8)
    gal_index = {img.identity: j for j, (img, _) in enumerate(gallery)}
    labels = np.array([gal_index[img.identity] for img, _ in probes], np.int64)
    probe_crops = np.stack([c for _, c in probes]) if probes else np.zeros(
        (0, HR_SIDE, HR_SIDE, 3), np.uint8)
    names = tuple(img.file_name for img, _ in probes)
    if len(probes) == 0:
        raise ConfigError(f"--data {cfg.data}: no probe left to score (every probe image "
                          f"lacks a face, or no identity has a usable gallery image)")

    workers = min(workers, max(1, math.ceil(len(probes) / 4)))
    runner = _Runner(workers, threads)
    try:
        gal_emb, probe_emb = _embed_everything(runner, cfg, computes, gal_crops, probe_crops,
                                               names, workers)
    finally:
        runner.close()

    rows: list[IdentifyRow] = []
    for m in cfg.methods:
        comp = compute_name(m)
        for s in cfg.sizes:
            for e in cfg.embedders:
                key = (comp, 0 if built[comp].size_independent else s, e)
                scores = metrics.similarity(probe_emb[key], gal_emb[e])
                rows.append(IdentifyRow(m, s, e, metrics.rank1(scores, labels),
                                        metrics.tar_at_far(scores, labels, FAR)))
    return IdentifyResult(
        rows=tuple(rows), identities=len(gallery), probes=len(probes),
        seconds=time.perf_counter() - t0, detector=detector.name, no_face=len(no_face_files),
        burst=cfg.burst, probe_identities=len({img.identity for img, _ in probes}),
        total_probes=ds.total_probes, sizes=cfg.sizes, methods=cfg.methods,
        embedders=cfg.embedders, dropped_identities=dropped, no_face_files=tuple(no_face_files),
        method_info=method_info, embedder_versions=embedder_versions, workers=workers,
    )


def _aligned_set(ds: EvalSet, detector: Any, cfg: IdentifyConfig
                 ) -> tuple[list[tuple[EvalImage, np.ndarray]], list[tuple[EvalImage, np.ndarray]],
                            list[str], int]:
    """Gallery and probes with their crops; no-face images left out, and identities whose
    gallery image has no face left out whole (their probes too)."""
    images = list(ds.gallery) + list(ds.probes)
    paths = [img.path for img in images]
    cache = (cfg.cache_dir or eval_cache_dir()) if cfg.use_cache else None
    crops, found = align_all(ds.root, paths, detector, cache=cache, quiet=cfg.quiet)
    no_face = [p.relative_to(ds.root).as_posix() for p, ok in zip(paths, found) if not ok]
    n_gal = len(ds.gallery)
    gallery = [(img, crops[i]) for i, img in enumerate(ds.gallery) if found[i]]
    kept = {img.identity for img, _ in gallery}
    probes = [(img, crops[n_gal + i]) for i, img in enumerate(ds.probes)
              if found[n_gal + i] and img.identity in kept]
    dropped = len(ds.gallery) - len(gallery)
    if no_face:
        log.info("%d images without a face (excluded): %s", len(no_face), ", ".join(no_face[:10]))
    return gallery, probes, no_face, dropped


def _embed_everything(runner: _Runner, cfg: IdentifyConfig, computes: list[str],
                      gal_crops: np.ndarray, probe_crops: np.ndarray, names: tuple[str, ...],
                      workers: int) -> tuple[dict[str, np.ndarray], dict[EmbKey, np.ndarray]]:
    """Gallery embeddings per embedder and probe embeddings per (method, size, embedder)."""
    n_gal, n_probe = len(gal_crops), len(probe_crops)
    step = max(4, min(64, math.ceil(n_probe / (workers * 6))))
    gal_slices = _chunks(n_gal, max(step, 32))
    probe_slices = _chunks(n_probe, step)
    bar = tqdm(total=n_gal + n_probe, desc="embed gallery + probes", unit="face",
               disable=cfg.quiet, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
    sizes_of = [sl.stop - sl.start for sl in gal_slices] + [sl.stop - sl.start
                                                            for sl in probe_slices]

    def done(i: int) -> None:
        bar.update(sizes_of[i])

    fns: list[tuple[Any, ...]] = [(gal_crops[sl], cfg.embedders) for sl in gal_slices]
    fns += [(_ProbeTask(probe_crops[sl], names[sl], cfg.sizes, cfg.burst, tuple(computes),
                        cfg.embedders),) for sl in probe_slices]
    gal_parts: list[dict[str, np.ndarray]] = []
    probe_parts: list[dict[EmbKey, np.ndarray]] = []

    try:
        results = runner.map(_dispatch, fns, done)
        for i, r in enumerate(results):
            (gal_parts if i < len(gal_slices) else probe_parts).append(r)
    finally:
        bar.close()
    gal_emb = {e: np.concatenate([p[e] for p in gal_parts]) for e in cfg.embedders}
    keys = probe_parts[0].keys() if probe_parts else []
    probe_emb = {k: np.concatenate([p[k] for p in probe_parts]) for k in keys}
    return gal_emb, probe_emb


def _dispatch(*args: Any) -> Any:
    """Pool entry point: a gallery chunk ``(crops, embedders)`` or a ``_ProbeTask``."""
    if len(args) == 1:
        return _embed_probes(args[0])
    return _embed_gallery(*args)


# ------------------------------------------------------------------------------------- report


def format_table(result: IdentifyResult) -> str:
    """Rows = methods; columns = size x metric x embedder, in %."""
    cols = [(s, metric, e) for s in result.sizes for metric in ("r1", "TAR")
            for e in result.embedders]
    labels = [f"{metric} {EMBEDDER_LABELS.get(e, e[:5])}" for _, metric, e in cols]
    width = max(7, *(len(lab) + 2 for lab in labels))
    name_w = max(8, *(len(m) for m in result.methods)) + 1
    group = len(result.embedders) * 2
    lines = []
    head1 = " " * name_w
    for s in result.sizes:
        head1 += f"| s={s}".ljust(width * group + 2)
    lines.append(head1.rstrip())
    head2 = "method".ljust(name_w)
    for i, lab in enumerate(labels):
        head2 += ("| " if i % group == 0 else "") + lab.rjust(width)
    lines.append(head2)
    for m in result.methods:
        line = m.ljust(name_w)
        for i, (s, metric, e) in enumerate(cols):
            r = result.row(m, s, e)
            v = r.rank1 if metric == "r1" else r.tar_at_far_1e_2
            cell = "-" if v is None or math.isnan(v) else f"{100 * v:.1f}"
            line += ("| " if i % group == 0 else "") + cell.rjust(width)
        lines.append(line)
    return "\n".join(lines)


def format_report(result: IdentifyResult) -> str:
    """The table plus the counts and provenance lines."""
    mode = f"bursts of {result.burst} frames" if result.burst else "stills"
    out = [format_table(result), "",
           f"rank-1 and TAR at FAR={FAR:g} in %; {mode}; embedders: "
           + ", ".join(f"{EMBEDDER_LABELS.get(e, e)}={e}" for e in result.embedders),
           f"{result.identities} identities in the gallery, {result.probes} probes "
           f"({result.probe_identities} identities; {result.total_probes} probes before "
           f"--max-probes)",
           f"{result.no_face} images without a face (excluded)"
           + (f"; {result.dropped_identities} identities left out (gallery image without a "
              f"face)" if result.dropped_identities else ""),
           f"oracle alignment: {result.detector} landmarks -> ArcFace template at {HR_SIDE}",
           f"{result.seconds:.1f} s with {result.workers} worker(s)"]
    if "default" in result.methods:
        out.append(f"default = {default_sr_name()} (the SR of `cctv-sr run`)")
    return "\n".join(out)
