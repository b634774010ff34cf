"""Shipping a trained net: a slim weights file, or an ONNX file that carries its ModelSpec.

A training checkpoint (:mod:`cctv_sr.train.checkpoint`) holds everything needed to resume:
the raw weights, the EMA weights, the optimizer state (twice the weights again) and every RNG
state. What an inference backend needs is the EMA network and its spec, so two smaller forms
are made from it (``cctv-sr export``, :mod:`cctv_sr.cli.export`):

* :func:`slim_checkpoint`: the same format (``cctv_sr.train/1``) with only the keys
  :func:`~cctv_sr.train.checkpoint.load_checkpoint` reads plus ``train_sides``, ``elapsed_s``,
  ``metrics`` and ``slim = True``; ``model`` and ``ema`` are both the EMA weights (the same
  tensors, stored once), floating-point tensors as contiguous float32 on the CPU (float16 with
  ``half``, ``half = True`` in the file: for the large baselines). It loads
  wherever a checkpoint does (``--sr trained``, ``--methods lrhead=``) but cannot be resumed.
* :func:`export_onnx`: the EMA network traced by torch's TorchScript exporter (``dynamo=False``),
  input ``"lr"`` ``(batch, T*3, side, side)`` BGR in [0, 1], output ``"out"``, the batch axis
  dynamic. ``side`` is fixed to the side the net resamples its input to (lrnet, lrhead:
  ``arch_config.in_side``; lrmfn: 112; srgan: ``128 / scale``, the only side it takes; ipunet:
  ``out_side``, i.e. 128, since its first step is bicubic to that side, so crops resized to it
  first give exactly the torch output), so the resampling at the top of ``forward`` is a no-op
  in the graph. Bicubic *upsampling* that stays in the graph (lrnet's skip, ipunet's
  input) is an ONNX ``Resize`` that matches torch; anti-aliased shrinking has no ONNX op, so a
  side above that target is refused. Callers resize crops to ``side`` first (see
  :mod:`cctv_sr.sr.trained_onnx`). The spec's ``input_sides`` becomes ``(side,)``.

ONNX metadata (``metadata_props``, strings): ``cctv_sr.format`` = ``"cctv_sr.onnx/1"``,
``cctv_sr.spec`` (JSON of :meth:`ModelSpec.to_mapping`), ``cctv_sr.arch``,
``cctv_sr.arch_config`` (JSON), ``cctv_sr.step``. Before the file is written, onnxruntime (CPU)
runs it on a fixed-seed batch of 8 random inputs against torch; a max abs difference above
1e-3 is a ModelError, and the figure is returned. Example::

    done = export_onnx(Path("runs/lrnet/last.pt"), Path("lrnet.onnx"))
    done.input_side, done.max_abs_diff          # (32, 3.6e-07)
    spec, meta = read_onnx_spec(Path("lrnet.onnx"))
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cctv_sr.archs import HEAD_ARCHS
from cctv_sr.errors import BackendUnavailableError, ConfigError, ModelError
from cctv_sr.models.ort import INSTALL_HINT, create_session
from cctv_sr.models.spec import ModelSpec
from cctv_sr.train.checkpoint import (
    arch_config_from,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

__all__ = ["ONNX_FORMAT", "OnnxExport", "export_onnx", "export_sides", "onnx_metadata",
           "read_onnx_spec", "slim_checkpoint", "spec_from_metadata"]

log = logging.getLogger(__name__)

ONNX_FORMAT = "cctv_sr.onnx/1"
INPUT, OUTPUT = "lr", "out"
PARITY_TOL = 1e-3  # max abs difference allowed between onnxruntime and torch
PARITY_BATCH = 8
PARITY_SEED = 0
MIN_OPSET = 11  # bicubic Resize
SLIM_KEYS = ("format", "arch", "arch_config", "spec", "step", "recipe", "train_sides",
             "elapsed_s", "metrics")


@dataclass(frozen=True)
class OnnxExport:
    """One ONNX export: the file, its arch and spec (``input_sides == (input_side,)``), and the
    parity check (max abs difference onnxruntime vs torch over ``n_checked`` inputs)."""

    path: Path
    arch: str
    spec: ModelSpec
    input_side: int
    max_abs_diff: float
    n_checked: int


def _ship_tensor(t: torch.Tensor, half: bool) -> torch.Tensor:
    t = t.detach().to("cpu")
    if t.is_floating_point():
        t = t.half() if half else t.float()
    return t.contiguous()


def slim_checkpoint(src: Path, dst: Path, half: bool = False) -> Path:
    """A ship-ready weights file at ``dst`` from the training checkpoint ``src`` (see the module
    docstring); written atomically. ``half`` stores the floating-point tensors as float16 (half
    the file; ``load_state_dict`` casts them back to the float32 parameters, so outputs move
    by about 1e-3 of their range). Returns ``dst``."""
    src, dst = Path(src), Path(dst)
    ckpt = read_checkpoint(src)
    weights = {k: _ship_tensor(v, half) for k, v in ckpt["ema"].items()}
    payload: dict[str, Any] = {k: ckpt[k] for k in SLIM_KEYS if k in ckpt}
    # two dicts, the same tensors: torch.save writes each storage once
    payload.update(model=dict(weights), ema=weights, slim=True, half=bool(half))
    save_checkpoint(dst, payload)
    log.info("slim checkpoint %s (%d bytes) from %s (%d bytes)", dst, dst.stat().st_size, src,
             src.stat().st_size)
    return dst


def export_sides(arch: str, config: Any, spec: ModelSpec) -> tuple[int, int | None]:
    """``(side, largest)``: the input side an export of ``arch`` uses by default, and the largest
    side its graph can take without anti-aliased shrinking (None: any)."""
    if arch == "lrnet" or arch in HEAD_ARCHS:
        return int(config.in_side), int(config.in_side)
    if len(spec.input_sides) == 1:  # a fixed-side net (srgan: 128 / scale), from its spec
        return int(spec.input_sides[0]), int(spec.input_sides[0])
    if arch == "ipunet":  # its first step is bicubic to out_side: feeding that side is exact
        return int(config.out_side), int(config.out_side)
    raise ModelError(f"{arch}: no ONNX export for this architecture")


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise BackendUnavailableError(f"ONNX export needs the onnx package: {INSTALL_HINT}"
                                      ) from exc
    return onnx


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _trace(net: torch.nn.Module, channels: int, side: int, opset: int) -> bytes:
    """The TorchScript exporter's ONNX bytes of ``net`` at ``(batch, channels, side, side)``."""
    example = torch.rand(2, channels, side, side)  # batch 2: nothing specialises on a batch of 1
    with tempfile.TemporaryDirectory(prefix="cctv_sr_onnx_") as tmp:
        path = Path(tmp) / "net.onnx"
        try:
            with warnings.catch_warnings():
                # the input checks are Python bools under tracing (constant: fine at a fixed
                # side); the legacy exporter warns that it is legacy
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=opset,
                                  input_names=[INPUT], output_names=[OUTPUT],
                                  dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        except Exception as exc:  # the exporter raises many unrelated types
            raise ModelError(f"ONNX export failed at opset {opset}: {_first_line(exc)}"
                             ) from None
        return path.read_bytes()


