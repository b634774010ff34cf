"""DET curves of ``cctv-sr eval identify --open-set`` as PNG, drawn with OpenCV (docs/EVAL.md 1b).

One picture per embedder: FNIR (listed probes missed) against FPIR (strangers named), both on
log axes with ticks at every decade, one line per (method, size) (one for a method whose curve
is the same at every size, such as ``hr``) and the operating point of the shipped threshold
marked with a ringed dot on each line. A rate of 0 cannot sit on a log axis:
it is drawn on the lowest decade shown (the axis floor, below the finest rate the probe counts
resolve), so a curve that reaches the floor means "no error measured".

File names: ``<stem>_<embedder>.png`` next to the base path (``--det PATH``, else the
``--json`` file with ``_det`` added to its stem).

Example::

    paths = write_det_plots(result, Path("out/eval_det.png"))   # {"dlib": .../eval_det_dlib.png}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.errors import OutputError
from cctv_sr.evaluate.identify import IdentifyResult

__all__ = ["DetPlot", "DetSeries", "det_paths", "det_plots", "render_det", "write_det_plots"]

# BGR, distinct on white
PALETTE: tuple[tuple[int, int, int], ...] = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
    (0, 0, 0), (120, 200, 255))
FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK, GRID, MINOR = (0, 0, 0), (200, 200, 200), (235, 235, 235)


@dataclass(frozen=True)
class DetSeries:
    """One line: ``fpir`` and ``fnir`` point by point; ``shipped`` = (FPIR, FNIR) at the
    shipped threshold, or None."""

    label: str
    fpir: np.ndarray
    fnir: np.ndarray
    shipped: tuple[float, float] | None


@dataclass(frozen=True)
class DetPlot:
    """One picture: ``floor`` is the lowest rate on both axes (a power of 10 below 1)."""

    title: str
    subtitle: str
    series: tuple[DetSeries, ...]
    floor: float


def _floor(*counts: int) -> float:
    """The decade below the finest rate the counts resolve (at least 2 decades, at most 4)."""
    n = max([1, *counts])
    return float(10.0 ** max(-4, min(-2, math.floor(math.log10(1.0 / n)))))


def det_plots(result: IdentifyResult) -> dict[str, DetPlot]:
    """One :class:`DetPlot` per embedder of an open-set result (empty without the open set)."""
    ores = result.open_set
    if ores is None:
        return {}
    sp = ores.split
    floor = _floor(sp.stranger_probes, sp.listed_probes)
    plots: dict[str, DetPlot] = {}
    for e in result.embedders:
        t = ores.shipped.get(e, math.nan)
        series = []
        for m in result.methods:
            if not result.applicable(m, e):  # an embedding method of another space
                continue
            rows = [ores.row(m, s, e) for s in result.sizes]
            same = all(np.array_equal(r.det.fpir, rows[0].det.fpir)
                       and np.array_equal(r.det.fnir, rows[0].det.fnir) for r in rows)
            if same and len(rows) > 1:  # a size-independent method (hr): one line
                rows = rows[:1]
            for s, r in zip(result.sizes, rows):
                point = None if math.isnan(r.fpir_shipped) or math.isnan(r.fnir_shipped) else (
                    r.fpir_shipped, r.fnir_shipped)
                label = f"{m} (every s)" if same and len(result.sizes) > 1 else f"{m} s={s}"
                series.append(DetSeries(label, r.det.fpir, r.det.fnir, point))
        shipped = "no shipped threshold" if math.isnan(t) else f"o = shipped threshold {t:.4f}"
        plots[e] = DetPlot(
            title=f"DET, open set, embedder {e}",
            subtitle=f"{sp.listed_probes} listed / {sp.stranger_probes} stranger probes; "
                     f"{shipped}; a rate of 0 is drawn at {floor:g}",
            series=tuple(series), floor=floor)
    return plots


def det_paths(base: Path, embedders: Sequence[str]) -> dict[str, Path]:
    """``<stem>_<embedder><suffix>`` per embedder (suffix .png when ``base`` has none)."""
    base = Path(base)
    suffix = base.suffix or ".png"
    return {e: base.with_name(f"{base.stem}_{e}{suffix}") for e in embedders}


def write_det_plots(result: IdentifyResult, base: Path) -> dict[str, Path]:
    """Render and write every embedder's DET picture; the paths written, per embedder."""
    plots = det_plots(result)
    paths = det_paths(base, list(plots))
    for e, plot in plots.items():
        path = paths[e]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"--det {path}: cannot create the folder ({exc.strerror})"
                              ) from None
        ok, buf = cv2.imencode(".png", render_det(plot))
        if not ok:
            raise OutputError(f"--det {path}: PNG encoding failed")
        try:
            path.write_bytes(buf.tobytes())
        except OSError as exc:
            raise OutputError(f"--det {path}: cannot write ({exc.strerror})") from None
    return paths


# --------------------------------------------------------------------------------- drawing


