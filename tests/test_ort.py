"""onnxruntime import and provider choice (the CPU/GPU package clash is a real-world trap)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cctv_sr.models import ort as ort_mod


def test_both_packages_installed_is_explained(monkeypatch, caplog) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(ort_mod, "_warned_clash", False)
    monkeypatch.setattr(ort_mod, "installed_distributions",
                        lambda: ["onnxruntime", "onnxruntime-gpu"])
    with caplog.at_level(logging.WARNING, logger="cctv_sr.models.ort"):
        ort_mod.import_onnxruntime("scrfd")
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in caplog.text


def test_cpu_machine_falls_back_to_cpu_provider(caplog) -> None:
    ort = pytest.importorskip("onnxruntime")
    assert ort_mod.choose_providers(ort, "cpu") == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with caplog.at_level(logging.WARNING, logger="cctv_sr.models.ort"):
        assert ort_mod.choose_providers(ort, "cuda:0") == ["CPUExecutionProvider"]
    assert "no CUDAExecutionProvider" in caplog.text


def test_provider_order_when_cuda_is_there() -> None:
    class FakeOrt:  # stands in for onnxruntime-gpu, which cannot be installed on this CPU box
        @staticmethod
        def get_available_providers() -> list[str]:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    providers = ort_mod.choose_providers(FakeOrt, "cuda:1")
    assert providers == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]


def test_free_dims_rewrites_only_the_declared_shapes() -> None:
    """The shipped YuNet file (fixed [1, 3, 640, 640]) with batch, height and width made free
    by the project's own protobuf edit: the onnx package reads the result, sees the named
    dimensions, no value_info, and the same nodes and weights byte for byte; onnxruntime runs
    a [2, 3, 96, 128] input on it."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    import cctv_sr.models
    from cctv_sr.models.onnx_dims import free_dims

    path = Path(cctv_sr.models.__file__).parent / "weights" / "face_detection_yunet_2023mar.onnx"
    data = path.read_bytes()
    freed = onnx.load_from_string(free_dims(data, {0: "batch", 2: "height", 3: "width"},
                                            {1: "{name}_rows"}))
    onnx.checker.check_model(freed)
    original = onnx.load_from_string(data)
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(freed.graph.input) + list(freed.graph.output)]
    assert dims[0] == ["batch", 3, "height", "width"]
    names = [v.name for v in freed.graph.output]
    assert dims[1:] and all(d[0] == 1 and d[1] == f"{n}_rows" for d, n in zip(dims[1:], names))
    assert len(original.graph.value_info) > 0 and len(freed.graph.value_info) == 0
    assert [n.SerializeToString() for n in freed.graph.node] == \
        [n.SerializeToString() for n in original.graph.node]
    assert [t.SerializeToString() for t in freed.graph.initializer] == \
        [t.SerializeToString() for t in original.graph.initializer]
    session = ort.InferenceSession(freed.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = session.run(None, {"input": np.zeros((2, 3, 96, 128), np.float32)})
    assert outs[0].shape == (1, 2 * 12 * 16, 1)  # cls_8: both images' 8-px cells


def test_free_dims_refuses_what_is_not_a_model() -> None:
    from cctv_sr.errors import ModelError
    from cctv_sr.models.onnx_dims import encode, free_dims, parse

    with pytest.raises(ModelError):
        free_dims(b"\x0a\x05ab", {0: "n"}, {})  # a length running past the end
    with pytest.raises(ModelError):
        free_dims(b"\x0a\xff", {0: "n"}, {})  # a varint cut short
    with pytest.raises(ModelError, match="no graph"):
        free_dims(encode([(1, 0, b"\x07")]), {0: "n"}, {})  # ir_version only
    fields = [(1, 0, b"\xac\x02"), (2, 2, b"x" * 300), (3, 5, b"abcd"), (4, 1, b"12345678")]
    assert parse(encode(fields)) == fields  # varints over 127, long payloads, fixed widths
