"""Drawing helpers shared by every picture the project makes (side-by-side match images now;
annotated video and the HTML report later): one labelled square panel per face."""

from __future__ import annotations

import cv2
import numpy as np

PANEL = 128  # side of a face panel, in pixels
LABEL_H = 18  # height of the label strip under a panel


def panel(image: np.ndarray | None, label: str, side: int = PANEL) -> np.ndarray:
    """``image`` (BGR, any size; None = blank) fitted into a ``side`` square, label below.

    Small crops are enlarged with nearest-neighbour so their pixels stay visible (an LR crop
    must look like what the camera saw, not like a smoothed guess).
    """
    out = np.full((side + LABEL_H, side, 3), 32, np.uint8)
    if image is not None:
        h, w = image.shape[:2]
        scale = side / max(h, w)
        interp = cv2.INTER_NEAREST if scale > 2 else cv2.INTER_AREA if scale < 1 else (
            cv2.INTER_CUBIC)
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=interp)
        y0, x0 = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
        out[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    cv2.putText(out, label[:20], (3, side + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                (230, 230, 230), 1, cv2.LINE_AA)
    return out


def side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    """Panels of equal height next to each other."""
    return np.hstack(panels)