@dataclass(frozen=True)
class _Frame:
    left: int
    top: int
    width: int
    height: int
    floor: float

    def frac(self, v: float) -> float:
        lo = math.log10(self.floor)
        return (math.log10(min(1.0, max(self.floor, v))) - lo) / -lo

    def x(self, fpir: float) -> int:
        return int(round(self.left + self.frac(fpir) * self.width))

    def y(self, fnir: float) -> int:
        return int(round(self.top + (1.0 - self.frac(fnir)) * self.height))


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5,
          thick: int = 1, anchor: str = "left") -> None:
    """``text`` with its baseline at ``org``; ``anchor`` left | centre | right."""
    (w, _), _ = cv2.getTextSize(text, FONT, scale, thick)
    x = org[0] - (w // 2 if anchor == "centre" else w if anchor == "right" else 0)
    cv2.putText(img, text, (x, org[1]), FONT, scale, BLACK, thick, cv2.LINE_AA)


def _decade_label(k: int) -> str:
    return f"{10.0 ** k:g}"


def _axes(img: np.ndarray, fr: _Frame) -> None:
    lo = int(round(math.log10(fr.floor)))
    for k in range(lo, 1):
        for m in range(2, 10) if k < 0 else ():
            v = m * 10.0 ** k
            cv2.line(img, (fr.x(v), fr.top), (fr.x(v), fr.top + fr.height), MINOR, 1)
            cv2.line(img, (fr.left, fr.y(v)), (fr.left + fr.width, fr.y(v)), MINOR, 1)
    for k in range(lo, 1):
        v = 10.0 ** k
        x, y = fr.x(v), fr.y(v)
        cv2.line(img, (x, fr.top), (x, fr.top + fr.height), GRID, 1)
        cv2.line(img, (fr.left, y), (fr.left + fr.width, y), GRID, 1)
        bottom = fr.top + fr.height
        cv2.line(img, (x, bottom), (x, bottom + 8), BLACK, 1)
        cv2.line(img, (fr.left - 8, y), (fr.left, y), BLACK, 1)
        _text(img, _decade_label(k), (x, bottom + 26), anchor="centre")
        _text(img, _decade_label(k), (fr.left - 12, y + 5), anchor="right")
        for m in range(2, 10) if k < 0 else ():
            xm, ym = fr.x(m * v), fr.y(m * v)
            cv2.line(img, (xm, bottom), (xm, bottom + 4), BLACK, 1)
            cv2.line(img, (fr.left - 4, ym), (fr.left, ym), BLACK, 1)
    cv2.rectangle(img, (fr.left, fr.top), (fr.left + fr.width, fr.top + fr.height), BLACK, 1)
    _text(img, "FPIR (share of stranger probes named)",
          (fr.left + fr.width // 2, fr.top + fr.height + 56), 0.6, anchor="centre")
    label = "FNIR (share of listed probes missed)"
    (w, h), base = cv2.getTextSize(label, FONT, 0.6, 1)
    strip = np.full((h + base + 6, w + 6, 3), 255, np.uint8)
    cv2.putText(strip, label, (3, h + 3), FONT, 0.6, BLACK, 1, cv2.LINE_AA)
    rotated = np.asarray(cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE), np.uint8)
    y0 = max(0, fr.top + fr.height // 2 - rotated.shape[0] // 2)
    x0 = max(0, fr.left - 78)
    img[y0:y0 + rotated.shape[0], x0:x0 + rotated.shape[1]] = rotated


def _legend(img: np.ndarray, series: Sequence[DetSeries], x: int, y: int) -> None:
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        yy = y + 24 * i
        cv2.line(img, (x, yy - 5), (x + 30, yy - 5), colour, 2, cv2.LINE_AA)
        if s.shipped is not None:
            cv2.circle(img, (x + 15, yy - 5), 5, colour, -1, cv2.LINE_AA)
            cv2.circle(img, (x + 15, yy - 5), 6, BLACK, 1, cv2.LINE_AA)
        _text(img, s.label, (x + 40, yy))


def render_det(plot: DetPlot, width: int = 1100, height: int = 760) -> np.ndarray:
    """The picture of ``plot``, BGR uint8 (height x width)."""
    img = np.full((height, width, 3), 255, np.uint8)
    fr = _Frame(left=110, top=80, width=width - 110 - 260, height=height - 80 - 100,
                floor=plot.floor)
    _text(img, plot.title, (fr.left, 32), 0.7, 2)
    _text(img, plot.subtitle, (fr.left, 60), 0.5)
    _axes(img, fr)
    for i, s in enumerate(plot.series):
        colour = PALETTE[i % len(PALETTE)]
        pts = np.array([[fr.x(a), fr.y(b)] for a, b in zip(s.fpir, s.fnir)], np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
        if s.shipped is not None:
            centre = (fr.x(s.shipped[0]), fr.y(s.shipped[1]))
            cv2.circle(img, centre, 6, colour, -1, cv2.LINE_AA)
            cv2.circle(img, centre, 7, BLACK, 1, cv2.LINE_AA)
    _legend(img, plot.series, fr.left + fr.width + 25, fr.top + 16)
    return img
