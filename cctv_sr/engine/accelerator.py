"""The accelerator stage: batches SR and embedding work, the only thread that touches a GPU.

:class:`Batcher` decides when to run a batch: at ``batch_size`` requests, or when the oldest
waiting request has waited ``max_wait_s`` (a deadline counted from that request's arrival, so
a steady trickle of requests cannot hold a batch back). :class:`Accelerator` runs one batch:
SR for every face that needs it (grouped by LR side), then LR and SR embeddings when identity
matching is on (and the LR identity head's vector of each LR crop when a head is given; large
faces, sent without SR, take the embedder's LR vector as theirs), and
turns each request into its result message.

Track windows (issue 10): a request carries the T aligned crops of its track around its face
(:mod:`cctv_sr.engine.temporal`). An SR model with a window of its own (``T > 1``) takes the
centre ``T`` slots itself; a single-frame model gets the window's robust fusion
(:func:`cctv_sr.sr.fuse.fuse_windows`, ``temporal.fuse = "robust"``) in place of the lone
crop; an LR head with ``T > 1`` embeds the window. Each result says how many frames it rests
on (``EnhancedFace.frames``, ``FaceVectors.frames``). The LR embedding is always of the face's
own crop. Results are built from their
own request, one by one, never by zipping lists that could shift; a backend that returns the
wrong number of rows raises :class:`~cctv_sr.errors.ContractError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cctv_sr.config import TemporalConfig
from cctv_sr.embed.base import FaceEmbedder
from cctv_sr.errors import ContractError
from cctv_sr.face.faceness import Faceness
from cctv_sr.records import (
    AlignedFace,
    AnalysisMessage,
    Embedded,
    EmbedRequest,
    EnhancedFace,
    FaceVectors,
    Saved,
    SaveRequest,
    TrackWindow,
    WriterMessage,
)
from cctv_sr.sr.base import SuperResolver
from cctv_sr.sr.fuse import fuse_windows

if TYPE_CHECKING:  # a head is built through the registry only when one is chosen
    from cctv_sr.embed.lrhead import LrHeadEmbedder


@dataclass
class AcceleratorStats:
    sr_faces: int = 0
    sr_batches: int = 0
    embedded_faces: int = 0
    head_faces: int = 0  # faces the LR identity head embedded
    sr_s: float = 0.0
    embed_s: float = 0.0  # embedder and faceness (the head's time is head_s)
    head_s: float = 0.0


class Batcher:
    """Collects messages in order; says when the requests among them make a batch.

    Only SR/embedding requests count towards ``batch_size`` and the deadline; other messages
    (track ends, untracked rows) wait in line behind waiting requests, so order is kept, and
    go on at once when no request waits.
    """

    def __init__(self, batch_size: int, max_wait_s: float) -> None:
        if batch_size < 1 or max_wait_s < 0:
            raise ContractError(f"Batcher needs batch_size >= 1 and max_wait_s >= 0, got "
                                f"{batch_size}, {max_wait_s}")
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self._pending: list[AnalysisMessage] = []
        self._requests = 0
        self._oldest: float | None = None  # arrival time of the oldest waiting request

    def add(self, item: AnalysisMessage, now: float | None = None) -> bool:
        """Queue ``item``; True when the batch should run now: it is full, the oldest request's
        deadline has passed, or no request waits (a track end or untracked rows cost nothing
        to pass on and must not wait for a face that may never come)."""
        now = time.monotonic() if now is None else now
        self._pending.append(item)
        if not isinstance(item, (SaveRequest, EmbedRequest)):
            return self._requests == 0
        self._requests += 1
        if self._oldest is None:
            self._oldest = now
        return self._requests >= self.batch_size or now - self._oldest >= self.max_wait_s

    def timeout(self, now: float | None = None) -> float | None:
        """Seconds until the oldest request's deadline (0 when due); None: nothing waits."""
        if self._oldest is None:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, self._oldest + self.max_wait_s - now)

    def take(self) -> list[AnalysisMessage]:
        """Everything queued, in arrival order; the batcher is empty afterwards."""
        out, self._pending = self._pending, []
        self._requests, self._oldest = 0, None
        return out

    def __len__(self) -> int:
        return len(self._pending)


