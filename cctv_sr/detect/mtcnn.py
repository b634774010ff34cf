"""MTCNN face detector in PyTorch, with the weights of the ``mtcnn`` PyPI package (MIT).

The embedded default: it needs no model files. The cascade is batched: P-Net runs on each
pyramid level of all same-size frames as one tensor; R-Net and O-Net each run once on the
candidates of every frame of the call.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cctv_sr.config import DetectorConfig
from cctv_sr.detect.base import FaceDetector, check_images, chunked, group_by_shape
from cctv_sr.detect.boxes import batched_nms, finalize, square
from cctv_sr.detect.mtcnn_weights import build_nets, load_all
from cctv_sr.records import FaceDetections

log = logging.getLogger(__name__)

CELL = 12  # P-Net window side in pyramid pixels
STRIDE = 2  # P-Net output stride
SCALE_FACTOR = 0.709  # pyramid step
PNET_BUDGET = {"cpu": 1 << 18, "cuda": 1 << 26}  # input pixels per P-Net call (cache/memory)
MAX_PROPOSALS = 2000  # P-Net candidates kept per frame after NMS
# R-Net / O-Net crops per forward call, by device type (small on CPU: stays in cache)
NET_CHUNK = {"cpu": {24: 256, 48: 64}, "cuda": {24: 8192, 48: 2048}}


def torch_device(spec: str) -> torch.device:
    """``cpu``/``cuda``/``cuda:N`` as a torch device; CUDA falls back to CPU with a warning."""
    if spec.startswith("cuda"):
        if torch.cuda.is_available():
            return torch.device(spec)
        log.warning("device %r requested but torch has no CUDA here; using the CPU", spec)
    return torch.device("cpu")


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks, e.g. in containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with at most ``n`` intra-op threads (None: the CPUs available to this process),
    restoring torch's setting afterwards. Never raises the thread count."""
    before = torch.get_num_threads()
    want = min(before, n if n else available_cpus())
    if want == before:
        yield
        return
    torch.set_num_threads(want)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Candidates:
    """Column store of per-stage candidates across all frames of one call."""

    def __init__(self, frame: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> None:
        self.frame, self.boxes, self.scores = frame, boxes, scores

    def take(self, index: np.ndarray) -> _Candidates:
        return _Candidates(self.frame[index], self.boxes[index], self.scores[index])

    def __len__(self) -> int:
        return int(self.frame.shape[0])


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply MTCNN box offsets (fractions of the box side) to ``x1, y1, x2, y2``."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return boxes + offsets * np.stack([w, h, w, h], axis=1)


class MtcnnDetector(FaceDetector):
    """MTCNN (P-Net, R-Net, O-Net) with 5 landmarks.

    ``model_path`` may name a directory holding ``pnet.lz4``, ``rnet.lz4``, ``onet.lz4``;
    by default the files inside the installed ``mtcnn`` package are used.
    ``cfg.score_thresh`` is the O-Net probability cut; ``pnet_thresh`` and ``rnet_thresh``
    are the earlier stages' cuts (the reference 0.6/0.7 already pass 13-16 px faces).
    ``num_threads`` caps torch's intra-op threads during each call (default: the CPUs this
    process may use); torch's global setting is restored afterwards.
    """

    name = "mtcnn"
    track_high_thresh = 0.7
    track_new_thresh = 0.8

    def __init__(
        self,
        cfg: DetectorConfig,
        model_path: Path | None = None,
        *,
        pnet_thresh: float = 0.6,
        rnet_thresh: float = 0.7,
        num_threads: int | None = None,
    ) -> None:
        super().__init__(cfg, model_path)
        self.device = torch_device(cfg.device)
        self.pnet_thresh = float(pnet_thresh)
        self.rnet_thresh = float(rnet_thresh)
        self.num_threads = num_threads
        arrays, files = load_all(self.model_path)
        self.pnet, self.rnet, self.onet = build_nets(arrays, self.device)
        # torch's stubs lack Module.to(memory_format=...), which torch supports at runtime
        self.pnet.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.pnet_budget = PNET_BUDGET.get(self.device.type, PNET_BUDGET["cpu"])
        self.net_chunk = NET_CHUNK.get(self.device.type, NET_CHUNK["cpu"])
        self.model_files = files
        log.info("mtcnn on %s (weights %s)", self.device, files[0].parent)

    # -- public ---------------------------------------------------------------------------

    def detect(self, images: Sequence[np.ndarray]) -> list[FaceDetections]:
        """Faces in each image (see :meth:`FaceDetector.detect`)."""
        images = check_images(images)
        if not images:
            return []
        with torch.inference_mode(), torch_threads(self.num_threads):
            frames: list[torch.Tensor] = [torch.empty(0)] * len(images)
            found: list[_Candidates] = []
            for idxs in group_by_shape(images).values():
                for chunk in chunked(idxs, self.cfg.batch_size):
                    batch = self._to_tensor([images[i] for i in chunk])
                    for j, i in enumerate(chunk):
                        frames[i] = batch[j]
                    cand = self._stage_p(batch)
                    cand.frame = np.asarray(chunk, np.int64)[cand.frame]
                    found.append(cand)
            cand = _Candidates(
                np.concatenate([c.frame for c in found]),
                np.concatenate([c.boxes for c in found]),
                np.concatenate([c.scores for c in found]),
            )
            cand = self._stage_r(frames, cand)
            cand, kps = self._stage_o(frames, cand)
        out = []
        for i, image in enumerate(images):
            sel = cand.frame == i
            out.append(finalize(
                cand.boxes[sel], cand.scores[sel], kps[sel],
                width=image.shape[1], height=image.shape[0],
                score_thresh=self.cfg.score_thresh, nms_thresh=self.cfg.nms_thresh,
            ))
        return out

    # -- stages ---------------------------------------------------------------------------

    def _to_tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        """(B,3,H,W) float RGB in [-1, 1] on the device."""
        x = torch.from_numpy(np.stack(images)).to(self.device)
        x = x.flip(-1).permute(0, 3, 1, 2).float()
        return x.sub_(127.5).mul_(1.0 / 128.0).contiguous()

    def _scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales: the first maps ``min_face_px`` to the 12-px cell."""
        scale = CELL / float(self.cfg.min_face_px)
        scales = []
        while min(height, width) * scale >= CELL:
            scales.append(scale)
            scale *= SCALE_FACTOR
        return scales

    def _stage_p(self, batch: torch.Tensor) -> _Candidates:
        """P-Net over the pyramid of a same-size batch; squared proposals per frame."""
        height, width = int(batch.shape[2]), int(batch.shape[3])
        frames, boxes, offsets, scores = [], [], [], []
        for scale in self._scales(height, width):
            hs, ws = max(CELL, round(height * scale)), max(CELL, round(width * scale))
            level = batch
            if (hs, ws) != (height, width):
                level = F.interpolate(batch, size=(hs, ws), mode="bilinear",
                                      align_corners=False, antialias=hs < height)
            level = level.contiguous(memory_format=torch.channels_last)
            sy, sx = hs / height, ws / width
            for first, row0, reg, prob in self._pnet_pieces(level):
                hit = (prob > self.pnet_thresh).nonzero()
                if hit.shape[0] == 0:
                    continue
                b, y, x = hit[:, 0], hit[:, 1], hit[:, 2]
                score = prob[b, y, x].cpu().numpy()
                off = reg[b, :, y, x].cpu().numpy()
                nb, ny, nx = (t.cpu().numpy() for t in (b, y + row0, x))
                win = np.stack([nx * STRIDE / sx, ny * STRIDE / sy,
                                (nx * STRIDE + CELL) / sx, (ny * STRIDE + CELL) / sy], axis=1)
                keep = batched_nms(win, score, nb, 0.5)
                frames.append(nb[keep] + first)
                boxes.append(win[keep])
                offsets.append(off[keep])
                scores.append(score[keep])
        if not frames:
            return _Candidates(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
        frame, box = np.concatenate(frames), np.concatenate(boxes)
        off, score = np.concatenate(offsets), np.concatenate(scores)
        keep = batched_nms(box, score, frame, 0.7)
        keep = self._cap_per_frame(frame[keep], keep)
        box = square(_regress(box[keep], off[keep]))
        return _Candidates(frame[keep], box, score[keep])

    def _pnet_pieces(
        self, level: torch.Tensor
    ) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
        """P-Net over one pyramid level in pieces of at most ``pnet_budget`` input pixels.

        Small levels go in as many frames per call as fit (all of them on a GPU); levels
        larger than the budget run in horizontal strips, which keeps activations in the CPU
        cache and gives results identical to one call. Yields (first frame, first output
        row, box offsets, face prob).
        """
        n, _, h, w = (int(v) for v in level.shape)
        if h * w <= self.pnet_budget:
            per = max(1, self.pnet_budget // (h * w))
            for f in range(0, n, per):
                reg, prob = self.pnet(level[f:f + per])
                yield f, 0, reg, prob
            return
        h_out = (h - 1) // 2 - 4  # P-Net output rows for h input rows
        rows = max(8, (self.pnet_budget // w - 10) // 2)
        for f in range(n):
            for y0 in range(0, h_out, rows):
                y1 = min(h_out, y0 + rows)
                stop = h if y1 == h_out else STRIDE * y1 + CELL - STRIDE
                reg, prob = self.pnet(level[f:f + 1, :, STRIDE * y0:stop])
                yield f, y0, reg, prob

    @staticmethod
    def _cap_per_frame(frame: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """At most MAX_PROPOSALS of ``keep`` (already best first) per frame."""
        if keep.shape[0] <= MAX_PROPOSALS:
            return keep
        rank = np.zeros_like(frame)
        for f in np.unique(frame):
            sel = frame == f
            rank[sel] = np.arange(int(sel.sum()))
        return keep[rank < MAX_PROPOSALS]

    def _stage_r(self, frames: list[torch.Tensor], cand: _Candidates) -> _Candidates:
        """R-Net on all proposals of all frames; refined, squared boxes."""
        if len(cand) == 0:
            return cand
        offsets, prob = self._run(self.rnet, frames, cand, 24)
        cand = _Candidates(cand.frame, _regress(cand.boxes, offsets[0]), prob)
        cand = cand.take(np.nonzero(prob > self.rnet_thresh)[0])
        cand = cand.take(batched_nms(cand.boxes, cand.scores, cand.frame, 0.7))
        cand.boxes = square(cand.boxes)
        return cand

    def _stage_o(
        self, frames: list[torch.Tensor], cand: _Candidates
    ) -> tuple[_Candidates, np.ndarray]:
        """O-Net on all R-Net boxes; final boxes, probabilities and (N,5,2) landmarks."""
        if len(cand) == 0:
            return cand, np.zeros((0, 5, 2), np.float32)
        (off, lmk), prob = self._run(self.onet, frames, cand, 48)
        w = (cand.boxes[:, 2] - cand.boxes[:, 0])[:, None]
        h = (cand.boxes[:, 3] - cand.boxes[:, 1])[:, None]
        kps = np.stack([cand.boxes[:, :1] + w * lmk[:, :5],
                        cand.boxes[:, 1:2] + h * lmk[:, 5:]], axis=2)
        out = _Candidates(cand.frame, _regress(cand.boxes, off), prob)
        keep = np.nonzero(prob >= self.cfg.score_thresh)[0]
        out, kps = out.take(keep), kps[keep]
        # drop boxes lying mostly inside a better face (IoU alone misses them)
        keep = batched_nms(out.boxes, out.scores, out.frame, 0.7, mode="min")
        return out.take(keep), kps[keep]

    def _run(
        self, net: torch.nn.Module, frames: list[torch.Tensor], cand: _Candidates, size: int
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Crop every candidate to ``size`` and run ``net``; (regression outputs, prob)."""
        crops = self._crops(frames, cand, size)
        heads: list[list[np.ndarray]] = []
        probs: list[np.ndarray] = []
        step = self.net_chunk[size]
        for start in range(0, crops.shape[0], step):
            *reg, prob = net(crops[start:start + step])
            heads.append([r.float().cpu().numpy() for r in reg])
            probs.append(prob.float().cpu().numpy())
        regs = [np.concatenate([h[k] for h in heads]).astype(np.float64)
                for k in range(len(heads[0]))]
        return regs, np.concatenate(probs).astype(np.float64)

    def _crops(self, frames: list[torch.Tensor], cand: _Candidates, size: int) -> torch.Tensor:
        """(N,3,size,size) bilinear crops of the candidate boxes (outside the frame: 0).

        A box more than twice the crop size is sampled from a 2x/4x/8x box-filtered copy of
        its frame (a mipmap), so large faces are not aliased and cost no more than small ones.
        """
        out = torch.empty((len(cand), 3, size, size), device=self.device)
        side = np.maximum(cand.boxes[:, 2] - cand.boxes[:, 0], cand.boxes[:, 3] - cand.boxes[:, 1])
        mip = np.exp2(np.clip(np.floor(np.log2(np.maximum(side / size, 1.0))), 0, 3))
        mip = mip.astype(np.int64)
        t = (torch.arange(size, device=self.device, dtype=torch.float64) + 0.5) / size
        for f in np.unique(cand.frame):
            for m in np.unique(mip[cand.frame == f]):
                image = frames[int(f)][None]
                if m > 1:
                    image = F.avg_pool2d(image, int(m), ceil_mode=True)
                height, width = image.shape[-2:]
                idx = np.nonzero((cand.frame == f) & (mip == m))[0]
                b = torch.from_numpy(cand.boxes[idx] / float(m)).to(self.device)
                xs = (b[:, :1] + t * (b[:, 2:3] - b[:, :1])) * (2.0 / width) - 1.0
                ys = (b[:, 1:2] + t * (b[:, 3:4] - b[:, 1:2])) * (2.0 / height) - 1.0
                grid = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]),
                                   dim=-1).float().reshape(1, -1, size, 2)
                crop = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros",
                                     align_corners=False)
                out[torch.from_numpy(idx).to(self.device)] = (
                    crop.reshape(3, idx.shape[0], size, size).transpose(0, 1))
        return out
