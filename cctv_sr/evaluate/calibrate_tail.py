"""Tail thresholds for ``cctv-sr eval calibrate --sizes/--fars`` (docs/EVAL.md section 1c).

A watchlist of N people names a stranger when ANY of the N pairs (stranger, listed person)
reaches the threshold, so a watchlist that should name at most a fraction FPIR of strangers
needs a per-pair false-accept rate of about ``1 - (1 - FPIR) ** (1 / N)`` (independent pairs):
1e-3 for FPIR 1% at N = 10, 1e-5 at N = 1000. This module reads such tail thresholds off the
impostor scores of one probe size and says when the data cannot resolve them.

Rules, on the ``n`` impostor scores sorted high to low (``s_0 >= s_1 >= ...``):

* threshold at a FAR ``f`` (:func:`tail_threshold`): ``s_k`` with ``k = floor(f * n)``, the
  rule of :func:`cctv_sr.evaluate.metrics.threshold_at_far` (``k`` impostors lie above it);
* resolved when ``k >= MIN_TAIL`` (10): fewer impostors above a threshold give a rate with a
  relative error over ~30%. An unresolved FAR reports no threshold, only the bound the data
  does give: the threshold it needs is at least ``s_MIN_TAIL``, the threshold at the finest
  resolved FAR ``MIN_TAIL / n``;
* TAR: the share of genuine scores at or above the threshold (as the HR figures);
* the threshold at a FAR between order statistics (the watchlist rows,
  :func:`interpolated_threshold`): linear in ``f * n`` between ``s_k`` and ``s_(k+1)``.

Example::

    tail = Tail.of(genuine, impostor)
    row = tail.row("16", 1e-5)           # TailRow: threshold or bound, TAR, resolved
    far_for_fpir(0.01, 1000)             # 1.005e-05
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cctv_sr.errors import ConfigError

MIN_TAIL = 10  # impostor pairs above a threshold for its FAR to count as measured
DEFAULT_FARS: tuple[float, ...] = (1e-2, 1e-3)
WATCHLIST_FPIR = 1e-2
WATCHLIST_SIZES: tuple[int, ...] = (10, 100, 1000)
HR_SIZE = "hr"


def far_for_fpir(fpir: float, gallery_size: int) -> float:
    """Per-pair FAR at which a gallery of ``gallery_size`` independent pairs names a fraction
    ``fpir`` of strangers: ``1 - (1 - fpir) ** (1 / N)``."""
    if not 0.0 <= fpir < 1.0:
        raise ConfigError(f"FPIR must be in [0, 1), got {fpir}")
    if gallery_size < 1:
        raise ConfigError(f"gallery size must be >= 1, got {gallery_size}")
    return float(-math.expm1(math.log1p(-fpir) / gallery_size))


def _rank(far: float, n: int) -> int:
    if not 0.0 <= far <= 1.0:
        raise ConfigError(f"FAR must be in [0, 1], got {far}")
    return int(math.floor(far * n + 1e-9))  # as metrics.threshold_at_far


def tail_threshold(desc: np.ndarray, far: float) -> float:
    """``s_k``, ``k = floor(far * n)``, of impostor scores sorted high to low (+inf with none,
    -inf when ``k >= n``): the value of :func:`metrics.threshold_at_far`."""
    if desc.size == 0:
        return math.inf
    k = _rank(far, desc.size)
    return float(desc[k]) if k < desc.size else -math.inf


def interpolated_threshold(desc: np.ndarray, far: float) -> float:
    """The threshold at ``far`` linear in ``far * n`` between neighbouring order statistics."""
    n = desc.size
    if n == 0:
        return math.inf
    x = far * n
    k = _rank(far, n)
    if k >= n - 1:
        return float(desc[-1]) if k == n - 1 else -math.inf
    frac = min(max(x - k, 0.0), 1.0)
    return float(desc[k] + frac * (desc[k + 1] - desc[k]))


def parse_sizes(text: str) -> tuple[str, ...]:
    """``"hr,16,24"`` -> ``("hr", "16", "24")``: ``hr`` or integers in 4..128, de-duplicated."""
    out: list[str] = []
    for t in (t.strip().lower() for t in text.split(",")):
        if not t:
            continue
        if t != HR_SIZE:
            if not t.isdigit() or not 4 <= int(t) <= 128:
                raise ConfigError(f"--sizes: each size is 'hr' or an integer in 4..128, got {t!r}")
            t = str(int(t))
        if t not in out:
            out.append(t)
    if not out:
        raise ConfigError("--sizes: no size given")
    return tuple(out)


def parse_fars(text: str) -> tuple[float, ...]:
    """``"1e-2,1e-3"`` -> ``(0.01, 0.001)``, each in (0, 1), de-duplicated, high to low."""
    out: list[float] = []
    for t in (t.strip() for t in text.split(",")):
        if not t:
            continue
        try:
            f = float(t)
        except ValueError:
            raise ConfigError(f"--fars: expected numbers such as 1e-3, got {t!r}") from None
        if not 0.0 < f < 1.0:
            raise ConfigError(f"--fars: each FAR must be in (0, 1), got {t}")
        if f not in out:
            out.append(f)
    if not out:
        raise ConfigError("--fars: no FAR given")
    return tuple(sorted(out, reverse=True))


@dataclass(frozen=True)
class TailRow:
    """One (size, FAR): ``above`` impostor pairs lie above ``s_k``; resolved rows carry
    ``threshold`` and ``tar``, unresolved ones ``threshold_lower_bound`` (the threshold at
    ``finest_far``) and ``tar_upper_bound``."""

    size: str
    far: float
    impostor_pairs: int
    genuine_pairs: int
    above: int
    resolved: bool
    finest_far: float
    threshold: float | None
    tar: float | None
    threshold_lower_bound: float | None
    tar_upper_bound: float | None

    def to_json(self) -> dict[str, Any]:
        return {k: _num(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class WatchlistRow:
    """The per-pair FAR a gallery of ``gallery_size`` needs for FPIR ``fpir`` at one size, and
    the threshold it implies (None when not resolved; then the lower bound)."""

    size: str
    gallery_size: int
    fpir: float
    far: float
    resolved: bool
    threshold: float | None
    threshold_lower_bound: float | None

    def to_json(self) -> dict[str, Any]:
        return {k: _num(v) for k, v in self.__dict__.items()}


def _num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclass(frozen=True)
class Tail:
    """Genuine scores and impostor scores sorted high to low, of one probe size."""

    genuine: np.ndarray
    desc: np.ndarray

    @classmethod
    def of(cls, genuine: np.ndarray, impostor: np.ndarray) -> Tail:
        return cls(np.asarray(genuine, np.float64),
                   np.sort(np.asarray(impostor, np.float64))[::-1])

    @property
    def finest_far(self) -> float:
        """The lowest FAR with ``MIN_TAIL`` impostors above its threshold (1.0 with fewer)."""
        return min(1.0, MIN_TAIL / self.desc.size) if self.desc.size else 1.0

    def resolved(self, far: float) -> bool:
        return self.desc.size > 0 and _rank(far, self.desc.size) >= MIN_TAIL

    def bound(self) -> float | None:
        """``s_MIN_TAIL``: no unresolved FAR has a lower threshold (None with too few pairs)."""
        return float(self.desc[MIN_TAIL]) if self.desc.size > MIN_TAIL else None

    def tar(self, threshold: float | None) -> float | None:
        if threshold is None or self.genuine.size == 0:
            return None
        return float((self.genuine >= threshold).mean())

    def row(self, size: str, far: float) -> TailRow:
        n = int(self.desc.size)
        above = _rank(far, n) if n else 0
        ok = self.resolved(far)
        t = tail_threshold(self.desc, far) if ok else None
        b = None if ok else self.bound()
        return TailRow(size=size, far=far, impostor_pairs=n, genuine_pairs=int(self.genuine.size),
                       above=min(above, n), resolved=ok, finest_far=self.finest_far,
                       threshold=t, tar=self.tar(t), threshold_lower_bound=b,
                       tar_upper_bound=self.tar(b))

    def watchlist_row(self, size: str, gallery_size: int, fpir: float = WATCHLIST_FPIR
                      ) -> WatchlistRow:
        far = far_for_fpir(fpir, gallery_size)
        ok = self.resolved(far)
        return WatchlistRow(size=size, gallery_size=gallery_size, fpir=fpir, far=far,
                            resolved=ok,
                            threshold=interpolated_threshold(self.desc, far) if ok else None,
                            threshold_lower_bound=None if ok else self.bound())


# ------------------------------------------------------------------------------ the report


def _size_label(size: str) -> str:
    return "HR" if size == HR_SIZE else f"{size} px"


def _value(t: float | None, bound: float | None) -> str:
    if t is not None:
        return f"{t:.4f}"
    return "not resolved" + (f" (>= {bound:.4f})" if bound is not None else "")


def format_tail(rows: Sequence[TailRow], watch: Sequence[WatchlistRow], restore: str) -> str:
    """The tail table and the watchlist table as text."""
    lines = [
        f"tail thresholds (HR: unordered pairs of HR images; s px: each image degraded to s x s, "
        f"restored to 128 by {restore}, against every HR image of another identity (impostors) "
        f"or of its own (genuine, not itself)); resolved = at least {MIN_TAIL} impostor pairs "
        f"above the threshold",
        f"{'size':<7} {'FAR':>7} {'threshold':>26} {'TAR':>8} {'above':>8} {'impostors':>10} "
        f"{'finest FAR':>10}",
    ]
    for r in rows:
        if r.resolved:
            tar = f"{100 * r.tar:.1f}%" if r.tar is not None else "-"
        else:
            tar = f"<={100 * r.tar_upper_bound:.1f}%" if r.tar_upper_bound is not None else "-"
        lines.append(f"{_size_label(r.size):<7} {r.far:>7.0e} "
                     f"{_value(r.threshold, r.threshold_lower_bound):>26} {tar:>8} "
                     f"{r.above:>8} {r.impostor_pairs:>10} {r.finest_far:>10.1e}")
    if watch:
        gsizes = list(dict.fromkeys(w.gallery_size for w in watch))
        fars = {w.gallery_size: w.far for w in watch}
        fpir = watch[0].fpir
        lines.append(f"watchlist: threshold for FPIR {100 * fpir:g}% at gallery size N, per-pair "
                     f"FAR = 1-(1-FPIR)^(1/N), interpolated on the measured tail")
        lines.append(f"{'size':<7} " + " ".join(
            f"{f'N={g} (FAR {fars[g]:.1e})':>26}" for g in gsizes))
        for size in dict.fromkeys(w.size for w in watch):
            cells = [_value(w.threshold, w.threshold_lower_bound)
                     for g in gsizes for w in watch if w.size == size and w.gallery_size == g]
            lines.append(f"{_size_label(size):<7} " + " ".join(f"{c:>26}" for c in cells))
    return "\n".join(lines)