def _parity(net: torch.nn.Module, model: bytes, channels: int, side: int, what: str) -> float:
    """Max abs difference onnxruntime (CPU) vs torch on a fixed-seed random batch."""
    gen = torch.Generator().manual_seed(PARITY_SEED)
    x = torch.rand(PARITY_BATCH, channels, side, side, generator=gen)
    session = create_session(model, device="cpu", threads=torch.get_num_threads(), what=what)
    got = np.asarray(session.run([OUTPUT], {INPUT: x.numpy()})[0], np.float32)
    with torch.inference_mode():
        ref = net(x).float().numpy()
    if got.shape != ref.shape:
        raise ModelError(f"{what}: onnxruntime gives {got.shape}, torch {ref.shape}")
    return float(np.abs(got - ref).max())


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)


def export_onnx(src: Path, dst: Path, *, opset: int = 17, side: int | None = None
                ) -> OnnxExport:
    """The EMA network of the checkpoint ``src`` as an ONNX file at ``dst`` with its spec in
    the metadata, parity-checked against torch (module docstring). ``side`` overrides the
    input side (at most the net's resampling target). ModelError when the export fails or its
    outputs differ from torch by more than 1e-3; ConfigError for a bad opset or side."""
    src, dst = Path(src), Path(dst)
    onnx = _import_onnx()
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ConfigError(f"ONNX opset must be an integer >= {MIN_OPSET} (bicubic Resize), got "
                          f"{opset!r}")
    ckpt = read_checkpoint(src)
    arch = str(ckpt["arch"])
    net, spec = load_checkpoint(src)
    native, largest = export_sides(arch, arch_config_from(arch, ckpt["arch_config"]), spec)
    if side is None:
        side = native
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise ConfigError(f"ONNX input side must be a positive integer, got {side!r}")
    if len(spec.input_sides) == 1 and side != spec.input_sides[0]:
        raise ConfigError(f"{arch}: trained on {spec.input_sides[0]} px windows only; its ONNX "
                          f"input side must be {spec.input_sides[0]}, not {side}")
    if largest is not None and side > largest:
        raise ConfigError(f"{arch}: input side {side} > {largest}, which the net would shrink "
                          f"with anti-aliased bicubic (no ONNX op); resize the crops first")
    spec = replace(spec, input_sides=(side,))
    channels = 3 * spec.window
    model = onnx.load_model_from_string(_trace(net, channels, side, opset))
    onnx.helper.set_model_props(model, {
        "cctv_sr.format": ONNX_FORMAT,
        "cctv_sr.spec": json.dumps(spec.to_mapping()),
        "cctv_sr.arch": arch,
        "cctv_sr.arch_config": json.dumps(ckpt["arch_config"]),
        "cctv_sr.step": str(int(ckpt["step"])),
    })
    model.doc_string = f"cctv_sr {arch}, step {int(ckpt['step'])}, from {src.name}"
    data = model.SerializeToString()
    diff = _parity(net, data, channels, side, f"{src} -> ONNX")
    if not diff <= PARITY_TOL:  # also catches NaN
        raise ModelError(f"{src}: the ONNX export differs from torch by {diff:.3g} (max abs over "
                         f"{PARITY_BATCH} inputs, allowed {PARITY_TOL:g}); not written")
    _write_atomic(dst, data)
    log.info("exported %s (%s, input %dx%dx%d, opset %d) to %s; parity %.3g", src, arch,
             channels, side, side, opset, dst, diff)
    return OnnxExport(dst, arch, spec, side, diff, PARITY_BATCH)


