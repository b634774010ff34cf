"""Training batches, the fixed validation set and the cached teacher embeddings.

Training batches are random HR crops of the train split (drawn with replacement), degraded on
the fly with the augment family (:func:`cctv_sr.data.augment.degrade_batch`: one LR side per
batch, everything else per sample). Every draw comes from ONE numpy generator; each batch
carries the generator state after it was drawn, so a checkpoint records exactly where the data
stream stands, even when a background thread has degraded batches ahead (``run.prefetch``): a
resumed run restarts the stream from that state and sees the same batches.

The validation faces are fixed for a run: the first ``data.val_faces`` of a seeded permutation
of the val split, each at one of ``data.val_sides`` (cycled), degraded once with a generator
seeded by ``data.val_seed``.

Teacher embeddings (lrhead distillation) are MobileFaceNet's embeddings of every HR crop, made
once per training file and embedder and kept in ``<cache>/train/teacher/<key>.npy``, the key
being the sha256 of the trainset file and of the embedder weights.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cctv_sr.data.augment import DegradeConfig, degrade_batch
from cctv_sr.errors import ContractError

log = logging.getLogger(__name__)

__all__ = ["Batch", "BatchStream", "ValSet", "make_val_set", "teacher_embeddings", "to_input",
           "to_image"]


@dataclass(frozen=True)
class Batch:
    """One training batch: ``lr`` (N, T, s, s, 3) and ``hr`` (N, 128, 128, 3) BGR uint8, the
    trainset rows ``index``, the generator state after drawing it (JSON) and the seconds spent
    drawing and degrading it."""

    lr: np.ndarray
    hr: np.ndarray
    index: np.ndarray
    rng_state: str
    degrade_s: float


def rng_from_state(seed: int, state: str | None) -> np.random.Generator:
    """A PCG64 generator: seeded, or restored from a JSON state."""
    rng = np.random.default_rng(seed)
    if state is not None:
        rng.bit_generator.state = json.loads(state)
    return rng


def rng_state(rng: np.random.Generator) -> str:
    """The generator state as JSON (its 128-bit integers survive as JSON numbers)."""
    return json.dumps(rng.bit_generator.state)


def draw_batch(crops: np.ndarray, train_idx: np.ndarray, rng: np.random.Generator,
               batch_size: int, frames: int, side: int, cfg: DegradeConfig) -> Batch:
    """Draw and degrade one batch with ``rng`` (``side`` 0 = drawn from the config)."""
    t0 = time.perf_counter()
    index = train_idx[rng.integers(0, len(train_idx), batch_size)]
    hr = crops[index]
    lr, _ = degrade_batch(hr, rng, cfg, frames=frames, side=side or None)
    if frames <= 1:
        lr = lr[:, None]
    return Batch(lr, hr, index, rng_state(rng), time.perf_counter() - t0)


class BatchStream:
    """An endless stream of batches from one generator, optionally degraded ahead by a
    daemon thread (``prefetch`` batches). Call :meth:`close` when done."""

    def __init__(self, crops: np.ndarray, train_idx: np.ndarray, *, batch_size: int,
                 frames: int, side: int, cfg: DegradeConfig, seed: int,
                 state: str | None = None, prefetch: int = 0) -> None:
        if len(train_idx) == 0:
            raise ContractError("training split is empty")
        self._crops, self._train_idx = crops, train_idx
        self._batch_size, self._frames, self._side, self._cfg = batch_size, frames, side, cfg
        self._rng = rng_from_state(seed, state)
        self._queue: queue.Queue[Batch | BaseException] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if prefetch > 0:
            self._queue = queue.Queue(maxsize=prefetch)
            self._thread = threading.Thread(target=self._produce, args=(self._queue,),
                                            name="train-batches", daemon=True)
            self._thread.start()

    def _draw(self) -> Batch:
        return draw_batch(self._crops, self._train_idx, self._rng, self._batch_size,
                          self._frames, self._side, self._cfg)

    def _produce(self, out: queue.Queue[Batch | BaseException]) -> None:
        while not self._stop.is_set():
            try:
                item: Batch | BaseException = self._draw()
            except BaseException as exc:  # handed to the consumer, which re-raises it
                item = exc
            while not self._stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def next(self) -> Batch:
        """The next batch (raises what the producer raised)."""
        if self._queue is None:
            return self._draw()
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


@dataclass(frozen=True)
class ValSet:
    """Fixed validation faces: trainset rows ``index``, their HR crops, their groups, and per
    LR side the positions (into ``index``) and the degraded windows (m, T, s, s, 3)."""

    index: np.ndarray
    hr: np.ndarray
    group: np.ndarray
    by_side: tuple[tuple[int, np.ndarray, np.ndarray], ...]  # (side, positions, lr)

    def centre_lr(self, k: int) -> np.ndarray:
        """The centre LR frame (s, s, 3) of val face ``k`` (a position into ``index``)."""
        for _, pos, lr in self.by_side:
            hit = np.flatnonzero(pos == k)
            if len(hit):
                window = lr[hit[0]]
                return np.asarray(window[len(window) // 2])
        raise ContractError(f"val face {k} out of range ({len(self.index)})")


def make_val_set(crops: np.ndarray, group: np.ndarray, val_idx: np.ndarray, *,
                 count: int, sides: tuple[int, ...], frames: int, cfg: DegradeConfig,
                 seed: int) -> ValSet:
    """The run's validation faces, degraded once (same seed, same faces, same pixels)."""
    if len(val_idx) == 0:
        raise ContractError("validation split is empty (raise data.val_fraction)")
    rng = np.random.default_rng(seed)
    index = rng.permutation(val_idx)[:count]
    side_of = np.array([sides[i % len(sides)] for i in range(len(index))])
    by_side = []
    for s in sides:
        pos = np.flatnonzero(side_of == s)
        if len(pos) == 0:
            continue
        lr, _ = degrade_batch(crops[index[pos]], rng, cfg, frames=frames, side=s)
        by_side.append((s, pos, lr if frames > 1 else lr[:, None]))
    return ValSet(index, crops[index], group[index], tuple(by_side))


