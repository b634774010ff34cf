"""Free the fixed input/output dimensions of an ONNX model, without the ``onnx`` package.

Some exported detectors (YuNet's ``face_detection_yunet_2023mar.onnx``) declare a fixed input
such as ``[1, 3, 640, 640]`` although the graph runs at any size; onnxruntime refuses any other
input shape. :func:`free_dims` rewrites the declared dimensions as named (symbolic) ones.

It edits the protobuf wire format directly: ``ModelProto.graph`` (field 7) ->
``GraphProto.input`` / ``output`` (11 / 12) -> ``ValueInfoProto.type`` (2) ->
``TypeProto.tensor_type`` (1) -> ``shape`` (2) -> ``dim`` (1), whose ``dim_value`` (1, varint)
becomes a ``dim_param`` (2, string); ``GraphProto.value_info`` (13) goes. Every other byte
of the model (weights included) is copied as it is. Importing ``onnx`` would do the same but
costs about a second here (its ``ml_dtypes`` extension), which a short clip's run would pay
in full.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cctv_sr.errors import ModelError

Field = tuple[int, int, bytes]  # (field number, wire type, payload: the value's own bytes)

_GRAPH, _INPUT, _OUTPUT, _VALUE_INFO, _TYPE, _TENSOR, _SHAPE, _DIM = 7, 11, 12, 13, 2, 1, 2, 1
_DIM_PARAM = 2
_LEN = 2  # wire type of length-delimited fields
_FIXED = {1: 8, 5: 4}  # wire type -> payload bytes


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ModelError("ONNX model: truncated or malformed protobuf varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def put_varint(value: int) -> bytes:
    """The protobuf varint of ``value`` (a negative int64 as its 64-bit two's complement)."""
    if value < 0:
        value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def parse(buf: bytes) -> list[Field]:
    """The top-level fields of one protobuf message, in order."""
    fields: list[Field] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            start = pos
            _, pos = _varint(buf, pos)
        elif wire == _LEN:
            size, start = _varint(buf, pos)
            pos = start + size
        elif wire in _FIXED:
            start, pos = pos, pos + _FIXED[wire]
        else:
            raise ModelError(f"ONNX model: unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise ModelError("ONNX model: truncated protobuf message")
        fields.append((number, wire, buf[start:pos]))
    return fields


def encode(fields: list[Field]) -> bytes:
    """The message of ``fields`` (the inverse of :func:`parse`)."""
    out = bytearray()
    for number, wire, payload in fields:
        out += put_varint(number << 3 | wire)
        if wire == _LEN:
            out += put_varint(len(payload))
        out += payload
    return bytes(out)


def _edit(buf: bytes, number: int, change: Callable[[bytes], bytes]) -> bytes:
    """``buf`` with each length-delimited field ``number`` replaced by ``change(payload)``."""
    return encode([(n, w, change(p) if n == number and w == _LEN else p)
                   for n, w, p in parse(buf)])


def _free_shape(shape: bytes, names: Mapping[int, str], tensor: str) -> bytes:
    fields = parse(shape)
    dims = [k for k, (n, w, _) in enumerate(fields) if n == _DIM and w == _LEN]
    for index, name in names.items():
        if index < len(dims):
            k = dims[index]
            kept = [f for f in parse(fields[k][2]) if f[0] not in (1, _DIM_PARAM)]
            param = name.format(name=tensor).encode()
            fields[k] = (_DIM, _LEN, encode([(_DIM_PARAM, _LEN, param)] + kept))
    return encode(fields)


def _free_value_info(value_info: bytes, names: Mapping[int, str]) -> bytes:
    tensor = next((p.decode(errors="replace") for n, w, p in parse(value_info)
                   if n == 1 and w == _LEN), "")
    return _edit(value_info, _TYPE, lambda t: _edit(
        t, _TENSOR, lambda tt: _edit(tt, _SHAPE, lambda s: _free_shape(s, names, tensor))))


def free_dims(model: bytes, inputs: Mapping[int, str], outputs: Mapping[int, str]) -> bytes:
    """``model`` (serialised ONNX) with dimension ``i`` of every graph input named
    ``inputs[i]`` and of every output ``outputs[i]`` (e.g. ``{0: "batch", 2: "height"}``;
    ``{name}`` in a name becomes the tensor's own name, so outputs of different lengths get
    different dimension names).
    The graph's ``value_info`` (intermediate shapes inferred for the fixed size) is dropped:
    onnxruntime infers them again for each input shape."""
    def graph(g: bytes) -> bytes:
        out = []
        for n, w, p in parse(g):
            if n == _VALUE_INFO:
                continue
            if w == _LEN and n == _INPUT:
                p = _free_value_info(p, inputs)
            elif w == _LEN and n == _OUTPUT:
                p = _free_value_info(p, outputs)
            out.append((n, w, p))
        return encode(out)

    fields = parse(model)
    if not any(n == _GRAPH and w == _LEN for n, w, _ in fields):
        raise ModelError("ONNX model: no graph in the file")
    return encode([(n, w, graph(p) if n == _GRAPH and w == _LEN else p) for n, w, p in fields])
