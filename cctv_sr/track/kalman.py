"""Kalman filter on (cx, cy, aspect, height), one box per filter: constant velocity for the
centre, a random walk for the size.

A face's size changes slowly, and a size velocity learnt from one bad box (a squashed detection)
shrank carried boxes frame after frame until they no longer covered the face; so the size is
predicted to stay as it is and follows the detections only.
"""

from __future__ import annotations

import numpy as np

# Noise scaled by box height, as is usual for pedestrian/face trackers: a box twice as large
# moves (in pixels) about twice as far between frames.
_STD_POS = 1.0 / 20.0
_STD_VEL = 1.0 / 160.0
# What is known of a new track's velocity: nothing much. A face walking across the view moves
# 0.2-0.4 of its height per frame at 25 fps (a pedestrian's body box, which the usual 10/160
# was tuned for, about a quarter of that); with the smaller prior a track seen twice predicted
# a fifth of its speed, and its carried boxes fell off the face within three frames.
_STD_VEL_INIT = 1.0 / 4.0
_MOVING = (0, 1)  # state components that move with their velocity (the centre)


def xyxy_to_xyah(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(x2 - x1, 1e-3), max(y2 - y1, 1e-3)
    return np.array([x1 + w / 2, y1 + h / 2, w / h, h], dtype=np.float64)


def xyah_to_xyxy(state: np.ndarray) -> np.ndarray:
    cx, cy, a, h = (float(v) for v in state[:4])
    w = a * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32)


class BoxKalman:
    """State: cx, cy, a, h and their velocities (per analysed frame)."""

    def __init__(self, box_xyxy: np.ndarray) -> None:
        z = xyxy_to_xyah(box_xyxy)
        self.mean = np.concatenate([z, np.zeros(4)])
        h = z[3]
        std = [2 * _STD_POS * h, 2 * _STD_POS * h, 1e-2, 2 * _STD_POS * h,
               _STD_VEL_INIT * h, _STD_VEL_INIT * h, 1e-5, 10 * _STD_VEL * h]
        self.cov = np.diag(np.square(std))
        self._F = np.eye(8)
        for i in _MOVING:
            self._F[i, i + 4] = 1.0
        self._H = np.eye(4, 8)

    def predict(self, steps: float = 1.0) -> None:
        """Advance ``steps`` analysed frames (fractional steps allowed)."""
        F = self._F.copy()
        for i in _MOVING:
            F[i, i + 4] = steps
        h = max(self.mean[3], 1e-3)
        std = [_STD_POS * h, _STD_POS * h, 1e-2, _STD_POS * h,
               _STD_VEL * h, _STD_VEL * h, 1e-5, _STD_VEL * h]
        Q = np.diag(np.square(std)) * max(steps, 1e-3)
        self.mean = F @ self.mean
        self.cov = F @ self.cov @ F.T + Q

    def update(self, box_xyxy: np.ndarray) -> None:
        z = xyxy_to_xyah(box_xyxy)
        h = max(self.mean[3], 1e-3)
        R = np.diag(np.square([_STD_POS * h, _STD_POS * h, 1e-1, _STD_POS * h]))
        S = self._H @ self.cov @ self._H.T + R
        K = np.linalg.solve(S, (self.cov @ self._H.T).T).T
        self.mean = self.mean + K @ (z - self._H @ self.mean)
        self.cov = (np.eye(8) - K @ self._H) @ self.cov

    def ahead(self, steps: float) -> np.ndarray:
        """The box (xyxy) ``steps`` analysed frames from now, as :meth:`predict` would put it."""
        m = self.mean.copy()
        for i in _MOVING:
            m[i] += steps * m[i + 4]
        return xyah_to_xyxy(m)

    @property
    def box(self) -> np.ndarray:
        return xyah_to_xyxy(self.mean)
