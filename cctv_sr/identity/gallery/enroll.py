"""Enrolment: gallery photos -> one face each -> aligned 128 px crop -> embedding -> the db.

Where names come from (:func:`scan_gallery_dir`):

* ``DIR/<person>/<photo>``: the folder name is the person; every image file directly inside
  it is one photo (subfolders are reported, not searched).
* ``DIR/<photo>`` (flat): the file stem is the person, less one optional numeric suffix
  ``_N`` or ``-N``: ``alice.jpg``, ``alice_2.jpg`` and ``alice-03.png`` are all ``alice``.
  A name that really ends in ``_<digits>`` therefore needs a folder.
* Names are NFC-normalised. Two sources that give one name (a folder ``alice/`` and a flat
  ``alice.jpg``, or ``Zoë`` spelt in NFC and in NFD) are merged into one person, and every
  photo of the later source (folders before flat files, each in code-point order) says so.

Per photo: the detector (at least :data:`MIN_FACE_PX` faces, on a copy shrunk to
:data:`MAX_DETECT_SIDE`; tight crops are retried with a border) keeps faces scoring at least
its ``track_new_thresh``; the largest is aligned to the ArcFace template at 128 px and
embedded. Problems are reported per file (:class:`FileResult`) and the rest enrolled.

One photo, one person: the enrolled face is the largest one, so the same file bytes (sha256)
under two names always give both names the same vector. ``build`` enrols such a photo under
the first name only (in the order above, or the name already in the gallery) and reports
every later one (``skip``, ``same photo under another name``); ``add`` refuses it with a
ConfigError naming both people, and writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from cctv_sr.detect import FaceDetector
from cctv_sr.embed import FaceEmbedder
from cctv_sr.errors import ConfigError
from cctv_sr.face.align import similarity_to_template, warp_face
from cctv_sr.identity.gallery.store import Gallery, normalise_name
from cctv_sr.records import FaceDetections

if TYPE_CHECKING:
    from cctv_sr.identity.gallery.hygiene import SamePerson

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif",
                            ".tiff", ".pgm", ".ppm", ".pbm", ".pnm", ".jp2", ".sr", ".ras"})
ALIGN_SIDE = 128  # canonical crop side the embedder gets
MIN_FACE_PX = 32  # gallery photos show their person large; smaller "faces" are background
MAX_DETECT_SIDE = 1024  # photos are shrunk to this for detection (the subject stays large)
PAD_FRACTION = 0.3  # border added for a second try when a tight crop shows no face
_FLAT_SUFFIX = re.compile(r"^(.+)[_-][0-9]+$")

OK, WARN, SKIP, ERROR = "ok", "warn", "skip", "error"


@dataclass(frozen=True)
class FileResult:
    """One row of the enrolment table. ``status``: ``ok`` (enrolled), ``warn`` (enrolled, see
    the note), ``skip`` (left out on purpose) or ``error`` (could not be read).
    ``in_gallery``: the photo is in the gallery afterwards (enrolled now or before)."""

    file: str
    person: str
    status: str
    note: str = ""
    in_gallery: bool = False


@dataclass(frozen=True)
class PhotoSource:
    """One photo to enrol as ``person`` (NFC); ``note`` is carried into its row."""

    path: Path
    person: str
    note: str = ""


@dataclass(frozen=True)
class EnrollResult:
    """What an enrolment did: the per-file rows, the gallery file written, the names that
    may be one person (:mod:`.hygiene`) and the folder built from (None for ``add``)."""

    gallery: Path
    rows: tuple[FileResult, ...]
    created: bool = False
    same_person: tuple[SamePerson, ...] = ()
    folder: Path | None = None

    @property
    def people(self) -> tuple[str, ...]:
        """People who got at least one photo in this run, by first appearance."""
        return tuple(dict.fromkeys(r.person for r in self.rows if r.status in (OK, WARN)))

    @property
    def photos_used(self) -> int:
        """Photos enrolled in this run."""
        return sum(r.status in (OK, WARN) for r in self.rows)

    @property
    def problems(self) -> int:
        """Rows that are not a clean ``ok`` (warnings, skips, errors)."""
        return sum(r.status != OK for r in self.rows)

    @property
    def ok(self) -> bool:
        """True when at least one input photo is in the gallery afterwards."""
        return any(r.in_gallery for r in self.rows)

    @property
    def nothing_enrolled(self) -> str:
        """Why no input photo is in the gallery, in one line ('' when one is)."""
        if self.ok:
            return ""
        counts: dict[str, int] = {}
        for row in self.rows:
            reason = row.note.split(" (", 1)[0] or row.status
            counts[reason] = counts.get(reason, 0) + 1
        reasons = ", ".join(f"{reason} ({n})" for reason, n in counts.items())
        if self.folder is None:
            return f"no photo enrolled: {_count(len(self.rows), 'photo')} given, none usable " \
                   f"({reasons})"
        if not self.rows:
            return f"{self.folder}: the folder is empty: no photos to enrol"
        images = sum(not r.file.endswith("/") and Path(r.file).suffix.lower() in IMAGE_SUFFIXES
                     for r in self.rows)
        if not images:
            return f"{self.folder}: no image files to enrol in the folder ({reasons})"
        return f"no photo enrolled from {self.folder}: {_count(images, 'image file')}, none " \
               f"usable ({reasons})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def flat_person_name(stem: str) -> str:
    """The person of a flat-folder file stem: less one ``_N``/``-N`` numeric suffix."""
    match = _FLAT_SUFFIX.match(stem)
    return match.group(1) if match else stem


def scan_gallery_dir(root: Path) -> tuple[list[PhotoSource], list[FileResult]]:
    """Photos under ``root`` (see the module docstring) and rows for what cannot be used."""
    if not root.is_dir():
        raise ConfigError(f"{root}: gallery folder not found (or not a folder)")
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise ConfigError(f"{root}: cannot list the gallery folder: {exc.strerror}") from exc
    sources: list[PhotoSource] = []
    rows: list[FileResult] = []
    first: dict[str, tuple[str, str, str]] = {}  # person -> (key, label, raw) of 1st source

    def claim(raw: str, key: str, label: str, path: Path) -> tuple[str, str] | None:
        try:
            name = normalise_name(raw)
        except ConfigError:
            rows.append(FileResult(str(path), "", ERROR, "unusable name (blank, control "
                                   "characters or not UTF-8)"))
            return None
        prior = first.setdefault(name, (key, label, raw))
        if prior[0] == key:
            return name, ""
        form = " (same name, other Unicode form)" if prior[2] != raw else ""
        return name, f"name also from {prior[1]}{form}; merged"

    def is_image(path: Path, person: str) -> bool:
        if path.is_dir():
            rows.append(FileResult(f"{path}/", person, SKIP, "subfolder: not searched"))
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            rows.append(FileResult(str(path), person, SKIP, "not an image file (by extension)"))
        else:
            return True
        return False

    for folder in (e for e in entries if e.is_dir()):
        claimed = claim(folder.name, f"dir:{folder.name}", f"folder {folder.name}/", folder)
        if claimed is None:
            continue
        try:
            listed = sorted(folder.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            rows.append(FileResult(f"{folder}/", claimed[0], ERROR, f"cannot list: {exc.strerror}"))
            continue
        files = [f for f in listed if is_image(f, claimed[0])]
        if not files:
            rows.append(FileResult(f"{folder}/", claimed[0], SKIP, "empty folder: no images"))
        sources += [PhotoSource(f, *claimed) for f in files]
    for path in (e for e in entries if not e.is_dir()):
        raw = flat_person_name(path.stem)
        if is_image(path, raw):
            claimed = claim(raw, f"flat:{raw}", f"flat file {path.name}", path)
            if claimed is not None:
                sources.append(PhotoSource(path, *claimed))
    return sources, rows


def decode_image(data: bytes) -> np.ndarray | None:
    """BGR uint8 ``(H, W, 3)`` of encoded image bytes (grey, alpha and 16-bit converted; EXIF
    orientation applied), or None when OpenCV cannot decode them."""
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if image is None or image.ndim != 3 or image.shape[0] < 2 or image.shape[1] < 2:
        return None
    return np.ascontiguousarray(image, dtype=np.uint8)


def find_faces(detector: FaceDetector, image: np.ndarray) -> FaceDetections:
    """Confident faces in one photo, largest box first (see the module docstring)."""
    h, w = image.shape[:2]
    scale = min(1.0, MAX_DETECT_SIDE / max(h, w))
    small = image if scale == 1.0 else cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    faces = detector.detect([small])[0]
    thresh = max(detector.cfg.score_thresh, detector.track_new_thresh)
    faces = faces[faces.score >= thresh]
    if len(faces) == 0:  # a tight crop: give the detector some context around the face
        pad = max(8, round(PAD_FRACTION * max(small.shape[:2])))
        padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = detector.detect([padded])[0]
        found = found[found.score >= thresh]
        shift = np.float32(pad)
        faces = FaceDetections(found.xyxy - shift, found.score, found.kps - shift)
    faces = faces.scaled(1.0 / scale)
    area = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) * (faces.xyxy[:, 3] - faces.xyxy[:, 1])
    return faces[np.argsort(-area, kind="stable")]


class Enroller:
    """Turns photo files into gallery rows with one detector and one embedder."""

    def __init__(self, detector: FaceDetector, embedder: FaceEmbedder, *,
                 strict: bool = False, refuse_shared: bool = False) -> None:
        self.detector, self.embedder, self.strict = detector, embedder, strict
        self.refuse_shared = refuse_shared  # a photo of another name: ConfigError, not a row
        self.enrolled: dict[str, str] = {}  # file -> sha256 of the rows enrolled so far

    def enroll(self, gallery: Gallery, sources: Sequence[PhotoSource]) -> list[FileResult]:
        """Enrol ``sources`` into ``gallery`` (the caller commits); one row per source."""
        seen: dict[tuple[str, str], str] = {}  # (person, sha256) -> first file
        owners: dict[str, tuple[str, str]] = {}  # sha256 -> (person, file) enrolled first
        rows = []
        for src in sources:
            row = self._one(gallery, src, seen, owners)
            log.info("%s: %s %s %s", row.file, row.person, row.status, row.note)
            rows.append(row)
        return rows

    def _one(self, gallery: Gallery, src: PhotoSource, seen: dict[tuple[str, str], str],
             owners: dict[str, tuple[str, str]]) -> FileResult:
        file, person = str(src.path), src.person

        def fail(status: str, note: str, in_gallery: bool = False) -> FileResult:
            return FileResult(file, person, status, note, in_gallery)

        try:
            file.encode("utf-8")
            data = src.path.read_bytes()
        except UnicodeEncodeError:
            return fail(ERROR, "file name is not valid UTF-8")
        except IsADirectoryError:
            return fail(SKIP, "a folder, not a photo")
        except OSError as exc:
            return fail(ERROR, f"cannot read: {exc.strerror or exc}")
        sha = hashlib.sha256(data).hexdigest()
        if (person, sha) in seen:
            return fail(SKIP, f"duplicate photo (same sha256 as {seen[(person, sha)]})", True)
        if gallery.has_photo(person, sha):
            return fail(SKIP, "duplicate photo: already in the gallery", True)
        other = owners.get(sha) or next(((n, "") for n in gallery.owners(sha)), None)
        if other is not None:
            if self.refuse_shared:
                raise ConfigError(f"{file}: this photo (same sha256) is already enrolled as "
                                  f"{other[0]!r}; refusing to enrol it as {person!r} too: one "
                                  "photo, one person")
            where = f"sha256 of {other[1]}, enrolled" if other[1] else "already in the gallery"
            return fail(SKIP, f"same photo under another name ({where} as {other[0]!r}); "
                        f"not enrolled as {person!r}")
        image = decode_image(data)
        if image is None:
            return fail(ERROR, "not a readable image (corrupt or unsupported format)")
        try:
            faces = find_faces(self.detector, image)
            if len(faces) == 0:
                return fail(SKIP, "no face found")
            if len(faces) > 1 and self.strict:
                return fail(SKIP, f"{len(faces)} faces: refused (--strict)")
            crop = warp_face(image, similarity_to_template(faces.kps[0], ALIGN_SIDE), ALIGN_SIDE)
        except (ConfigError, cv2.error) as exc:
            return fail(ERROR, f"face finding failed: {exc}")
        vector = np.asarray(self.embedder.embed(crop[None]), np.float32)[0]
        notes = [src.note] if src.note else []
        if len(faces) > 1:
            notes.append(f"{len(faces)} faces: used the largest")
        gallery.add_photo(person, str(src.path.resolve()), sha, vector, faces.xyxy[0],
                          float(faces.score[0]), len(faces), "; ".join(notes),
                          detector=self.detector.name)
        seen[(person, sha)] = file
        owners.setdefault(sha, (person, file))
        self.enrolled[file] = sha
        return FileResult(file, person, WARN if notes else OK, "; ".join(notes), True)
