"""Pictures people look at: labels are never clipped, a non-match never looks like a match."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cctv_sr.face.draw import FONT, MATCH_BGR, NO_MATCH_BGR, PANEL, _fit, panel, side_by_side


@pytest.mark.parametrize("text", ["ana", "nearest: Alexandria_Ocasio_Cortez", "x" * 80,
                                  "nearest: a name with many words in it that cannot fit"])
def test_labels_fit_the_panel(text: str) -> None:
    fitted, scale = _fit(text, PANEL - 6)
    assert cv2.getTextSize(fitted, FONT, scale, 1)[0][0] <= PANEL - 6
    assert fitted == text or (fitted.endswith("...") and text.startswith(fitted[:-3]))
    if len(text) <= 12:
        assert fitted == text  # short labels are never shortened


def test_dimmed_panel_is_grey_and_darker() -> None:
    photo = np.zeros((50, 40, 3), np.uint8)
    photo[:] = (0, 0, 255)  # pure red
    bright = panel(photo, ["x"])[:PANEL]
    dim = panel(photo, ["x"], dim=True)[:PANEL]
    centre = (PANEL // 2, PANEL // 2)
    assert bright[centre][2] == 255
    b, g, r = dim[centre].astype(int)
    assert abs(b - g) <= 1 and abs(g - r) <= 1 and r < 128  # grey, no longer red


@pytest.mark.parametrize("colour", [MATCH_BGR, NO_MATCH_BGR])
def test_banner_and_padding(colour: tuple[int, int, int]) -> None:
    panels = [panel(None, ["a"]), panel(None, ["a", "b"])]
    image = side_by_side(panels, banner="MATCH: someone", banner_bgr=colour)
    assert image.shape == (20 + panels[1].shape[0], 2 * PANEL, 3)
    strip = image[:20].reshape(-1, 3)
    # most of the strip is the banner colour (the rest is its white text)
    share = np.mean(np.all(strip == np.array(colour, np.uint8), axis=1))
    assert share > 0.6
    assert side_by_side(panels).shape[0] == panels[1].shape[0]
