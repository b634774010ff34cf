"""The gallery of people being searched for: enrolment (:mod:`.enroll`) and storage (:mod:`.store`).

A gallery is one SQLite file holding, per person, one embedding per enrolled photo and a
template (their mean, re-normalised), all made by one embedder; writers refuse to mix
embedders (``build --overwrite`` rebuilds with another). Example::

    from cctv_sr.identity.gallery import Gallery, build_gallery

    result = build_gallery("people/", "gallery.db", embedder="mobilefacenet")
    for row in result.rows:                     # one per file: file, person, status, note
        print(row.file, row.status, row.note)
    with Gallery.open("gallery.db") as gallery:
        names, templates = gallery.templates()  # list[str], (P, dim) float32 unit rows

Success (``EnrollResult.ok``) means at least one of the given photos is in the gallery
afterwards (enrolled now or already there). When none is, a new gallery file is not written
(and ``--overwrite`` leaves the old one as it was); an existing gallery is left unchanged;
``EnrollResult.nothing_enrolled`` says why (an empty folder, no image files, or what went
wrong with each photo). ``EnrollResult.same_person`` lists names that may be one person
(:mod:`.hygiene`); the same photo under a second name is reported (``build``) or refused
(``add``), see :mod:`.enroll`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from cctv_sr.config import DetectorConfig, EmbedderConfig
from cctv_sr.detect import FaceDetector
from cctv_sr.embed import FaceEmbedder
from cctv_sr.errors import ConfigError, OutputError
from cctv_sr.identity.gallery.enroll import (
    ALIGN_SIDE,
    MIN_FACE_PX,
    Enroller,
    EnrollResult,
    FileResult,
    PhotoSource,
    flat_person_name,
    scan_gallery_dir,
)
from cctv_sr.identity.gallery.hygiene import SamePerson, name_key, review_people, same_person_bar
from cctv_sr.identity.gallery.store import (
    EmbedderInfo,
    Gallery,
    Person,
    PhotoRecord,
    normalise_name,
)

__all__ = [
    "EmbedderInfo", "EnrollResult", "FileResult", "Gallery", "Person", "PhotoRecord",
    "SamePerson", "add_photos", "build_gallery", "flat_person_name", "load_models", "remove_person",
]

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = EmbedderConfig().name  # the run's default: a gallery works with it as is
DEFAULT_DETECTOR = DetectorConfig().name

Models = tuple[FaceDetector, FaceEmbedder]


def load_models(embedder: str = DEFAULT_EMBEDDER, detector: str = DEFAULT_DETECTOR,
                device: str = "cpu") -> Models:
    """The detector (searching faces of at least MIN_FACE_PX) and embedder for enrolment."""
    from cctv_sr.config import DetectorConfig, EmbedderConfig
    from cctv_sr.detect import create_detector
    from cctv_sr.embed import create_embedder

    det = create_detector(DetectorConfig(name=detector, min_face_px=MIN_FACE_PX, device=device))
    return det, create_embedder(EmbedderConfig(name=embedder, device=device))


def _mixing(gallery: Gallery, name: str, version: str = "", dim: int = 0) -> ConfigError:
    made = f"{gallery.embedder_name} ({gallery.embedder_version}, {gallery.dim}-d)"
    asked = f"{name} ({version}, {dim}-d)" if version else name
    return ConfigError(f"{gallery.path}: gallery was made with embedder {made}; refusing to mix "
                       f"in {asked}: use the same embedder, or rebuild with `gallery build "
                       "--overwrite --embedder ...`")


class _Run:
    """One enrolment's enroller and hygiene settings (see :func:`_enroll_unsorted`)."""

    def __init__(self, enroller: Enroller, keys: Mapping[str, str], strict: bool) -> None:
        self.enroller, self.keys, self.strict = enroller, keys, strict
        self.bar = same_person_bar(enroller.embedder.name)
        self.same_person: tuple[SamePerson, ...] = ()

    def __call__(self, gallery: Gallery, sources: Sequence[PhotoSource]) -> list[FileResult]:
        rows = self.enroller.enroll(gallery, sources)
        rows, self.same_person = review_people(gallery, rows, self.keys, self.bar, self.strict,
                                               self.enroller.enrolled)
        return rows


def _enroll(out: str | Path, sources: Sequence[PhotoSource], rows: list[FileResult], *,
            embedder: str | None, detector: str | None, strict: bool, overwrite: bool,
            device: str, models: Models | None, folder: Path | None = None,
            keys: Mapping[str, str] | None = None) -> EnrollResult:
    """Enrol ``sources`` into the gallery at ``out`` (opened, created or rebuilt); the rows
    come back in source order, or by file path for a ``folder`` (``build``), whose flat
    names' :func:`~.hygiene.name_key` are ``keys``. Without a folder (``add``) a photo
    already enrolled under another name is a ConfigError."""
    result = _enroll_unsorted(out, sources, rows, embedder=embedder, detector=detector,
                              strict=strict, overwrite=overwrite, device=device, models=models,
                              keys=keys or {}, refuse_shared=folder is None)
    if folder is None:
        return result
    return replace(result, rows=tuple(sorted(result.rows, key=lambda r: r.file)), folder=folder)