@dataclass
class Accelerator:
    """Runs batches of requests through SR and (optionally) the embedder."""

    sr: SuperResolver
    out_size: int
    embedder: FaceEmbedder | None = None
    faceness: Faceness | None = None  # scores each embedded face's LR crop for the gate
    head: LrHeadEmbedder | None = None  # embeds each embedded face's LR crop (a third score)
    temporal: TemporalConfig = field(default_factory=lambda: TemporalConfig(frames=1))
    stats: AcceleratorStats = field(default_factory=AcceleratorStats)

    def run(self, batch: list[AnalysisMessage]) -> list[WriterMessage]:
        """The writer messages for ``batch``, in the same order."""
        requests = [m for m in batch if isinstance(m, (SaveRequest, EmbedRequest))]
        t0 = time.perf_counter()
        windows = [r.window if r.window is not None else TrackWindow.single(r.face)
                   for r in requests]
        enhanced = self.enhance(windows)
        t1 = time.perf_counter()
        head_s = self.stats.head_s
        vectors = self.embed(enhanced, windows)
        self.stats.sr_s += t1 - t0
        self.stats.embed_s += time.perf_counter() - t1 - (self.stats.head_s - head_s)
        done: dict[int, tuple[EnhancedFace, FaceVectors | None]] = {}
        for i, request in enumerate(requests):
            done[id(request)] = (enhanced[i], vectors[i] if vectors is not None else None)
        out: list[WriterMessage] = []
        for item in batch:
            if isinstance(item, SaveRequest):
                e, v = done[id(item)]
                out.append(Saved(e, item.evict, v))
            elif isinstance(item, EmbedRequest):
                e, v = done[id(item)]
                if v is not None:
                    out.append(Embedded(e.face, v))
            else:
                out.append(item)
        return out

    def enhance(self, items: list[TrackWindow] | list[AlignedFace]) -> list[EnhancedFace]:
        """SR for every face that needs it (a bare face stands for its single-frame window),
        batched by LR side; large faces pass through.

        Returns exactly one EnhancedFace per input, in input order.
        """
        windows = [w if isinstance(w, TrackWindow) else TrackWindow.single(w) for w in items]
        faces = [w.centre for w in windows]
        result: list[EnhancedFace | None] = [None] * len(faces)
        by_side: dict[int, list[int]] = {}
        for i, face in enumerate(faces):
            side = face.crop.shape[0]
            if side >= self.out_size:
                result[i] = EnhancedFace(face, face.crop, "none")
            else:
                by_side.setdefault(side, []).append(i)
        for side, idx in by_side.items():
            images, frames, tag = self._upscale([windows[i] for i in idx])
            want = (len(idx), self.out_size, self.out_size, 3)
            if tuple(np.shape(images)) != want:
                raise ContractError(f"SR backend {self.sr.name!r} returned shape "
                                    f"{np.shape(images)} for {len(idx)} crops of {side} px; "
                                    f"expected {want}")
            method = self.sr.describe(side, self.out_size) + tag
            for i, image, n in zip(idx, images, frames, strict=True):
                result[i] = EnhancedFace(faces[i], image, method, int(n))
            self.stats.sr_faces += len(idx)
            self.stats.sr_batches += 1
        out = [r for r in result if r is not None]
        if len(out) != len(faces):  # every slot is filled above; this guards a future edit
            raise ContractError(f"enhance: {len(faces)} faces in, {len(out)} results out")
        return out

    def _upscale(self, windows: list[TrackWindow]) -> tuple[np.ndarray, list[int], str]:
        """SR of windows of one side: (images, frames each rests on, method suffix)."""
        t = self.sr.window
        if t > 1:  # the model fuses the window itself (a still fills every slot)
            crops, valid = centre_slots(windows, t)
            return (self.sr.upscale_windows(crops, self.out_size), valid.sum(1).tolist(),
                    f"+window{t}")
        t = self.temporal.frames
        if t > 1 and self.temporal.fuse == "robust" and max(len(w.valid) for w in windows) > 1:
            crops, valid = centre_slots(windows, t)
            fused = fuse_windows(crops, valid, self.temporal.sigma)
            return (self.sr.upscale(fused, self.out_size), valid.sum(1).tolist(),
                    f"+fused{t}")
        return (self.sr.upscale(np.stack([w.centre.crop for w in windows]), self.out_size),
                [1] * len(windows), "")

    def embed(self, enhanced: list[EnhancedFace],
              windows: list[TrackWindow] | None = None) -> list[FaceVectors] | None:
        """Identity vectors from each face's LR crop and its SR crop (and, with a head, the
        head's from the LR crop, or from its window for a head with ``T > 1``; a face whose
        crop is at least ``out_size``, sent without SR, gets the embedder's LR vector as its
        head vector); None without embedder."""
        if self.embedder is None:
            return None
        if not enhanced:
            return []
        if windows is None:
            windows = [TrackWindow.single(e.face) for e in enhanced]
        lr: list[np.ndarray | None] = [None] * len(enhanced)
        head: list[np.ndarray | None] = [None] * len(enhanced)
        frames = [e.frames for e in enhanced]
        by_side: dict[int, list[int]] = {}
        for i, e in enumerate(enhanced):
            by_side.setdefault(e.face.crop.shape[0], []).append(i)
        for idx in by_side.values():
            crops = np.stack([enhanced[i].face.crop for i in idx])
            vecs = self._checked(self.embedder.embed(crops), len(idx))
            for i, v in zip(idx, vecs, strict=True):
                lr[i] = v
            if self.head is None:
                continue
            if crops.shape[1] >= self.out_size:
                # a large face (sent without SR): the head was trained on 12-40 px crops, so
                # the embedder's own LR vector (the head's space) is its head vector
                for i, v in zip(idx, vecs, strict=True):
                    head[i] = v
                continue
            t0 = time.perf_counter()
            if self.head.window > 1:
                wins, valid = centre_slots([windows[i] for i in idx], self.head.window)
                vectors = self._head(wins, windows=True)
                for i, n in zip(idx, valid.sum(1).tolist(), strict=True):
                    frames[i] = max(frames[i], int(n))
            else:
                vectors = self._head(crops)
            for i, v in zip(idx, vectors, strict=True):
                head[i] = v
            self.stats.head_s += time.perf_counter() - t0
            self.stats.head_faces += len(idx)
        sr = self._checked(self.embedder.embed(np.stack([e.sr for e in enhanced])),
                           len(enhanced))
        if self.faceness is not None:
            faceness = np.asarray(self.faceness.score([e.face.crop for e in enhanced]), np.float32)
            if faceness.shape != (len(enhanced),):
                raise ContractError(f"faceness returned shape {faceness.shape} for "
                                    f"{len(enhanced)} crops")
        else:
            faceness = np.full(len(enhanced), np.nan, np.float32)
        self.stats.embedded_faces += len(enhanced)
        return [FaceVectors(a, b, float(f), h, n)
                for a, b, f, h, n in zip(lr, sr, faceness, head, frames, strict=True)
                if a is not None]

    def _head(self, crops: np.ndarray, windows: bool = False) -> np.ndarray:
        if self.head is None:  # only called with a head; this guards a future edit
            raise ContractError("no LR identity head")
        vectors = self.head.embed_windows(crops) if windows else self.head.embed(crops)
        want = (len(crops), self.head.dim)
        if np.shape(vectors) != want:
            raise ContractError(f"LR head {self.head.name!r} returned shape {np.shape(vectors)} "
                                f"for {len(crops)} crops of {crops.shape[1]} px; expected {want}")
        return vectors

    def _checked(self, vectors: np.ndarray, n: int) -> np.ndarray:
        if self.embedder is None or np.ndim(vectors) != 2 or len(vectors) != n:
            name = getattr(self.embedder, "name", "?")
            raise ContractError(f"embedder {name!r} returned shape {np.shape(vectors)} for "
                                f"{n} crops; expected ({n}, D)")
        return vectors


def centre_slots(windows: list[TrackWindow], t: int) -> tuple[np.ndarray, np.ndarray]:
    """The centre ``t`` slots of each window: crops ``(N, t, S, S, 3)``, valid ``(N, t)``; a
    window shorter than ``t`` (a still) fills the missing slots with its centre, invalid."""
    crops, valid = [], []
    for w in windows:
        n = len(w.valid)
        if n >= t:
            lo = n // 2 - t // 2
            crops.append(w.crops[lo:lo + t])
            valid.append(w.valid[lo:lo + t])
        else:
            c = np.broadcast_to(w.centre.crop, (t, *w.centre.crop.shape))
            v = np.zeros(t, bool)
            v[t // 2] = True
            crops.append(c)
            valid.append(v)
    return np.stack(crops), np.stack(valid)
