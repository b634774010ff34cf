"""``cctv-sr eval calibrate``: an embedder's match thresholds at FAR 1e-2 and 1e-3.

On an LFW-style tree (the same eligible identities and images as ``eval identify``), every
image is oracle-aligned at full resolution and embedded; genuine pairs are every two images of
one identity, impostor pairs every two images of different identities. The threshold at a FAR
is the impostor score that a fraction FAR of impostor pairs reach. The figures go into the
embedder's manifest (``[spec] threshold_far_1e-2 / threshold_far_1e-3``), which is where
``cctv-sr run --gallery`` reads its default from (docs/EVAL.md section 1c).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cctv_sr.config import EmbedderConfig
from cctv_sr.data.lfw import scan_tree
from cctv_sr.embed import create_embedder
from cctv_sr.errors import ConfigError
from cctv_sr.evaluate.metrics import threshold_at_far
from cctv_sr.evaluate.oracle import align_all, eval_cache_dir, pick_detector


@dataclass(frozen=True)
class Calibration:
    embedder: str
    version: str
    detector: str
    images: int
    identities: int
    genuine_pairs: int
    impostor_pairs: int
    threshold_far_1e2: float
    threshold_far_1e3: float
    tar_at_far_1e2: float
    tar_at_far_1e3: float
    seconds: float

    def manifest_snippet(self) -> str:
        return (f"threshold_far_1e-2 = {self.threshold_far_1e2:.4f}\n"
                f"threshold_far_1e-3 = {self.threshold_far_1e3:.4f}\n"
                f'threshold_calibration = "cctv-sr eval calibrate: {self.images} HR images of '
                f"{self.identities} identities, {self.impostor_pairs} impostor pairs, "
                f'{self.detector} oracle alignment"\n')


def pair_scores(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor cosine scores over all unordered pairs of rows."""
    sims = emb @ emb.T
    iu = np.triu_indices(len(emb), k=1)
    same = labels[iu[0]] == labels[iu[1]]
    scores = sims[iu]
    return scores[same], scores[~same]


def calibrate(root: Path, embedder_name: str, max_identities: int = 0, quiet: bool = False,
              batch: int = 64) -> Calibration:
    """Thresholds of ``embedder_name`` on the tree at ``root`` (see the module docstring)."""
    t0 = time.perf_counter()
    identities = scan_tree(root)
    if max_identities:
        identities = identities[:max_identities]
    paths = [p for ident in identities for p in ident.images]
    labels = np.array([i for i, ident in enumerate(identities) for _ in ident.images])
    detector = pick_detector()
    crops, found = align_all(Path(root), paths, detector, cache=eval_cache_dir(), quiet=quiet)
    crops, labels = crops[found], labels[found]
    if len(np.unique(labels)) < 2:
        raise ConfigError(f"--data {root}: need faces of at least two identities")
    embedder = create_embedder(EmbedderConfig(name=embedder_name))
    emb = np.concatenate([embedder.embed(crops[i:i + batch])
                          for i in range(0, len(crops), batch)])
    genuine, impostor = pair_scores(emb, labels)
    if len(genuine) == 0:
        raise ConfigError(f"--data {root}: no identity has two images with a face")
    t2, t3 = threshold_at_far(impostor, 1e-2), threshold_at_far(impostor, 1e-3)
    return Calibration(
        embedder=embedder.name, version=embedder.version, detector=detector.name,
        images=len(crops), identities=len(np.unique(labels)), genuine_pairs=len(genuine),
        impostor_pairs=len(impostor), threshold_far_1e2=float(t2), threshold_far_1e3=float(t3),
        tar_at_far_1e2=float((genuine >= t2).mean()), tar_at_far_1e3=float((genuine >= t3).mean()),
        seconds=time.perf_counter() - t0,
    )
