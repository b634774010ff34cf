"""Shared fixtures: where ../shared and the packaged test photos are, and skips when absent;
``one_torch_thread`` for modules of small torch batches."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CCTV_SR_SHARED", REPO.parent / "shared")).resolve()


def shared_path(rel: str) -> Path:
    """A path under ../shared, or a clean skip when it is not there."""
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


def insightface_image_dir() -> Path:
    """Photos shipped in the insightface wheel (installed --no-deps by the setup command)."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("insightface wheel not installed (see README setup command)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "images"
    if not path.is_dir():
        pytest.skip(f"insightface images not found in {path}")
    return path


@pytest.fixture(scope="session")
def group_photo() -> np.ndarray:
    """insightface's t1.jpg: six people, BGR uint8."""
    image = cv2.imread(str(insightface_image_dir() / "t1.jpg"))
    assert image is not None
    return image


@pytest.fixture(scope="session")
def portrait_photo() -> np.ndarray:
    """insightface's 112x112 aligned Tom Hanks crop, BGR uint8."""
    image = cv2.imread(str(insightface_image_dir() / "Tom_Hanks_54745.png"))
    assert image is not None
    return image


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread for a module (``pytestmark =
    pytest.mark.usefixtures("one_torch_thread")``): small batches gain nothing from more, and
    on a busy machine multi-threaded first calls can stall for seconds. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
