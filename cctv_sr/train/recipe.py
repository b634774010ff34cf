"""Training recipes: one TOML file, typed frozen dataclasses, ``--set`` overrides.

A recipe has the tables ``[arch]`` (``name`` and an ``[arch.config]`` table with the fields of
that architecture's config dataclass, see :mod:`cctv_sr.archs`), ``[data]`` (with
``[data.degrade]``, the fields of :class:`cctv_sr.data.augment.DegradeConfig`), ``[loss]``
(with ``[loss.discriminator]`` for srgan's adversarial loss), ``[optim]`` and ``[run]``. Every
key has a default; unknown keys are errors that suggest the nearest key (the machinery of
:mod:`cctv_sr.config`). Example::

    recipe = load_recipe(Path("pipelines/train_lrnet.toml"), ["run.steps=100"])
    recipe.mode                          # "sr" (or "distill" for lrhead and lrmfn)
    recipe_from_mapping(recipe_to_mapping(recipe)) == recipe   # True

The mapping form (:func:`recipe_to_mapping`) holds only dicts, lists, str, int, float and bool,
so it goes into checkpoints loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cctv_sr.archs import HEAD_ARCHS, config_class
from cctv_sr.archs.srgan import SrganDiscriminatorConfig
from cctv_sr.config import apply_mapping, parse_override, read_toml
from cctv_sr.data.augment import DegradeConfig
from cctv_sr.errors import ConfigError

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

__all__ = ["DataConfig", "LossConfig", "OptimConfig", "Recipe", "RunSection", "load_recipe",
           "plain", "recipe_from_mapping", "recipe_to_mapping"]

TRAINABLE = ("lrnet", "ipunet", "srgan", *HEAD_ARCHS)
INITS = ("", "teacher")  # arch.init: random, the identity net's weights (lrmfn), or a CKPT path
PIXEL_LOSSES = ("l1", "charbonnier")
SCHEDULES = ("cosine", "step", "constant")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class DataConfig:
    """Where the crops come from and how they are degraded."""

    trainset: str = ""  # .npz from build_trainset; empty = data.trainset.default_trainset_path()
    val_fraction: float = 0.05  # share of groups (identities / clips) held out for validation
    split_seed: int = 0
    in_frames: int = 0  # T; 0 = the arch config's in_frames (a different value is an error)
    side: int = 0  # LR side of every batch; 0 = drawn per batch from degrade.side_range
    val_faces: int = 256  # at most this many validation faces
    val_sides: tuple[int, ...] = (16, 24, 32)  # fixed LR sides of the validation faces, cycled
    val_seed: int = 12345  # the validation degradations (fixed for the whole run)
    teacher_cache: str = ""  # lrhead: folder of teacher embeddings; empty = <cache>/train/teacher
    degrade: DegradeConfig = field(default_factory=DegradeConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.in_frames < 0 or self.val_faces < 1 or not 0 <= self.side <= 128:
            raise ConfigError("data: in_frames >= 0, val_faces >= 1 and side in 0..128")
        if not self.val_sides or any(not 4 <= s <= 128 for s in self.val_sides):
            raise ConfigError(f"data.val_sides must be sides in 4..128, got {self.val_sides}")


@dataclass(frozen=True)
class LossConfig:
    """Loss terms and weights; a weight of 0 turns a term off (and skips its network)."""

    pixel: str = "charbonnier"  # l1 | charbonnier
    pixel_weight: float = 1.0
    charbonnier_eps: float = 1e-3
    identity_weight: float = 0.1  # 1 - cosine of MobileFaceNet embeddings, SR vs HR
    perceptual_weight: float = 0.0
    vgg19: str = ""  # torchvision vgg19 state dict; empty = MobileFaceNet features (a warning)
    perceptual_layers: tuple[str, ...] = ("relu2_2", "relu3_4", "relu4_4")  # VGG19 only
    adversarial_weight: float = 0.0  # srgan_d discriminator, non-saturating BCE
    disc_lr: float = 1e-4
    discriminator: SrganDiscriminatorConfig = field(default_factory=SrganDiscriminatorConfig)
    embedder: str = ""  # MobileFaceNet state dict; empty = the shipped mobilefacenet.pt
    distill_cosine_weight: float = 1.0  # lrhead: 1 - cosine to the teacher embedding
    distill_relation_weight: float = 1.0  # lrhead: MSE of the batch similarity matrices

    def __post_init__(self) -> None:
        if self.pixel not in PIXEL_LOSSES:
            raise ConfigError(f"loss.pixel must be one of {PIXEL_LOSSES}, got {self.pixel!r}")
        weights = ("pixel_weight", "identity_weight", "perceptual_weight",
                   "adversarial_weight", "distill_cosine_weight", "distill_relation_weight")
        if any(getattr(self, w) < 0 for w in weights) or self.charbonnier_eps <= 0:
            raise ConfigError("loss: weights must be >= 0 and charbonnier_eps > 0")
        if self.disc_lr <= 0:
            raise ConfigError(f"loss.disc_lr must be > 0, got {self.disc_lr}")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and the learning-rate schedule (linear warmup, then cosine / step / constant)."""

    lr: float = 2e-4
    weight_decay: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.99
    schedule: str = "cosine"  # cosine (to min_lr_ratio * lr at the last step) | step | constant
    warmup_steps: int = 0
    min_lr_ratio: float = 0.01
    step_size: int = 1000  # step schedule: lr *= gamma every step_size steps
    gamma: float = 0.5
    grad_clip: float = 0.0  # max gradient norm; 0 = no clipping

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {SCHEDULES}, got "
                              f"{self.schedule!r}")
        if self.lr <= 0 or self.warmup_steps < 0 or self.step_size < 1 or self.grad_clip < 0:
            raise ConfigError("optim: lr > 0, warmup_steps >= 0, step_size >= 1, grad_clip >= 0")
        if not (0 <= self.min_lr_ratio <= 1 and 0 < self.gamma <= 1 and 0 <= self.beta1 < 1
                and 0 <= self.beta2 < 1):
            raise ConfigError("optim: min_lr_ratio in [0, 1], gamma in (0, 1], betas in [0, 1)")


