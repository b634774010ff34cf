"""The worker side of ``cctv-sr eval identify`` (docs/EVAL.md 1.2-1.4): degrade, restore, embed.

Every process (the parent and each pool worker) keeps its own models in a per-process cache,
built on first use. The parent builds them first (:func:`cached_method`,
:func:`cached_embedder`) so that bad names or missing weights fail before the slow part; a
spawned worker builds its own copy the first time a chunk needs it.

:func:`embed_all` cuts the gallery and the probes into chunks, runs them in this process
(``workers == 1``) or over a spawn pool, and returns the :class:`Embeddings`: gallery
embeddings per embedder and probe embeddings per (computation, size, embedder).

Example::

    reset_models()
    emb = embed_all(gal_crops, probe_crops, names, EmbedPlan(sizes=(16,), burst=0,
                    computes=("bicubic",), embedders=("dlib",)), workers=2, threads=1)
    scores = emb.probe("bicubic", 16, "dlib") @ emb.gallery("dlib").T
"""

from __future__ import annotations

import functools
import logging
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from cctv_sr.config import EmbedderConfig
from cctv_sr.data.degrade import HR_SIDE, make_probes
from cctv_sr.errors import CctvSrError, PipelineError
from cctv_sr.evaluate.methods import EmbeddingMethod, Method, create_method, select_frames

log = logging.getLogger(__name__)

EmbKey = tuple[str, int, str]  # (computation, size (0 = any), embedder)

# Per-process models, built on first use (a pool worker builds its own).
_MODELS: dict[str, Any] = {}


# ------------------------------------------------------------------------------ model cache


def reset_models() -> None:
    """Forget this process's models (settings such as ``$CCTV_SR_MODELS`` may have changed)."""
    _MODELS.clear()


