"""MTCNN P/R/O-Net in PyTorch, and the loader of the ``mtcnn`` PyPI package's weights (MIT).

The package's ``__init__`` imports tensorflow, so it is never imported: the weight files are
found with :func:`importlib.util.find_spec`. Each ``{pnet,rnet,onet}.lz4`` is an lz4-frame
compressed joblib pickle of a list of numpy arrays in Keras layout (conv kernels
``kh x kw x in x out``, dense ``in x out``, PReLU alphas), in layer order.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cctv_sr.errors import BackendUnavailableError, ModelError

log = logging.getLogger(__name__)

NETS = ("pnet", "rnet", "onet")

# Expected shapes, in file order; checked so that a wrong file fails loudly.
EXPECTED: dict[str, list[tuple[int, ...]]] = {
    "pnet": [
        (3, 3, 3, 10), (10,), (1, 1, 10),
        (3, 3, 10, 16), (16,), (1, 1, 16),
        (3, 3, 16, 32), (32,), (1, 1, 32),
        (1, 1, 32, 4), (4,),
        (1, 1, 32, 2), (2,),
    ],
    "rnet": [
        (3, 3, 3, 28), (28,), (1, 1, 28),
        (3, 3, 28, 48), (48,), (1, 1, 48),
        (2, 2, 48, 64), (64,), (1, 1, 64),
        (576, 128), (128,), (128,),
        (128, 4), (4,),
        (128, 2), (2,),
    ],
    "onet": [
        (3, 3, 3, 32), (32,), (1, 1, 32),
        (3, 3, 32, 64), (64,), (1, 1, 64),
        (3, 3, 64, 64), (64,), (1, 1, 64),
        (2, 2, 64, 128), (128,), (1, 1, 128),
        (1152, 256), (256,), (256,),
        (256, 4), (4,),
        (256, 10), (10,),
        (256, 2), (2,),
    ],
}


def packaged_weights_dir() -> Path:
    """``mtcnn/assets/weights`` inside the installed ``mtcnn`` package (not imported)."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "the embedded MTCNN weights come from the 'mtcnn' package: pip install 'mtcnn>=1.0'"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights"


def weight_files(directory: Path | None = None) -> dict[str, Path]:
    """Paths of ``pnet.lz4``, ``rnet.lz4`` and ``onet.lz4`` in ``directory`` (default: packaged).

    Raises :class:`ModelError` naming the first missing file.
    """
    base = packaged_weights_dir() if directory is None else Path(directory)
    if directory is not None and not base.is_dir():
        raise ModelError(f"mtcnn: weights directory not found: {base}")
    files = {net: base / f"{net}.lz4" for net in NETS}
    for path in files.values():
        if not path.is_file():
            raise ModelError(f"mtcnn: weights file not found: {path}")
    return files


def load_arrays(path: Path, net: str) -> list[np.ndarray]:
    """The list of float32 arrays in one ``.lz4`` weights file, shape-checked for ``net``."""
    import joblib
    import lz4.frame

    try:
        raw = lz4.frame.decompress(Path(path).read_bytes())
        arrays = joblib.load(io.BytesIO(raw))
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise ModelError(f"mtcnn: cannot read weights {path}: {exc}") from exc
    if not isinstance(arrays, (list, tuple)):
        raise ModelError(f"mtcnn: {path} holds {type(arrays).__name__}, expected a list of arrays")
    shapes = [tuple(np.shape(a)) for a in arrays]
    if shapes != EXPECTED[net]:
        raise ModelError(f"mtcnn: {path} does not look like {net} weights (shapes {shapes})")
    return [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]


def load_all(directory: Path | None = None) -> tuple[dict[str, list[np.ndarray]], tuple[Path, ...]]:
    """Arrays of all three nets and the files they came from."""
    files = weight_files(directory)
    arrays = {net: load_arrays(path, net) for net, path in files.items()}
    log.debug("loaded MTCNN weights from %s", files["pnet"].parent)
    return arrays, tuple(files[n] for n in NETS)


# --- PyTorch networks ------------------------------------------------------------------------
# Layer order, kernel sizes and pooling follow the Keras definitions in the mtcnn package:
# images are NHWC there and NOT transposed; RNet/ONet permute (H, W) before flattening, so the
# dense layers see features in (W, H, C) order. Poolings use TensorFlow "same"/"valid" padding.


