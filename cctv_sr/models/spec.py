"""``ModelSpec``: what a model expects and produces, so preprocessing never guesses.

A spec says which architecture a weight file is for and how to feed it: the upscale factor, the
input sides it was trained on, how many frames it reads (``window``, T), the colour order and
value range of its input, and its licence. Shipped models carry it in the ``[spec]`` table of
their manifest (:meth:`ModelSpec.from_manifest`); the project's own checkpoints and ONNX exports
will carry the same keys in their metadata, which is why the spec converts to and from a plain
mapping (:meth:`ModelSpec.to_mapping`, :meth:`ModelSpec.from_mapping`). ONNX metadata holds only
strings, so :meth:`from_mapping` also accepts every value as a string (``"4"``, ``"16,32"``).

Keys the spec does not know (match thresholds, ``runtime``, ``embedding_dim``, ...) stay in the
manifest: read them with :meth:`~cctv_sr.models.manifest.ModelManifest.spec_value`.

Example::

    spec = ModelSpec.from_manifest(get_manifest("espcn_x4"))
    spec.scale, spec.colour          # (4, "bgr")
    ModelSpec.from_mapping(spec.to_mapping()) == spec   # True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cctv_sr.errors import ModelError

if TYPE_CHECKING:
    from cctv_sr.models.manifest import ModelManifest

COLOURS = ("bgr", "rgb")
#: the keys :meth:`ModelSpec.to_mapping` writes and :meth:`ModelSpec.from_mapping` reads
SPEC_KEYS = ("arch", "scale", "input_sides", "window", "colour", "value_range", "license")

MappingValue = str | int | float | bool | tuple[int, ...] | list[int]


@dataclass(frozen=True)
class ModelSpec:
    """How to run one model's weights.

    ``arch``: the architecture the weights belong to (e.g. ``"espcn"``, ``"iresnet50"``).
    ``scale``: output side / input side (1 for models that do not upscale).
    ``input_sides``: the square input sides the model was made for, e.g. ``(16, 32)`` for an SR
    model or ``(112,)`` for an embedder; empty when any size works.
    ``window``: frames per input (T; 1 for single-frame models).
    ``colour``: channel order of the input, ``"bgr"`` or ``"rgb"``.
    ``value_range``: the input scaling in words, e.g. ``"0-255 uint8"``, ``"(x - 127.5) / 128"``.
    ``license``: the licence of the weights.
    """

    arch: str
    scale: int = 1
    input_sides: tuple[int, ...] = ()
    window: int = 1
    colour: str = "bgr"
    value_range: str = ""
    license: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str) or not self.arch.strip():
            raise ModelError(f"model spec: 'arch' must be a non-empty string, got {self.arch!r}")
        for key in ("scale", "window"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"model spec: '{key}' must be an integer >= 1, got {value!r}")
        sides = self.input_sides
        if not isinstance(sides, tuple) or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sides
        ):
            raise ModelError(f"model spec: 'input_sides' must be positive integers, got {sides!r}")
        if self.colour not in COLOURS:
            raise ModelError(f"model spec: 'colour' must be one of {', '.join(COLOURS)}, got "
                             f"{self.colour!r}")
        for key in ("value_range", "license"):
            if not isinstance(getattr(self, key), str):
                raise ModelError(f"model spec: '{key}' must be a string, got "
                                 f"{getattr(self, key)!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> ModelSpec:
        """A spec from a plain mapping (a manifest's ``[spec]``, checkpoint or ONNX metadata).

        Unknown keys are ignored (they belong to whoever wrote them); ``arch`` is required.
        Numbers may be given as strings and ``input_sides`` as ``"16,32"``; a bad value raises
        :class:`~cctv_sr.errors.ModelError` naming the key.
        """
        if "arch" not in data:
            raise ModelError("model spec: 'arch' is missing")
        return cls(
            arch=str(data["arch"]),
            scale=_as_int(data.get("scale", 1), "scale"),
            input_sides=_as_sides(data.get("input_sides", ())),
            window=_as_int(data.get("window", 1), "window"),
            colour=str(data.get("colour", "bgr")).lower(),
            value_range=str(data.get("value_range", "")),
            license=str(data.get("license", "")),
        )

    @classmethod
    def from_manifest(cls, manifest: ModelManifest) -> ModelSpec:
        """The spec of a manifest: its ``[spec]`` table plus its licence; ``arch`` defaults to
        the manifest name when the table does not set it."""
        data: dict[str, object] = {"arch": manifest.name, **dict(manifest.spec)}
        data["license"] = manifest.license
        try:
            return cls.from_mapping(data)
        except ModelError as exc:
            raise ModelError(f"model '{manifest.name}': {exc}") from None

    def to_mapping(self) -> dict[str, MappingValue]:
        """The spec as plain values (``input_sides`` as a list), for metadata and JSON."""
        return {
            "arch": self.arch,
            "scale": self.scale,
            "input_sides": list(self.input_sides),
            "window": self.window,
            "colour": self.colour,
            "value_range": self.value_range,
            "license": self.license,
        }


def _as_int(value: object, key: str) -> int:
    # bool is an int in Python; a spec that says `scale = true` is a typo, not 1
    if isinstance(value, bool):
        raise ModelError(f"model spec: '{key}' must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        return int(value)
    raise ModelError(f"model spec: '{key}' must be an integer, got {value!r}")


def _as_sides(value: object) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = [p for p in value.strip().strip("[]()").replace(" ", "").split(",") if p]
        return tuple(_as_int(p, "input_sides") for p in parts)
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(_as_int(v, "input_sides") for v in value)
    raise ModelError(f"model spec: 'input_sides' must be a list of integers, got {value!r}")