def _worker_init(threads: int) -> None:
    """Pool initializer: keep each worker to ``threads`` threads (set before backends load)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    cv2.setNumThreads(threads)
    _MODELS["threads"] = threads


def cached_method(name: str) -> Method:
    """The method ``name`` of this process (restoration or embedding), built on first use."""
    key = f"method:{name}"
    if key not in _MODELS:
        _MODELS[key] = create_method(name)
    m: Method = _MODELS[key]
    return m


def cached_embedder(name: str) -> Any:
    """The embedder ``name`` of this process, built on first use (with the worker's threads)."""
    key = f"embedder:{name}"
    if key not in _MODELS:
        from cctv_sr.embed import create_embedder

        threads = int(_MODELS.get("threads", 0))
        _MODELS[key] = create_embedder(EmbedderConfig(name=name, num_threads=threads))
    return _MODELS[key]


# ------------------------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class EmbedPlan:
    """What every probe chunk computes: probe ``sizes``, ``burst`` frames (0 = stills), the
    distinct method computations and the embedders."""

    sizes: tuple[int, ...]
    burst: int
    computes: tuple[str, ...]
    embedders: tuple[str, ...]
    seed: int = 0  # the set of degradations (cctv_sr.data.degrade.seed_of)


@dataclass(frozen=True)
class _ProbeTask:
    crops: np.ndarray  # (n, 128, 128, 3) ground truth
    file_names: tuple[str, ...]
    sizes: tuple[int, ...]
    burst: int
    methods: tuple[str, ...]  # one per distinct computation
    embedders: tuple[str, ...]
    seed: int = 0


def _embed_gallery(crops: np.ndarray, embedders: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {e: cached_embedder(e).embed(crops) for e in embedders}


def _embed_probes(task: _ProbeTask) -> dict[EmbKey, np.ndarray]:
    """Degrade, restore and embed one chunk of probes: every (method, size, embedder); an
    embedding method gives (method, size, its space) only, when its space is in the run."""
    out: dict[EmbKey, np.ndarray] = {}
    methods = [cached_method(m) for m in task.methods]
    for m in methods:
        if m.size_independent and not isinstance(m, EmbeddingMethod):
            restored = m.restore(np.zeros((len(task.crops), 0, 0, 3), np.uint8), task.crops)
            for e in task.embedders:
                out[(m.name, 0, e)] = cached_embedder(e).embed(restored)
    for size in task.sizes:
        probes = make_probes(task.crops, list(task.file_names), size, task.burst, task.seed)
        for m in methods:
            if isinstance(m, EmbeddingMethod):
                if m.space in task.embedders:
                    out[(m.name, size, m.space)] = _method_embeddings(m, probes)
                continue
            if m.size_independent:
                continue
            restored = m.restore(select_frames(m, probes), task.crops)
            if restored.shape != (len(task.crops), HR_SIDE, HR_SIDE, 3):
                raise CctvSrError(f"method {m.name} returned {restored.shape}, expected "
                                  f"({len(task.crops)}, {HR_SIDE}, {HR_SIDE}, 3)")
            for e in task.embedders:
                out[(m.name, size, e)] = cached_embedder(e).embed(restored)
    return out


def _method_embeddings(m: EmbeddingMethod, probes: np.ndarray) -> np.ndarray:
    """``m``'s embeddings of a probe batch, checked: one finite vector per probe."""
    emb = np.asarray(m.embed_probes(select_frames(m, probes)), np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(probes) or not np.isfinite(emb).all():
        raise CctvSrError(f"method {m.name} returned embeddings {emb.shape} (finite: "
                          f"{bool(np.isfinite(emb).all())}), expected ({len(probes)}, D)")
    return emb


def _dispatch(*args: Any) -> Any:
    """Pool entry point: a gallery chunk ``(crops, embedders)`` or a ``_ProbeTask``."""
    if len(args) == 1:
        return _embed_probes(args[0])
    return _embed_gallery(*args)


# ----------------------------------------------------------------------------------- runner


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
            fut.add_done_callback(functools.partial(_notify, on_done, i))
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


# ------------------------------------------------------------------------------- embed all


@dataclass(frozen=True)
class Embeddings:
    """Unit embeddings of one run: ``galleries[embedder]`` (G, D) in gallery order and
    ``probes[(computation, size, embedder)]`` (P, D) in probe order, size 0 for a method that
    does not depend on the size (``hr``); an embedding method has only its own space's key."""

    galleries: dict[str, np.ndarray]
    probes: dict[EmbKey, np.ndarray]

    def gallery(self, embedder: str) -> np.ndarray:
        """The gallery embeddings under ``embedder``."""
        return self.galleries[embedder]

    def probe(self, compute: str, size: int, embedder: str) -> np.ndarray:
        """The probe embeddings of ``compute`` at ``size`` (0 = size-independent)."""
        return self.probes[(compute, size, embedder)]

    def has_probe(self, compute: str, size: int, embedder: str) -> bool:
        """Whether ``compute`` has probe embeddings at ``size`` under ``embedder``."""
        return (compute, size, embedder) in self.probes


def embed_all(gal_crops: np.ndarray, probe_crops: np.ndarray, names: tuple[str, ...],
              plan: EmbedPlan, *, workers: int, threads: int, quiet: bool = False
              ) -> Embeddings:
    """Embed the gallery (undegraded) and every probe chunk per ``plan``, over ``workers``
    processes of ``threads`` threads each (``workers == 1``: in this process)."""
    runner = _Runner(workers, threads)
    try:
        return _embed_chunks(runner, gal_crops, probe_crops, names, plan, quiet)
    finally:
        runner.close()


def _embed_chunks(runner: _Runner, gal_crops: np.ndarray, probe_crops: np.ndarray,
                  names: tuple[str, ...], plan: EmbedPlan, quiet: bool) -> Embeddings:
    n_gal, n_probe = len(gal_crops), len(probe_crops)
    step = max(4, min(64, math.ceil(n_probe / (runner.workers * 6))))
    gal_slices = _chunks(n_gal, max(step, 32))
    probe_slices = _chunks(n_probe, step)
    bar = tqdm(total=n_gal + n_probe, desc="embed gallery + probes", unit="face",
               disable=quiet, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
    sizes_of = [sl.stop - sl.start for sl in gal_slices] + [sl.stop - sl.start
                                                            for sl in probe_slices]

    def done(i: int) -> None:
        bar.update(sizes_of[i])

    fns: list[tuple[Any, ...]] = [(gal_crops[sl], plan.embedders) for sl in gal_slices]
    fns += [(_ProbeTask(probe_crops[sl], names[sl], plan.sizes, plan.burst, plan.computes,
                        plan.embedders, plan.seed),) for sl in probe_slices]
    gal_parts: list[dict[str, np.ndarray]] = []
    probe_parts: list[dict[EmbKey, np.ndarray]] = []

    try:
        results = runner.map(_dispatch, fns, done)
        for i, r in enumerate(results):
            (gal_parts if i < len(gal_slices) else probe_parts).append(r)
    finally:
        bar.close()
    gal_emb = {e: np.concatenate([p[e] for p in gal_parts]) for e in plan.embedders}
    keys = probe_parts[0].keys() if probe_parts else []
    probe_emb = {k: np.concatenate([p[k] for p in probe_parts]) for k in keys}
    return Embeddings(galleries=gal_emb, probes=probe_emb)


def _notify(on_done: Callable[[int], None], index: int, _future: Future[Any]) -> None:
    """Done-callback of one submitted task: report its index."""
    on_done(index)