@dataclass(frozen=True)
class RunSection:
    """How long, how big, where, on what."""

    steps: int = 10000
    batch_size: int = 16
    val_every: int = 500
    ckpt_every: int = 1000
    log_every: int = 10  # rows of train.csv
    seed: int = 0
    ema_decay: float = 0.999  # 0 = the EMA weights are the weights
    device: str = "cpu"  # cpu | cuda
    amp: bool = True  # float16 autocast + grad scaling, on CUDA only (ignored on CPU)
    out_dir: str = ""  # empty = <cache root>/train/runs/<arch>; never inside the repository
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    prefetch: int = 2  # batches degraded ahead in a background thread; 0 = in the loop

    def __post_init__(self) -> None:
        ints = ("steps", "batch_size", "val_every", "ckpt_every", "log_every")
        if any(getattr(self, n) < 1 for n in ints) or self.threads < 0 or self.prefetch < 0:
            raise ConfigError(f"run: {', '.join(ints)} must be >= 1, threads and prefetch >= 0")
        if self.batch_size < 2:
            raise ConfigError("run.batch_size must be >= 2 (BatchNorm and the relational loss)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"run.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.device.split(":")[0] not in DEVICES:
            raise ConfigError(f"run.device must be cpu, cuda or cuda:N, got {self.device!r}")


@dataclass(frozen=True)
class Recipe:
    """One training run. ``arch_config`` is an instance of ``config_class(arch)``."""

    arch: str
    arch_config: Any
    # [arch] init: "" random | "teacher" (lrmfn: the MobileFaceNet weights) | the path of a
    # `cctv-sr train` checkpoint of the same arch and config (its EMA weights; e.g. SRGAN's
    # adversarial phase from its SRResNet phase)
    arch_init: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunSection = field(default_factory=RunSection)

    @property
    def mode(self) -> str:
        """``distill`` for the LR identity head, ``sr`` for the super-resolvers."""
        return "distill" if self.arch in HEAD_ARCHS else "sr"

    @property
    def frames(self) -> int:
        """T, the frames per input window."""
        return int(getattr(self.arch_config, "in_frames", 1))


def plain(value: Any) -> Any:
    """``value`` with dataclasses as dicts and tuples as lists (checkpoint- and JSON-safe)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def recipe_to_mapping(recipe: Recipe) -> dict[str, Any]:
    """The recipe as the TOML layout in plain values."""
    return {"arch": {"name": recipe.arch, "config": plain(recipe.arch_config),
                     "init": recipe.arch_init},
            "data": plain(recipe.data), "loss": plain(recipe.loss),
            "optim": plain(recipe.optim), "run": plain(recipe.run)}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def recipe_from_mapping(data: dict[str, Any], overrides: list[str] | None = None) -> Recipe:
    """A recipe from the TOML layout (a parsed file or a checkpoint's ``recipe``), then each
    ``a.b=value`` override in order."""
    for text in overrides or []:
        data = _merge(data, parse_override(text))
    data = dict(data)
    arch_table = data.pop("arch", None)
    if not isinstance(arch_table, dict) or "name" not in arch_table:
        raise ConfigError(f"recipe: an [arch] table with a name is required (one of "
                          f"{', '.join(TRAINABLE)})")
    arch_table = dict(arch_table)
    name = str(arch_table.pop("name"))
    if name not in TRAINABLE:
        raise ConfigError(f"arch.name: {name!r} is not trainable here (one of "
                          f"{', '.join(TRAINABLE)})")
    config_table = arch_table.pop("config", {})
    init = str(arch_table.pop("init", ""))
    if arch_table:
        raise ConfigError(f"arch: unknown key(s) {sorted(arch_table)} (known: name, config, "
                          "init)")
    if init not in INITS and not init.endswith(".pt"):
        raise ConfigError(f"arch.init must be '', 'teacher' or a checkpoint file (.pt), got "
                          f"{init!r}")
    if init == "teacher" and name != "lrmfn":
        raise ConfigError(f"arch.init = 'teacher' starts from MobileFaceNet's weights: only "
                          f"lrmfn has that architecture, not {name}")
    if not isinstance(config_table, dict):
        raise ConfigError("arch.config: expected a table")
    arch_config = apply_mapping(config_class(name)(), config_table, "arch.config")
    recipe = apply_mapping(Recipe(arch=name, arch_config=arch_config, arch_init=init), data,
                           "")
    frames = recipe.frames
    if recipe.data.in_frames not in (0, frames):
        raise ConfigError(f"data.in_frames = {recipe.data.in_frames} but arch.config.in_frames "
                          f"= {frames}; set one of them (0 = the arch's)")
    if recipe.mode == "distill" and (recipe.loss.perceptual_weight or
                                     recipe.loss.adversarial_weight):
        raise ConfigError(f"{name} is distilled from embeddings: perceptual and "
                          "adversarial weights must be 0")
    return recipe


def load_recipe(path: Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe TOML file, then apply ``--set`` style overrides."""
    return recipe_from_mapping(read_toml(path, "recipe"), overrides)
