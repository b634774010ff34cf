"""Tiny trained checkpoints for tests that need a real LR identity head (CPU, seconds).

The training set is synthetic, as in test_train.py: smooth random colour fields in the trainset
cache format (raw codec), no faces. A head trained on it is a real ``cctv-sr train`` checkpoint
of ``lrhead`` distilled from the shipped MobileFaceNet, just not a useful one.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.train import recipe_from_mapping, train

TINY = {
    "lrhead": {"stem_channels": 8, "stages": [[16, 1, 2], [16, 1, 2]], "head_channels": 32,
               "in_side": 16},
    "lrnet": {"channels": 8, "blocks": 1, "up_channels": 8},
}


def write_trainset(path: Path, n: int = 40, groups: int = 20) -> Path:
    """A cache file in the trainset format (codec raw) of ``n`` synthetic 128 crops."""
    rng = np.random.default_rng(7)
    crops = np.empty((n, 128, 128, 3), np.uint8)
    for i in range(n):
        low = rng.uniform(0, 255, (6, 6, 3)).astype(np.float32)
        img = cv2.resize(low, (128, 128), interpolation=cv2.INTER_CUBIC)
        img += rng.normal(0, 8, img.shape).astype(np.float32)
        crops[i] = np.clip(img, 0, 255).astype(np.uint8)
    names = np.array([f"synthetic_{g:02d}.jpg" for g in range(groups)])
    meta = {"version": 1, "count": n, "counts": {"utkface": n, "clip": 0, "lfw": 0},
            "groups": groups, "detector": "none", "detector_sha256": "", "aligner": "synthetic",
            "codec": "raw", "params": {}, "skipped": {}, "excluded": {}, "build_key": "test",
            "seconds": 0.0}
    np.savez(path, data=crops.reshape(-1), offsets=np.zeros(1, np.int64),
             group=(np.arange(n) % groups).astype(np.int32), group_names=names,
             source=np.zeros(n, np.int8), native_px=np.full(n, 128, np.float32),
             frame=np.full(n, -1, np.int32), path_sha=np.array([b"0" * 16] * n, "S16"),
             meta=np.array(json.dumps(meta)))
    return path


def train_tiny(arch: str, folder: Path, steps: int = 2) -> Path:
    """``folder/run/last.pt``: ``steps`` steps of a tiny ``arch`` on a synthetic trainset."""
    folder.mkdir(parents=True, exist_ok=True)
    trainset = write_trainset(folder / "trainset.npz", n=24, groups=12)
    data = {
        "arch": {"name": arch, "config": TINY[arch]},
        "data": {"trainset": str(trainset), "val_fraction": 0.3, "val_faces": 6,
                 "val_sides": [16], "teacher_cache": str(folder / "teacher")},
        "loss": {} if arch == "lrhead" else {"identity_weight": 0.1},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "run": {"steps": steps, "batch_size": 4, "val_every": steps, "ckpt_every": steps,
                "log_every": 1, "ema_decay": 0.9, "out_dir": str(folder / "run"),
                "threads": 1, "prefetch": 0},
    }
    return train(recipe_from_mapping(data), quiet=True).checkpoint.parent / "last.pt"