def _enroll_unsorted(out: str | Path, sources: Sequence[PhotoSource], rows: list[FileResult],
                     *, embedder: str | None, detector: str | None, strict: bool,
                     overwrite: bool, device: str, models: Models | None,
                     keys: Mapping[str, str], refuse_shared: bool) -> EnrollResult:
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"{out}: is a folder; the gallery must be a file (e.g. gallery.db)")
    if not out.parent.is_dir():
        raise OutputError(f"{out.parent}: folder does not exist")
    if models is not None and embedder and models[1].name != embedder:
        raise ConfigError(f"embedder {embedder!r} asked for but {models[1].name!r} given")
    existing: Gallery | None = None
    if out.exists():  # opened even for --overwrite: only a gallery is ever replaced
        existing = Gallery.open(out, writable=not overwrite)
        if overwrite:
            existing.close()
            existing = None
        elif embedder and embedder != existing.embedder_name:
            existing.close()
            raise _mixing(existing, embedder)
        else:
            embedder = embedder or existing.embedder_name
            detector = detector or existing.info.detector
    if not sources:  # nothing to enrol: no models needed
        if existing is not None:
            existing.close()
        return EnrollResult(out, tuple(rows))
    try:
        det, emb = models or load_models(embedder or DEFAULT_EMBEDDER,
                                         detector or DEFAULT_DETECTOR, device)
    except BaseException:
        if existing is not None:
            existing.close()
        raise
    run = _Run(Enroller(det, emb, strict=strict, refuse_shared=refuse_shared), keys, strict)
    if existing is not None:
        with existing:
            if (emb.name, emb.version, emb.dim) != (existing.embedder_name,
                                                    existing.embedder_version, existing.dim):
                raise _mixing(existing, emb.name, emb.version, emb.dim)
            with existing.transaction():
                rows = rows + run(existing, sources)
        return EnrollResult(out, tuple(rows), same_person=run.same_person)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        with Gallery.create(tmp, EmbedderInfo(emb.name, emb.version, emb.dim, det.name,
                                               ALIGN_SIDE)) as gallery:
            with gallery.transaction():
                rows = rows + run(gallery, sources)
        result = EnrollResult(out, tuple(rows), created=True, same_person=run.same_person)
        if result.ok:
            os.replace(tmp, out)
        else:
            log.warning("%s: no photo enrolled; gallery not written", out)
            result = replace(result, created=False)
        return result
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"{out}: cannot write gallery: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def build_gallery(root: str | Path, out: str | Path, *, embedder: str | None = None,
                  detector: str | None = None, strict: bool = False, overwrite: bool = False,
                  device: str = "cpu", models: Models | None = None) -> EnrollResult:
    """Enrol everyone under the folder ``root`` into the gallery file ``out``.

    A new ``out`` is written only when something was enrolled; an existing one gets the new
    photos (same embedder only: ``embedder`` defaults to the gallery's, else ``dlib``);
    ``overwrite`` replaces an existing gallery. ``models`` (detector, embedder) skips loading.
    """
    root = Path(root)
    sources, rows = scan_gallery_dir(root)
    keys = {s.person: name_key(s.person) for s in sources if s.path.parent == root}
    return _enroll(out, sources, rows, embedder=embedder, detector=detector, strict=strict,
                   overwrite=overwrite, device=device, models=models, folder=root, keys=keys)


def add_photos(out: str | Path, person: str, photos: Sequence[str | Path], *,
               embedder: str | None = None, detector: str | None = None, strict: bool = False,
               device: str = "cpu", models: Models | None = None) -> EnrollResult:
    """Add ``photos`` of ``person`` (created when new) to the gallery ``out`` (created when
    missing, with ``embedder``, default ``dlib``). A photo already enrolled as someone else
    is a ConfigError (nothing is written); ``same_person`` of the result lists people whose
    templates are near-identical to ``person``'s."""
    name = normalise_name(person)
    if not photos:
        raise ConfigError("gallery add: give at least one photo")
    sources = [PhotoSource(Path(p), name) for p in photos]
    return _enroll(out, sources, [], embedder=embedder, detector=detector, strict=strict,
                   overwrite=False, device=device, models=models)


def remove_person(db: str | Path, person: str) -> Person:
    """Delete ``person`` and their photos from the gallery ``db``; returns who was removed."""
    with Gallery.open(db, writable=True) as gallery:
        return gallery.remove_person(person)
