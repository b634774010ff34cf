"""Training checkpoints: one self-describing file per save, loadable with ``weights_only=True``.

A checkpoint is a dict of plain values and tensors only (``torch.load(path,
weights_only=True)`` reads it; no pickled classes, numpy state as JSON text)::

    format        "cctv_sr.train/1"
    arch          registry name, e.g. "lrnet"
    arch_config   the arch config dataclass as a dict (tuples as lists)
    spec          ModelSpec.to_mapping(): arch, scale, input_sides, window (T), colour "bgr",
                  value_range "float BGR in [0, 1] (uint8 / 255)", license ""
    train_sides   [lo, hi] LR sides the model was trained on
    step          optimizer steps done
    recipe        the recipe (train.recipe.recipe_to_mapping)
    metrics       the last validation's measures ({} before the first)
    model, ema    state dicts (ema: the exponential moving average of the weights)
    optimizer     AdamW state dict; scheduler {"schedule", "step"} (the lr is a function of
                  the step, :func:`cctv_sr.train.loop.lr_at`)
    disc, disc_optimizer   srgan's discriminator and its AdamW (None without one)
    scaler        the CUDA GradScaler state (None on CPU)
    rng           {"python": [...], "numpy": JSON of the data generator, "torch": ByteTensor,
                   "cuda": [ByteTensor, ...]}

:func:`load_checkpoint` gives the EMA network in eval mode and its :class:`ModelSpec`, the way an
SR backend loads one.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cctv_sr.archs import HEAD_ARCHS, build_arch, config_class
from cctv_sr.config import apply_mapping
from cctv_sr.errors import ModelError
from cctv_sr.models.spec import ModelSpec

__all__ = ["FORMAT", "capture_rng", "load_checkpoint", "read_checkpoint", "restore_rng",
           "save_checkpoint", "spec_for"]

FORMAT = "cctv_sr.train/1"
VALUE_RANGE = "float BGR in [0, 1] (uint8 / 255)"
REQUIRED = ("format", "arch", "arch_config", "spec", "step", "recipe", "model", "ema")


def spec_for(arch: str, arch_config: Any) -> ModelSpec:
    """What a trained ``arch`` expects: any input side except srgan (fully convolutional, so
    its side is ``128 / scale``); scale 1 for the LR head."""
    frames = int(getattr(arch_config, "in_frames", 1))
    if arch == "srgan":
        scale = int(arch_config.scale)
        return ModelSpec(arch, scale, (128 // scale,), frames, "bgr", VALUE_RANGE)
    if arch in HEAD_ARCHS:
        return ModelSpec(arch, 1, (), frames, "bgr", VALUE_RANGE)
    if arch == "lrnet":
        return ModelSpec(arch, 4, (), frames, "bgr", VALUE_RANGE)
    return ModelSpec(arch, max(1, int(getattr(arch_config, "out_side", 128)) // 32), (), frames,
                     "bgr", VALUE_RANGE)


def capture_rng(data_state: str) -> dict[str, Any]:
    """Python, torch (and CUDA) RNG states plus the data generator's JSON state."""
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy": data_state,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> str:
    """Restore Python / torch / CUDA RNGs; returns the data generator's JSON state."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    return str(state["numpy"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then an atomic rename."""
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise ModelError(f"checkpoint {path}: missing {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        torch.save(payload, tmp)
    os.replace(tmp.name, path)
    return path


def read_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict (``weights_only=True``); ModelError when unreadable or foreign."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no checkpoint")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise ModelError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ModelError(f"{path}: not a cctv_sr training checkpoint (format {FORMAT})")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise ModelError(f"{path}: checkpoint lacks {missing}")
    return ckpt


def arch_config_from(arch: str, mapping: dict[str, Any]) -> Any:
    """The arch config dataclass from its checkpoint mapping (lists back to tuples)."""
    return apply_mapping(config_class(arch)(), mapping, "arch_config")


def load_checkpoint(path: Path, device: str | torch.device = "cpu", ema: bool = True
                    ) -> tuple[nn.Module, ModelSpec]:
    """The trained network (EMA weights unless ``ema`` is False) in eval mode on ``device``,
    and its :class:`ModelSpec`. Example::

        net, spec = load_checkpoint(Path("runs/lrnet/last.pt"))
        sr = net(x)        # x: (N, spec.window * 3, s, s) BGR in [0, 1]
    """
    ckpt = read_checkpoint(path)
    arch = str(ckpt["arch"])
    net = build_arch(arch, arch_config_from(arch, ckpt["arch_config"]))
    try:
        net.load_state_dict(ckpt["ema" if ema else "model"], strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit {arch} "
                         f"({str(exc).splitlines()[0]})") from None
    return net.to(device).eval(), ModelSpec.from_mapping(ckpt["spec"])
