"""onnxruntime, imported lazily, with the CPU/GPU package clash detected and explained.

``onnxruntime`` (CPU) and ``onnxruntime-gpu`` install the same ``onnxruntime`` module. Installing
one over the other, which is what ``pip install insightface`` does to a GPU machine (insightface
requires the CPU ``onnxruntime``), leaves whichever was written last, often a CPU-only module
with the GPU package still listed as installed. cctv-sr does not depend on insightface, offers
the two as exclusive extras (``[onnx]``, ``[gpu]``), and says what to do when it finds both.
"""

from __future__ import annotations

import importlib.util
import logging
from importlib import metadata
from typing import Any

from cctv_sr.errors import BackendUnavailableError, ModelError

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "cctv-sr[onnx]" (CPU) or "cctv-sr[gpu]" (onnxruntime-gpu)'
FIX_CLASH = ("pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu "
             "(or onnxruntime on a CPU machine)")


def onnxruntime_installed() -> bool:
    """Whether an ``onnxruntime`` module is installed (the ``[onnx]`` or ``[gpu]`` extra),
    without importing it."""
    return importlib.util.find_spec("onnxruntime") is not None


def installed_distributions() -> list[str]:
    """Which of the packages that provide the ``onnxruntime`` module are installed."""
    found = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        found.append(dist)
    return found


_warned_clash = False


def import_onnxruntime(what: str = "this backend") -> Any:
    """The ``onnxruntime`` module, or :class:`BackendUnavailableError` naming the extra."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(f"{what} needs onnxruntime: {INSTALL_HINT}") from exc
    global _warned_clash
    if not _warned_clash and len(installed_distributions()) > 1:
        _warned_clash = True
        log.warning("both onnxruntime and onnxruntime-gpu are installed (pip install insightface "
                    "does this); they share one module, so the GPU build may be overwritten. "
                    "Fix: %s", FIX_CLASH)
    return onnxruntime


def choose_providers(ort: Any, device: str) -> list[Any]:
    """CUDA first when ``device`` asks for it and this onnxruntime has it, else the CPU."""
    available = ort.get_available_providers()
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" in available:
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        extra = (f"; both packages are installed, fix: {FIX_CLASH}"
                 if len(installed_distributions()) > 1 else f" ({INSTALL_HINT})")
        log.warning("device %r requested but this onnxruntime has no CUDAExecutionProvider%s; "
                    "using the CPU", device, extra)
    return ["CPUExecutionProvider"]


def create_session(model: str | bytes, *, device: str = "cpu", threads: int = 0,
                   what: str = "this model", spin: bool = True) -> Any:
    """An ``InferenceSession`` of ``model`` (a file path or the serialised model) on the
    providers :func:`choose_providers` picks for ``device``, with ``threads`` intra-op threads
    (0: onnxruntime's choice), spinning between calls unless ``spin`` is false (idle threads
    then sleep and leave the cores to the pipeline's other threads). BackendUnavailableError
    without onnxruntime, ModelError (one line) when onnxruntime cannot load the model."""
    ort = import_onnxruntime(what)
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model, sess_options=options,
                                    providers=choose_providers(ort, device))
    except Exception as exc:  # onnxruntime raises its own (pybind) exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{what}: cannot load the ONNX model ({first})") from None
