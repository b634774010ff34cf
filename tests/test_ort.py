"""onnxruntime import and provider choice (the CPU/GPU package clash is a real-world trap)."""

from __future__ import annotations

import logging

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