def onnx_metadata(session: Any) -> dict[str, str]:
    """The custom metadata of an onnxruntime session's model, as strings."""
    return {str(k): str(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}


def spec_from_metadata(meta: dict[str, str], path: Path) -> ModelSpec:
    """The ModelSpec an ``export_onnx`` file carries; ModelError for any other ONNX file."""
    if meta.get("cctv_sr.format") != ONNX_FORMAT or "cctv_sr.spec" not in meta:
        raise ModelError(f"{path}: not a cctv_sr ONNX export (no cctv_sr.format = "
                         f"{ONNX_FORMAT} in its metadata; make one with cctv-sr export)")
    try:
        mapping = json.loads(meta["cctv_sr.spec"])
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: cctv_sr.spec is not JSON ({exc})") from None
    if not isinstance(mapping, dict):
        raise ModelError(f"{path}: cctv_sr.spec is not a JSON object")
    return ModelSpec.from_mapping(mapping)


def read_onnx_spec(path: Path) -> tuple[ModelSpec, dict[str, str]]:
    """The spec and the full custom metadata of an ONNX file made by :func:`export_onnx`
    (read with onnxruntime); ModelError for a missing, unreadable or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such ONNX file")
    session = create_session(str(path), what=str(path))
    meta = onnx_metadata(session)
    return spec_from_metadata(meta, path), meta
