"""A small ONNX model writer: float tensors, nodes with int / ints attributes, one graph.

Enough to express a plain feed-forward network whose weights the project already holds in
memory (MTCNN's O-Net, :mod:`cctv_sr.face.onet_onnx`) so that onnxruntime can run it, without
importing the ``onnx`` package (about a second here) or torch's exporter (which imports it).
It writes the protobuf wire format with :mod:`cctv_sr.models.onnx_dims`' encoder; the field
numbers are those of ``onnx.proto`` (ModelProto, GraphProto, NodeProto, AttributeProto,
TensorProto, ValueInfoProto). The tests read what it writes back with the ``onnx`` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cctv_sr.errors import ContractError
from cctv_sr.models.onnx_dims import Field, encode, put_varint

_LEN, _VARINT = 2, 0
_FLOAT = 1  # TensorProto.DataType.FLOAT
_INT64 = 7
_ATTR_INT, _ATTR_INTS = 2, 7  # AttributeProto.AttributeType
IR_VERSION = 8
OPSET = 13


def _text(number: int, text: str) -> Field:
    return (number, _LEN, text.encode())


def _int(number: int, value: int) -> Field:
    return (number, _VARINT, put_varint(value))


def tensor(name: str, array: np.ndarray) -> bytes:
    """A TensorProto of a float32 or int64 array (raw little-endian data)."""
    array = np.ascontiguousarray(array)
    if array.dtype == np.float32:
        kind = _FLOAT
    elif array.dtype == np.int64:
        kind = _INT64
    else:
        raise ContractError(f"onnx tensor {name}: float32 or int64 only, got {array.dtype}")
    fields = [_int(1, int(d)) for d in array.shape]
    fields += [_int(2, kind), _text(8, name), (9, _LEN, array.astype(array.dtype.newbyteorder(
        "<"), copy=False).tobytes())]
    return encode(fields)


def _attribute(name: str, value: int | Sequence[int]) -> bytes:
    if isinstance(value, (int, np.integer)):
        return encode([_text(1, name), _int(3, int(value)), _int(20, _ATTR_INT)])
    return encode([_text(1, name)] + [_int(8, int(v)) for v in value] + [_int(20, _ATTR_INTS)])


def _value_info(name: str, shape: Sequence[int | str]) -> bytes:
    dims = [(1, _LEN, encode([_int(1, d) if isinstance(d, int) else _text(2, d)]))
            for d in shape]
    tensor_type = encode([_int(1, _FLOAT), (2, _LEN, encode(dims))])
    return encode([_text(1, name), (2, _LEN, encode([(1, _LEN, tensor_type)]))])


@dataclass
class Graph:
    """Nodes and initialisers added in order; :meth:`model` serialises the whole model."""

    name: str
    nodes: list[bytes] = field(default_factory=list)
    weights: list[bytes] = field(default_factory=list)
    _count: int = 0

    def weight(self, array: np.ndarray) -> str:
        """Add an initialiser; its name."""
        self._count += 1
        name = f"w{self._count}"
        self.weights.append(tensor(name, array))
        return name

    def node(self, op: str, inputs: Sequence[str], **attrs: int | Sequence[int]) -> str:
        """Add a node with one output; the output's name."""
        self._count += 1
        out = f"t{self._count}"
        fields = [_text(1, x) for x in inputs] + [_text(2, out), _text(3, f"n{self._count}"),
                                                 _text(4, op)]
        fields += [(5, _LEN, _attribute(k, v)) for k, v in attrs.items()]
        self.nodes.append(encode(fields))
        return out

    def model(self, inputs: Sequence[tuple[str, Sequence[int | str]]],
              outputs: Sequence[tuple[str, Sequence[int | str]]]) -> bytes:
        """The serialised ModelProto (opset :data:`OPSET`)."""
        graph = [(1, _LEN, n) for n in self.nodes] + [_text(2, self.name)]
        graph += [(5, _LEN, w) for w in self.weights]
        graph += [(11, _LEN, _value_info(n, s)) for n, s in inputs]
        graph += [(12, _LEN, _value_info(n, s)) for n, s in outputs]
        opset = encode([_text(1, ""), _int(2, OPSET)])
        return encode([_int(1, IR_VERSION), _text(2, "cctv-sr"), (7, _LEN, encode(graph)),
                       (8, _LEN, opset)])
