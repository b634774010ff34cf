"""The footage of ``cctv-sr demo``: a short CCTV-like clip and a gallery photo that need nothing
but the installed packages.

The faces are two photos that ship inside the scikit-image wheel (``skimage/data``, read from
the installed files; nothing is fetched):

- ``astronaut.png``: the astronaut Eileen Collins, from the NASA Great Images database,
  released into the public domain (scikit-image's ``skimage.data.astronaut`` notes). She is
  the enrolled person: the full photo is the gallery photo.
- ``camera.png``: a man behind a camera on a tripod, CC0 by the photographer, Lav Varshney
  (scikit-image's ``skimage.data.camera`` notes). He is the stranger: never enrolled.

Each walks across a synthetic backdrop on a simple body (:mod:`cctv_sr.data.scene`'s bodies,
:mod:`cctv_sr.data.synth`'s backdrop and face pasting) at a CCTV face size (40-55 px wide in a
640 x 360 frame); the frame gets the scene's defocus and sensor noise and is encoded with
:func:`cctv_sr.data.encode.write_h264` at the scene's CRF. Example::

    footage = make_demo_footage(Path("demo/"))
    footage.clip            # demo/clip.mp4
    footage.people_dir      # demo/people/ (eileen_collins.png): `cctv-sr gallery build` input
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.data.encode import write_h264
from cctv_sr.data.scene import CRF, Person, _draw_body
from cctv_sr.data.synth import _paste, background, head_patches
from cctv_sr.errors import ConfigError, OutputError, SourceError

log = logging.getLogger(__name__)

FACE_FRAC = 1.0 / 1.8  # a head patch is 1.8 face-box widths wide (synth.head_patches' margin)
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class DemoPhoto:
    """A face photo shipped in an installed package: where it is, whose face, its licence and
    the face box (x, y, w, h) the shipped YuNet detector finds in it."""

    name: str  # the person's name in the demo (the gallery name when enrolled)
    package_file: str  # file name inside skimage/data
    credit: str
    face_box: tuple[int, int, int, int]
    enrolled: bool


PHOTOS: tuple[DemoPhoto, ...] = (
    DemoPhoto("eileen_collins", "astronaut.png",
              "NASA photo of astronaut Eileen Collins, public domain (scikit-image data)",
              (178, 63, 90, 113), enrolled=True),
    DemoPhoto("cameraman", "camera.png",
              "photo by Lav Varshney, CC0 (scikit-image data)", (196, 113, 60, 81),
              enrolled=False),
)


@dataclass(frozen=True)
class DemoPerson:
    """One person in the demo clip and whether the demo's gallery holds them."""

    name: str
    enrolled: bool
    credit: str


@dataclass(frozen=True)
class DemoFootage:
    """What :func:`make_demo_footage` wrote: the clip, the gallery photo folder, who is in the
    clip and, per frame, ``(person index, face xyxy)`` of every face on screen."""

    clip: Path
    people_dir: Path
    photos: tuple[Path, ...]
    people: tuple[DemoPerson, ...]
    fps: float
    frames: int
    width: int
    height: int
    truth: tuple[tuple[tuple[int, Box], ...], ...]


def photo_path(photo: DemoPhoto) -> Path:
    """The photo's file inside the installed scikit-image package."""
    try:
        import skimage
    except ImportError as exc:
        raise SourceError("the demo's face photos ship with scikit-image, which is not "
                          "installed (pip install scikit-image)") from exc
    path = Path(skimage.__file__).parent / "data" / photo.package_file
    if not path.is_file():
        raise SourceError(f"{path}: demo photo missing from the scikit-image install")
    return path


def load_photo(photo: DemoPhoto) -> np.ndarray:
    """The photo as BGR uint8 (grey photos as three equal channels)."""
    path = photo_path(photo)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: cannot read the demo photo")
    return image


def _plan(n: int, width: int, height: int) -> list[Person]:
    """Where each person walks: the enrolled person left to right in the upper lane, the
    stranger right to left in the lower one, both on screen for most of the clip."""
    enrolled = Person(0, 50, 0.12 * width, 0.5 * width / n, 0.28 * height, max(1, n // 12),
                      n - 1, (150, 90, 40))
    stranger = Person(1, 44, 0.9 * width, -0.45 * width / n, 0.58 * height, max(2, n // 8),
                      n - 1, (60, 60, 130))
    return [enrolled, stranger]


def _frames(patches: list[np.ndarray], people: list[Person], n: int, width: int, height: int,
            fps: float, seed: int, truth: list[tuple[tuple[int, Box], ...]]
            ) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    backdrop = background(width, height, seed)
    for index in range(n):
        frame = backdrop.copy()
        shown: list[tuple[int, Box]] = []
        placed = []
        for p in people:
            if not p.first <= index <= p.last:
                continue
            cx = p.x0 + p.vx * (index - p.first)
            _draw_body(frame, p, cx, index, fps)
            placed.append((p, cx))
        for p, cx in placed:  # faces after every body: a body never covers a face
            _paste(frame, patches[p.pid], cx, p.y_face, int(round(p.width_px / FACE_FRAC)))
            half = p.width_px / 2
            shown.append((p.pid, (cx - half, p.y_face - half * 1.15, cx + half,
                                  p.y_face + half * 1.15)))
        truth.append(tuple(shown))
        frame = cv2.GaussianBlur(frame, (0, 0), 0.8)
        noisy = frame.astype(np.float32) + rng.normal(0, 2.0, frame.shape)
        yield np.clip(noisy, 0, 255).astype(np.uint8)


def make_demo_footage(outdir: Path, *, seconds: float = 8.0, fps: float = 12.0,
                      width: int = 640, height: int = 360, seed: int = 0) -> DemoFootage:
    """Write ``outdir/clip.mp4`` and the gallery photos ``outdir/people/<name>.png`` (the
    enrolled people's full photos) and return what is where."""
    if seconds <= 0 or fps <= 0 or width < 320 or height < 180 or width % 2 or height % 2:
        raise ConfigError(f"demo clip: need seconds > 0, fps > 0 and an even size of at least "
                          f"320x180, got {seconds} s at {fps} fps, {width}x{height}")
    outdir = Path(outdir)
    people_dir = outdir / "people"
    try:
        people_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{outdir}: cannot write the demo ({exc})") from exc
    images = [load_photo(p) for p in PHOTOS]
    photos = []
    for photo, image in zip(PHOTOS, images):
        if photo.enrolled:
            path = people_dir / f"{photo.name}.png"
            if not cv2.imwrite(str(path), image):
                raise OutputError(f"{path}: cannot write the gallery photo")
            photos.append(path)
    patches = [head_patches(image, [photo.face_box], margin=1.0 / FACE_FRAC)[0]
               for photo, image in zip(PHOTOS, images)]
    n = max(1, int(round(seconds * fps)))
    truth: list[tuple[tuple[int, Box], ...]] = []
    clip = outdir / "clip.mp4"
    people = _plan(n, width, height)
    write_h264(clip, _frames(patches, people, n, width, height, fps, seed, truth), fps, CRF)
    log.info("demo clip %s: %d frames at %s fps, %dx%d", clip, n, fps, width, height)
    return DemoFootage(clip, people_dir, tuple(photos),
                       tuple(DemoPerson(p.name, p.enrolled, p.credit) for p in PHOTOS),
                       float(fps), n, width, height, tuple(truth))
