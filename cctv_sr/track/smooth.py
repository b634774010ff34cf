"""Landmark and box smoothing along a track, in stream time (a One-Euro filter).

Detector landmarks on a 16-40 px face jitter by a pixel or more from frame to frame; aligned
from raw landmarks, the crops of one track's window do not line up and the enhanced faces
flicker. The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a low-pass filter whose
cut-off rises with speed: a face that stands still is smoothed hard (jitter removed), a face
that moves is followed with little lag. Times are stream seconds, never frame counts, so the
filter behaves the same at 10 and at 30 frames/s and across dropped frames.

Speeds are measured in face sizes per second (the caller passes the face's size with each
sample), so one ``beta`` suits a 16 px face and a 200 px one.

Example::

    f = OneEuro(min_cutoff_hz=1.0, beta=2.0)
    for t, kps, size in samples:      # kps (5, 2) frame pixels, size in pixels
        smooth = f.update(t, kps, size)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cctv_sr.errors import ContractError

__all__ = ["OneEuro", "SmoothConfig", "TrackSmoother"]


@dataclass(frozen=True)
class SmoothConfig:
    """``min_cutoff_hz``: cut-off of a still face (lower: smoother, more lag); ``beta``: how
    fast the cut-off rises with speed (per face size per second); ``d_cutoff_hz``: cut-off of
    the speed estimate; ``max_gap_s``: a longer gap between samples starts afresh."""

    min_cutoff_hz: float = 1.0
    beta: float = 2.0
    d_cutoff_hz: float = 1.0
    max_gap_s: float = 0.5

    def __post_init__(self) -> None:
        for name in ("min_cutoff_hz", "d_cutoff_hz", "max_gap_s"):
            if not getattr(self, name) > 0:
                raise ContractError(f"smooth.{name} must be > 0, got {getattr(self, name)}")
        if self.beta < 0:
            raise ContractError(f"smooth.beta must be >= 0, got {self.beta}")


def _alpha(cutoff_hz: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuro:
    """One-Euro filter of an array of any fixed shape (one cut-off for the whole array, from
    its mean absolute speed, so the landmarks of a face move together and keep its shape)."""

    min_cutoff_hz: float = 1.0
    beta: float = 2.0
    d_cutoff_hz: float = 1.0
    max_gap_s: float = 0.5
    _t: float | None = field(default=None, init=False)
    _x: np.ndarray | None = field(default=None, init=False)
    _dx: np.ndarray | None = field(default=None, init=False)

    @classmethod
    def from_config(cls, cfg: SmoothConfig) -> OneEuro:
        return cls(cfg.min_cutoff_hz, cfg.beta, cfg.d_cutoff_hz, cfg.max_gap_s)

    def reset(self) -> None:
        self._t = self._x = self._dx = None

    def update(self, t: float, x: np.ndarray, size: float = 1.0) -> np.ndarray:
        """The smoothed value of sample ``x`` at stream time ``t`` (seconds); ``size`` is the
        unit speeds are measured in (the face's size in pixels). Samples must come in time
        order; one at the same time as the last returns the last smoothed value."""
        value = np.asarray(x, np.float64)
        if not math.isfinite(t):
            raise ContractError(f"OneEuro.update: time must be finite, got {t}")
        if self._x is not None and self._x.shape != value.shape:
            raise ContractError(f"OneEuro.update: shape {value.shape}, the filter holds "
                                f"{self._x.shape}")
        if self._t is not None and t < self._t:
            raise ContractError(f"OneEuro.update: time went back ({t} < {self._t})")
        if self._t is None or self._x is None or t - self._t > self.max_gap_s:
            self._t, self._x, self._dx = t, value.copy(), np.zeros_like(value)
            return value.copy()
        dt = t - self._t
        if dt <= 0:
            return self._x.copy()
        dx = (value - self._x) / dt
        prev_dx = self._dx if self._dx is not None else np.zeros_like(value)
        dx_hat = prev_dx + _alpha(self.d_cutoff_hz, dt) * (dx - prev_dx)
        speed = float(np.mean(np.abs(dx_hat))) / max(float(size), 1e-6)
        cutoff = self.min_cutoff_hz + self.beta * speed
        x_hat = self._x + _alpha(cutoff, dt) * (value - self._x)
        self._t, self._x, self._dx = t, x_hat, dx_hat
        return x_hat.copy()


@dataclass
class TrackSmoother:
    """One filter of landmarks and one of boxes per track of one stream; a track's filters
    go when it ends (:meth:`end`)."""

    cfg: SmoothConfig = field(default_factory=SmoothConfig)
    _kps: dict[int, OneEuro] = field(default_factory=dict)
    _box: dict[int, OneEuro] = field(default_factory=dict)

    def update(self, track_id: int, t: float, xyxy: np.ndarray, kps: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Smoothed ``(xyxy (4,), kps (5, 2))`` of one detected face of ``track_id`` at
        stream time ``t``, float32."""
        box = np.asarray(xyxy, np.float64).reshape(4)
        size = max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0)
        kf = self._kps.setdefault(track_id, OneEuro.from_config(self.cfg))
        bf = self._box.setdefault(track_id, OneEuro.from_config(self.cfg))
        return (bf.update(t, box, size).astype(np.float32),
                kf.update(t, np.asarray(kps, np.float64).reshape(5, 2), size).astype(np.float32))

    def end(self, track_id: int) -> None:
        self._kps.pop(track_id, None)
        self._box.pop(track_id, None)

    def __len__(self) -> int:
        return len(self._kps)
