"""The pure-PyTorch MobileFaceNet: size, shapes, strict loading of foamliu's checkpoint, and
agreement with the exported ONNX graph of the same weights (CPU, a few seconds).

The checkpoint tests read ``../shared/models/mobilefacenet/`` (or ``$CCTV_SR_SHARED``) and skip
without it; the ONNX comparison also skips when onnxruntime is not installed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import shared_path

from cctv_sr.embed.mobilefacenet_net import EMBEDDING_DIM, INPUT_SIZE, MobileFaceNet

CHECKPOINT = "models/mobilefacenet/mobilefacenet.pt"
ONNX_FILE = "models/mobilefacenet/MobileFaceNet.onnx"
LFW = "data/faces/lfw_dev"
N_PARAMS = 999_936
N_TENSORS = 307
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return shared_path(CHECKPOINT)


@pytest.fixture(scope="module")
def loaded(checkpoint: Path) -> MobileFaceNet:
    return MobileFaceNet.from_state_dict_file(checkpoint)


def lfw_faces(count: int) -> np.ndarray:
    """``count`` LFW photos (first of each of the first identities), the central face region
    resized to 112 and normalised like the model's training data: (count, 3, 112, 112)."""
    root = shared_path(LFW)
    people = sorted(d for d in root.iterdir() if d.is_dir())[:count]
    files = [sorted(d.glob("*.jpg"))[0] for d in people]
    out = []
    for f in files:
        bgr = cv2.imread(str(f))
        assert bgr is not None, f
        crop = cv2.resize(bgr[70:180, 70:180], (INPUT_SIZE, INPUT_SIZE), cv2.INTER_AREA)
        rgb = crop[:, :, ::-1].astype(np.float32) / 255.0
        out.append(((rgb - MEAN) / STD).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


def test_parameter_count_and_batch_shape() -> None:
    torch.manual_seed(0)
    net = MobileFaceNet().eval()
    assert sum(p.numel() for p in net.parameters()) == N_PARAMS
    assert len(net.state_dict()) == N_TENSORS
    with torch.inference_mode():
        out = net(torch.randn(4, 3, INPUT_SIZE, INPUT_SIZE))
    assert out.shape == (4, EMBEDDING_DIM)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.shared
def test_checkpoint_loads_strictly(checkpoint: Path) -> None:
    state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    own = MobileFaceNet().state_dict()
    assert list(own) == list(state)  # same keys, same order
    assert all(own[k].shape == state[k].shape for k in state)
    MobileFaceNet().load_state_dict(state, strict=True)


@pytest.mark.shared
def test_batch_equals_one_by_one(loaded: MobileFaceNet) -> None:
    faces = torch.from_numpy(lfw_faces(3))
    with torch.inference_mode():
        batch = loaded(faces)
        single = torch.cat([loaded(faces[i : i + 1]) for i in range(len(faces))])
    assert torch.allclose(batch, single, rtol=0, atol=1e-5)


@pytest.mark.shared
def test_matches_onnx_export(loaded: MobileFaceNet) -> None:
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(shared_path(ONNX_FILE)), options, providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    faces = np.concatenate(
        [lfw_faces(3), rng.standard_normal((1, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)]
    )
    # the export is fixed at batch 1
    want = np.concatenate([session.run(None, {"input0": f[None]})[0] for f in faces])
    with torch.inference_mode():
        got = loaded(torch.from_numpy(faces)).numpy()
    assert got.shape == want.shape == (4, EMBEDDING_DIM)
    assert np.abs(got - want).max() < 1e-4
