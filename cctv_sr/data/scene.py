"""Synthetic CCTV scenes with ground truth for ``cctv-sr eval detect`` (docs/EVAL.md section 5).

People are face photos on simple bodies (a torso of a random clothing colour and two swinging
legs) walking over real footage (a background video, looped and resized to the scene) or the
synthetic backdrop of :mod:`cctv_sr.data.synth`; each person has one face width from
``widths``; per width, one walks across the scene and one stands almost still. The frame is
defocused (Gaussian blur) and H.264-encoded at CRF 30 through PyAV. Ground truth: each
person's face box in every frame it is on screen, written as JSON beside the clip.

Face photos: an LFW-style tree (``<root>/<name>/*.jpg``, 250 x 250, the face in the middle,
about 105 px wide), one person per name, or any list of head patches.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.data.encode import write_h264
from cctv_sr.data.synth import _paste, background
from cctv_sr.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

# In a 250 x 250 LFW photo the face box is about 105 px wide around (125, 120); the head patch
# is the 200 px square around it.
LFW_PATCH = (25, 20, 200)
LFW_FACE_FRAC = 105.0 / 200.0
CRF = 30


@dataclass(frozen=True)
class SceneSpec:
    """What to make: size, rate, length, face widths and people per width, the seed and the
    sources (a background video; a face tree, else the patches given to :func:`make_scene`)."""

    width: int = 1920
    height: int = 1080
    fps: float = 25.0
    seconds: float = 8.0
    widths: tuple[int, ...] = (12, 16, 20, 24, 32, 40)
    people_per_width: int = 2
    seed: int = 0
    background: str = ""
    faces: str = ""
    blur_sigma: float = 0.8

    @property
    def frames(self) -> int:
        return max(1, int(round(self.seconds * self.fps)))

    def key(self) -> str:
        """A short stable name for caching the rendered clip."""
        import hashlib

        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Person:
    pid: int
    width_px: int
    x0: float
    vx: float  # px per frame
    y_face: float
    first: int
    last: int
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class SceneTruth:
    """Per frame, ``(person id, face width class, [x0, y0, x1, y1])`` of every face on screen."""

    spec: SceneSpec
    people: tuple[Person, ...]
    frames: tuple[tuple[tuple[int, int, tuple[float, float, float, float]], ...], ...]

    def to_json(self) -> dict[str, object]:
        return {"spec": asdict(self.spec), "people": [asdict(p) for p in self.people],
                "frames": [[[pid, w, list(b)] for pid, w, b in f] for f in self.frames]}

    @classmethod
    def from_json(cls, data: dict) -> SceneTruth:
        spec_data = dict(data["spec"])
        spec_data["widths"] = tuple(spec_data["widths"])
        people = tuple(Person(**{**p, "colour": tuple(p["colour"])}) for p in data["people"])
        frames = tuple(tuple((int(pid), int(w), tuple(float(v) for v in b)) for pid, w, b in f)
                       for f in data["frames"])
        return cls(SceneSpec(**spec_data), people, frames)  # type: ignore[arg-type]


def lfw_patches(root: Path, count: int, seed: int) -> list[np.ndarray]:
    """``count`` head patches of different people from an LFW-style tree (seeded choice)."""
    if not Path(root).is_dir():
        raise ConfigError(f"{root}: not a folder of face photos (an LFW-style tree)")
    names = sorted(p for p in Path(root).iterdir() if p.is_dir())
    if len(names) < count:
        raise ConfigError(f"{root}: {len(names)} identities, the scene needs {count}")
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(names), count, replace=False):
        files = sorted(names[int(i)].glob("*.jpg"))
        image = cv2.imread(str(files[0])) if files else None
        if image is None:
            raise SourceError(f"{names[int(i)]}: no readable .jpg")
        image = cv2.resize(image, (250, 250)) if image.shape[:2] != (250, 250) else image
        x, y, s = LFW_PATCH
        out.append(image[y:y + s, x:x + s].copy())
    return out


def _backgrounds(spec: SceneSpec) -> Iterator[np.ndarray]:
    if not spec.background:
        still = background(spec.width, spec.height, spec.seed)
        while True:
            yield still
    import av

    while True:
        try:
            with av.open(spec.background) as container:
                for frame in container.decode(video=0):
                    image = frame.to_ndarray(format="bgr24")
                    yield cv2.resize(image, (spec.width, spec.height),
                                     interpolation=cv2.INTER_LINEAR)
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"{spec.background}: cannot decode the background ({exc})") from exc


def plan_people(spec: SceneSpec) -> list[Person]:
    """Who walks where: per width, a walker (about 6 face widths a second, across the frame)
    and, with two or more per width, people who stand almost still."""
    rng = np.random.default_rng(spec.seed)
    people: list[Person] = []
    n = spec.frames
    rows = len(spec.widths) * spec.people_per_width
    for w in spec.widths:
        for j in range(spec.people_per_width):
            pid = len(people)
            lane = (pid + 0.5) / rows
            y_face = spec.height * (0.12 + 0.6 * lane)
            walking = j % 2 == 0
            speed = (6.0 * w / spec.fps) * (1 if rng.random() < 0.5 else -1) if walking else (
                0.3 * (1 if rng.random() < 0.5 else -1))
            x0 = rng.uniform(0.15, 0.85) * spec.width
            if walking:  # start where the walk stays on screen the longest
                x0 = spec.width * (0.1 if speed > 0 else 0.9)
            first = int(rng.integers(0, max(1, n // 6)))
            colour = tuple(int(c) for c in rng.integers(30, 220, 3))
            people.append(Person(pid, int(w), float(x0), float(speed), float(y_face), first,
                                 n - 1, colour))  # type: ignore[arg-type]
    return people


def _draw_body(frame: np.ndarray, p: Person, cx: float, index: int, fps: float) -> None:
    w = p.width_px
    top = p.y_face + 0.75 * w
    torso = (int(cx), int(top + 1.4 * w))
    cv2.ellipse(frame, torso, (int(1.1 * w), int(1.6 * w)), 0, 0, 360, p.colour, -1,
                cv2.LINE_AA)
    swing = np.sin(index / fps * 2 * np.pi * 1.5) * 0.5 * w if p.vx != 0 else 0.0
    hip = (int(cx), int(top + 2.8 * w))
    dark = tuple(int(c * 0.5) for c in p.colour)
    for s in (-1, 1):
        foot = (int(cx + s * swing), int(top + 5.0 * w))
        cv2.line(frame, hip, foot, dark, max(1, int(0.45 * w)), cv2.LINE_AA)


def render_scene(spec: SceneSpec, patches: Sequence[np.ndarray], face_frac: float
                 ) -> Iterator[tuple[np.ndarray, list[tuple[int, int, tuple[float, ...]]]]]:
    """Yield ``(frame, truth)``; truth lists ``(person id, width class, face xyxy)``."""
    people = plan_people(spec)
    if len(patches) < len(people):
        raise ConfigError(f"the scene needs {len(people)} face patches, got {len(patches)}")
    backgrounds = _backgrounds(spec)
    for index in range(spec.frames):
        frame = next(backgrounds).copy()
        truth: list[tuple[int, int, tuple[float, ...]]] = []
        for p, patch in zip(people, patches):
            if not p.first <= index <= p.last:
                continue
            cx = p.x0 + p.vx * (index - p.first)
            half = p.width_px / 2
            if cx - half < 0 or cx + half > spec.width:
                continue
            _draw_body(frame, p, cx, index, spec.fps)
            _paste(frame, patch, cx, p.y_face, int(round(p.width_px / face_frac)))
            truth.append((p.pid, p.width_px, (cx - half, p.y_face - half * 1.15, cx + half,
                                               p.y_face + half * 1.15)))
        if spec.blur_sigma > 0:
            frame = cv2.GaussianBlur(frame, (0, 0), spec.blur_sigma)
        yield frame, truth


def make_scene(spec: SceneSpec, out_path: Path,
               patches: Sequence[np.ndarray] | None = None,
               face_frac: float = LFW_FACE_FRAC) -> SceneTruth:
    """Render, encode (H.264 CRF 30, yuv420p) to ``out_path`` and write ``<out>.json``."""
    n_people = len(spec.widths) * spec.people_per_width
    if patches is None:
        if not spec.faces:
            raise ConfigError("a scene needs face photos: give SceneSpec.faces (an LFW-style "
                              "tree) or patches")
        patches = lfw_patches(Path(spec.faces), n_people, spec.seed)
    out_path = Path(out_path)
    frames: list[tuple[tuple[int, int, tuple[float, float, float, float]], ...]] = []

    def images() -> Iterator[np.ndarray]:  # the truth of each frame kept as it is encoded
        for image, truth in render_scene(spec, patches, face_frac):
            frames.append(tuple((pid, w, (b[0], b[1], b[2], b[3])) for pid, w, b in truth))
            yield image

    write_h264(out_path, images(), spec.fps, CRF)
    result = SceneTruth(spec, tuple(plan_people(spec)), tuple(frames))
    truth_path = out_path.with_suffix(".json")
    truth_path.write_text(json.dumps(result.to_json()) + "\n", encoding="utf-8")
    log.info("scene %s: %d frames, %d people", out_path, spec.frames, n_people)
    return result
