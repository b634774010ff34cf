"""MTCNN's O-Net as an ONNX graph for onnxruntime, built from the torch module's weights.

O-Net costs about 1.2 ms a crop in torch on this machine (two cores; it scales linearly with
the batch) and 0.5 ms on onnxruntime, with the same probabilities to within 1e-7. The graph
is written by :mod:`cctv_sr.models.onnx_build` from :class:`~cctv_sr.detect.mtcnn_weights.ONet`'s
parameters, so there is no file to ship and nothing to export at install time. Its only
output is the face / non-face logits (N, 2); the face probability is their softmax.

Layers, as the torch module runs them on a 48 x 48 input: three 3x3 (then 2x2) convolutions,
each with PReLU, TensorFlow-padded max pooling (the padding computed here for the fixed
sizes, as ``_tf_max_pool`` does at run time), the (W, H, C) flatten of the Keras original,
then the dense layers.
"""

from __future__ import annotations

import numpy as np
import torch

from cctv_sr.detect.mtcnn_weights import ONet
from cctv_sr.errors import ContractError
from cctv_sr.models.onnx_build import Graph

SIDE = 48


def _pool(graph: Graph, x: str, size: int, kernel: int, stride: int, same: bool
          ) -> tuple[str, int]:
    """Max pooling with TensorFlow's padding rules; the output and its side."""
    if same:
        out = -(-size // stride)
        pad = max((out - 1) * stride + kernel - size, 0)
        pads = [pad // 2, pad // 2, pad - pad // 2, pad - pad // 2]
    else:
        out = (size - kernel) // stride + 1
        pads = [0, 0, 0, 0]
    return graph.node("MaxPool", [x], kernel_shape=[kernel, kernel], strides=[stride, stride],
                      pads=pads), out


def _conv(graph: Graph, x: str, conv: torch.nn.Conv2d, prelu: torch.nn.PReLU,
          size: int) -> tuple[str, int]:
    weight = conv.weight.detach().cpu().numpy().astype(np.float32)
    if conv.bias is None:
        raise ContractError("onet: a convolution without a bias")
    bias = conv.bias.detach().cpu().numpy().astype(np.float32)
    y = graph.node("Conv", [x, graph.weight(weight), graph.weight(bias)],
                   kernel_shape=list(weight.shape[2:]))
    slope = prelu.weight.detach().cpu().numpy().astype(np.float32).reshape(-1, 1, 1)
    return graph.node("PRelu", [y, graph.weight(slope)]), size - int(weight.shape[2]) + 1


def _dense(graph: Graph, x: str, layer: torch.nn.Linear) -> str:
    return graph.node("Gemm", [x, graph.weight(layer.weight.detach().cpu().numpy()),
                               graph.weight(layer.bias.detach().cpu().numpy())], transB=1)


def onet_model(net: ONet) -> bytes:
    """The serialised ONNX model: input ``x`` (N, 3, 48, 48) as the torch module takes it,
    output the face logits (N, 2)."""
    g = Graph("onet")
    x, size = _conv(g, "x", net.conv1, net.prelu1, SIDE)
    x, size = _pool(g, x, size, 3, 2, same=True)
    x, size = _conv(g, x, net.conv2, net.prelu2, size)
    x, size = _pool(g, x, size, 3, 2, same=False)
    x, size = _conv(g, x, net.conv3, net.prelu3, size)
    x, size = _pool(g, x, size, 2, 2, same=True)
    x, size = _conv(g, x, net.conv4, net.prelu4, size)
    x = g.node("Flatten", [g.node("Transpose", [x], perm=[0, 3, 2, 1])], axis=1)
    x = _dense(g, x, net.fc5)
    x = g.node("PRelu", [x, g.weight(net.prelu5.weight.detach().cpu().numpy())])
    logits = _dense(g, x, net.fc6_3)
    return g.model([("x", ["batch", 3, SIDE, SIDE])], [(logits, ["batch", 2])])


def face_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax of (N, 2) logits, the face column (as the torch module's output)."""
    logits = np.asarray(logits, np.float64)
    margin = np.clip(logits[:, 0] - logits[:, 1], -700.0, 700.0)  # exp stays finite
    return (1.0 / (1.0 + np.exp(margin))).astype(np.float32)