def _tf_max_pool(x: torch.Tensor, kernel: int, stride: int, same: bool) -> torch.Tensor:
    """Max pooling with TensorFlow's padding rules ("same" pads the far side first)."""
    if not same:
        return F.max_pool2d(x, kernel, stride)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph = max((-(-h // stride) - 1) * stride + kernel - h, 0)
    pw = max((-(-w // stride) - 1) * stride + kernel - w, 0)
    if ph <= 1 and pw <= 1:  # only the far side is padded: ceil_mode does exactly that
        return F.max_pool2d(x, kernel, stride, ceil_mode=True)
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    return F.max_pool2d(F.pad(x, pad, value=float("-inf")), kernel, stride)


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k)


class _KerasNet(nn.Module):
    """Base: loads a Keras weight list into the layers named in ``order``."""

    order: tuple[str, ...] = ()

    def load_keras(self, arrays: list[np.ndarray]) -> _KerasNet:
        it = iter(arrays)
        with torch.no_grad():
            for name in self.order:
                layer = getattr(self, name)
                if isinstance(layer, nn.Conv2d):
                    layer.weight.copy_(torch.from_numpy(next(it).transpose(3, 2, 0, 1).copy()))
                    assert layer.bias is not None  # every conv here is built with a bias
                    layer.bias.copy_(torch.from_numpy(next(it)))
                elif isinstance(layer, nn.Linear):
                    layer.weight.copy_(torch.from_numpy(next(it).T.copy()))
                    layer.bias.copy_(torch.from_numpy(next(it)))
                else:  # PReLU: alphas shared over H and W
                    layer.weight.copy_(torch.from_numpy(next(it).reshape(-1)))
        return self


class PNet(_KerasNet):
    """Proposal net: any input size; returns box offsets (N,4,h,w) and face prob (N,h,w)."""

    order = ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4_1", "conv4_2")

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = _conv(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = _conv(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = _conv(32, 4, 1), _conv(32, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _tf_max_pool(self.prelu1(self.conv1(x)), 2, 2, same=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_1(x), torch.softmax(self.conv4_2(x), dim=1)[:, 1]


class RNet(_KerasNet):
    """Refinement net on 24x24 crops: box offsets (N,4) and face prob (N,)."""

    order = ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "fc4", "prelu4",
             "fc5_1", "fc5_2")

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = _conv(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = _conv(48, 64, 2), nn.PReLU(64)
        self.fc4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.fc5_1, self.fc5_2 = nn.Linear(128, 4), nn.Linear(128, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _tf_max_pool(self.prelu1(self.conv1(x)), 3, 2, same=True)
        x = _tf_max_pool(self.prelu2(self.conv2(x)), 3, 2, same=False)
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).flatten(1)
        x = self.prelu4(self.fc4(x))
        return self.fc5_1(x), torch.softmax(self.fc5_2(x), dim=1)[:, 1]


class ONet(_KerasNet):
    """Output net on 48x48 crops: box offsets (N,4), landmarks (N,10: x1..x5, y1..y5 as
    fractions of the crop) and face prob (N,)."""

    order = ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4",
             "fc5", "prelu5", "fc6_1", "fc6_2", "fc6_3")

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = _conv(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = _conv(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = _conv(64, 128, 2), nn.PReLU(128)
        self.fc5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.fc6_1, self.fc6_2 = nn.Linear(256, 4), nn.Linear(256, 10)
        self.fc6_3 = nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = _tf_max_pool(self.prelu1(self.conv1(x)), 3, 2, same=True)
        x = _tf_max_pool(self.prelu2(self.conv2(x)), 3, 2, same=False)
        x = _tf_max_pool(self.prelu3(self.conv3(x)), 2, 2, same=True)
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)
        x = self.prelu5(self.fc5(x))
        return self.fc6_1(x), self.fc6_2(x), torch.softmax(self.fc6_3(x), dim=1)[:, 1]


def build_nets(
    arrays: dict[str, list[np.ndarray]], device: torch.device
) -> tuple[PNet, RNet, ONet]:
    """The three networks with the given weights, in eval mode on ``device``."""
    pnet, rnet, onet = PNet(), RNet(), ONet()
    for net, key in ((pnet, "pnet"), (rnet, "rnet"), (onet, "onet")):
        net.load_keras(arrays[key])
        net.to(device)
        net.eval()
    return pnet, rnet, onet
