"""`eval calibrate` on a tiny LFW-style tree made from the group photo (six people, two
photos each: the face and a shifted, flipped copy)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED

from cctv_sr.data.synth import head_patches
from cctv_sr.evaluate.calibrate import calibrate, pair_scores


def test_pair_scores_counts_every_unordered_pair() -> None:
    emb = np.eye(4, dtype=np.float32)
    labels = np.array([0, 0, 1, 2])
    genuine, impostor = pair_scores(emb, labels)
    assert genuine.tolist() == [0.0] and len(impostor) == 5


@pytest.fixture()
def tiny_tree(tmp_path: Path, group_photo, monkeypatch) -> Path:
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "lfw"
    for i, head in enumerate(head_patches(group_photo, margin=2.4)):
        person = root / f"Person_{i}"
        person.mkdir(parents=True)
        canvas = cv2.resize(head, (250, 250), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(person / f"Person_{i}_0001.jpg"), canvas)
        shifted = np.roll(cv2.flip(canvas, 1), (6, -4), axis=(0, 1))
        cv2.imwrite(str(person / f"Person_{i}_0002.jpg"), shifted)
    return root


def test_calibrate_on_a_tiny_tree(tiny_tree: Path, monkeypatch) -> None:
    name = "dlib"
    if (SHARED / "models" / "mobilefacenet" / "MobileFaceNet.onnx").is_file():
        monkeypatch.setenv("CCTV_SR_MODELS", str(SHARED / "models"))
        name = "mobilefacenet"
    c = calibrate(tiny_tree, name, quiet=True)
    assert c.identities == 6 and c.images == 12
    assert c.genuine_pairs == 6 and c.impostor_pairs == 60
    assert c.threshold_far_1e2 <= c.threshold_far_1e3
    assert c.tar_at_far_1e2 >= 5 / 6  # flipped copies of one face are the same person
    assert "threshold_far_1e-3" in c.manifest_snippet()


def test_calibrate_command(tiny_tree: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from cctv_sr.cli import main

    name = "dlib"
    if (SHARED / "models" / "mobilefacenet" / "MobileFaceNet.onnx").is_file():
        monkeypatch.setenv("CCTV_SR_MODELS", str(SHARED / "models"))
        name = "mobilefacenet"
    out = tmp_path / "cal.json"
    assert main(["eval", "calibrate", "--data", str(tiny_tree), "--embedder", name, "--quiet",
                 "--json", str(out)]) == 0
    assert "threshold_far_1e-2 = " in capsys.readouterr().out
    assert out.is_file()