def to_input(lr: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, T, s, s, 3) uint8 -> the nets' input (N, T*3, s, s) float BGR in [0, 1]."""
    n, t, s = lr.shape[0], lr.shape[1], lr.shape[2]
    x = torch.from_numpy(np.ascontiguousarray(lr)).to(device)
    return x.permute(0, 1, 4, 2, 3).reshape(n, t * 3, s, s).float().div_(255.0)


def to_image(hr: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float BGR in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(hr)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def teacher_embeddings(trainset_path: Path, crops: np.ndarray, embed: object,
                       embedder_path: Path, cache_dir: Path, device: torch.device,
                       batch: int = 64) -> np.ndarray:
    """(N, 128) float32 unit teacher embeddings of every HR crop, cached by file hashes.
    ``embed`` is a callable on (n, 3, 128, 128) BGR [0, 1] tensors (FaceIdentity.embed)."""
    from cctv_sr.models.resolve import sha256_file

    key = f"{sha256_file(trainset_path)[:20]}_{sha256_file(embedder_path)[:12]}"
    path = Path(cache_dir) / f"{key}.npy"
    if path.is_file():
        cached = np.load(path, allow_pickle=False)
        if cached.shape[0] == len(crops):
            log.info("teacher embeddings from %s", path)
            return np.asarray(cached, np.float32)
        log.warning("%s: %d rows for %d crops; embedding again", path, len(cached), len(crops))
    if not callable(embed):
        raise ContractError("teacher_embeddings: embed must be callable")
    t0 = time.perf_counter()
    out = np.zeros((len(crops), 128), np.float32)
    with torch.inference_mode():
        for start in range(0, len(crops), batch):
            part = slice(start, start + batch)
            out[part] = embed(to_image(crops[part], device)).cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        np.save(tmp, out)
    os.replace(tmp.name, path)
    log.info("teacher embeddings of %d crops in %.1f s -> %s", len(crops),
             time.perf_counter() - t0, path)
    return out
