"""Drawing helpers shared by every picture the project makes (side-by-side match images, the
annotated video of ``cctv-sr run --annotate``, the HTML report): labelled square panels, a
verdict banner, and face boxes with a label tab (solid for detections, dashed and thinner for
rows a track carried between detections)."""

from __future__ import annotations

import cv2
import numpy as np

PANEL = 128  # side of a face panel, in pixels
LINE_H = 14  # height of one label line under a panel
FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT = (230, 230, 230)
MATCH_BGR = (60, 170, 60)  # green: the decision named this person
NO_MATCH_BGR = (40, 40, 200)  # red: no one was named
TRACK_BGR = (0, 190, 240)  # amber: a tracked face with no name (no gallery, or no match)
UNTRACKED_BGR = (170, 170, 170)  # grey: a detection no track took


def _fit(text: str, width: int, scale: float = 0.38) -> tuple[str, float]:
    """``text`` and a font scale at which it fits ``width`` px; shrinks to 0.28, then cuts
    characters and adds an ellipsis, so that nothing is clipped mid-glyph."""
    while scale > 0.28 and cv2.getTextSize(text, FONT, scale, 1)[0][0] > width:
        scale -= 0.02
    if cv2.getTextSize(text, FONT, scale, 1)[0][0] <= width:
        return text, scale
    cut = text
    while cut and cv2.getTextSize(cut + "...", FONT, scale, 1)[0][0] > width:
        cut = cut[:-1]
    return cut + "...", scale


def panel(image: np.ndarray | None, lines: list[str] | str, side: int = PANEL,
          dim: bool = False) -> np.ndarray:
    """``image`` (BGR, any size; None = blank) fitted into a ``side`` square, labels below.

    Small crops are enlarged with nearest-neighbour so their pixels stay visible (an LR crop
    must look like what the camera saw, not like a smoothed guess). ``dim`` greys the image
    out (e.g. the nearest gallery photo of a non-match, which must not look like a match).
    """
    labels = [lines] if isinstance(lines, str) else list(lines)
    out = np.full((side + LINE_H * len(labels) + 4, side, 3), 32, np.uint8)
    if image is not None:
        h, w = image.shape[:2]
        scale = side / max(h, w)
        interp = cv2.INTER_NEAREST if scale > 2 else cv2.INTER_AREA if scale < 1 else (
            cv2.INTER_CUBIC)
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=interp)
        if dim:
            grey = cv2.cvtColor(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
            small = (grey.astype(np.float32) * 0.45 + 20).astype(np.uint8)
        y0, x0 = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
        out[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    for i, label in enumerate(labels):
        text, scale = _fit(label, side - 6)
        cv2.putText(out, text, (3, side + LINE_H * (i + 1)), FONT, scale, TEXT, 1, cv2.LINE_AA)
    return out


def side_by_side(panels: list[np.ndarray], banner: str | None = None,
                 banner_bgr: tuple[int, int, int] = NO_MATCH_BGR) -> np.ndarray:
    """Panels next to each other (padded to one height), under an optional coloured banner."""
    height = max(p.shape[0] for p in panels)
    padded = [np.vstack([p, np.full((height - p.shape[0], p.shape[1], 3), 32, np.uint8)])
              for p in panels]
    body = np.hstack(padded)
    if banner is None:
        return body
    strip = np.zeros((20, body.shape[1], 3), np.uint8)
    strip[:] = banner_bgr
    text, scale = _fit(banner, body.shape[1] - 8, scale=0.5)
    cv2.putText(strip, text, (4, 15), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([strip, body])


def _dashed_rect(image: np.ndarray, p0: tuple[int, int], p1: tuple[int, int],
                 colour: tuple[int, int, int], thickness: int, dash: int = 5) -> None:
    """A rectangle drawn as dashes of ``dash`` px with gaps of the same length."""
    (x0, y0), (x1, y1) = p0, p1
    edges = (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)),
             ((x0, y1), (x0, y0)))
    for (ax, ay), (bx, by) in edges:
        length = max(abs(bx - ax), abs(by - ay))
        for start in range(0, length + 1, 2 * dash):
            end = min(start + dash, length)
            u0, u1 = start / max(length, 1), end / max(length, 1)
            cv2.line(image, (round(ax + u0 * (bx - ax)), round(ay + u0 * (by - ay))),
                     (round(ax + u1 * (bx - ax)), round(ay + u1 * (by - ay))), colour,
                     thickness, cv2.LINE_8)


def face_box(image: np.ndarray, xyxy: tuple[float, float, float, float] | np.ndarray,
             colour: tuple[int, int, int], label: str | None = None,
             carried: bool = False) -> None:
    """Draw a face box on ``image`` (BGR, in place) with ``label`` on a tab of the box's
    colour above it (below when the box touches the top). A detected face gets a solid 2 px
    box; a row its track carried between detections (predicted, not seen) a dashed 1 px one."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(float(v))) for v in np.asarray(xyxy, np.float64).ravel()[:4])
    x0, x1 = max(0, min(x0, w - 1)), max(0, min(x1, w - 1))
    y0, y1 = max(0, min(y0, h - 1)), max(0, min(y1, h - 1))
    if x1 <= x0 or y1 <= y0:
        return
    if carried:
        _dashed_rect(image, (x0, y0), (x1, y1), colour, 1)
    else:
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2, cv2.LINE_8)
    if not label:
        return
    text, scale = _fit(label, max(w - x0 - 4, 40), scale=0.4)
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    tab_h = th + base + 4
    top = y0 - tab_h if y0 - tab_h >= 0 else min(y1 + 1, h - tab_h)
    right = min(x0 + tw + 6, w)
    cv2.rectangle(image, (x0, top), (right, top + tab_h), colour, -1)
    ink = (0, 0, 0) if sum(colour) > 400 else (255, 255, 255)
    cv2.putText(image, text, (x0 + 3, top + th + 2), FONT, scale, ink, 1, cv2.LINE_AA)
