"""Gallery hygiene: two names that are likely one person.

After an enrolment, every person who got a photo in it is compared with everyone in the
gallery (:func:`review_people`). A pair is reported (:class:`SamePerson`, a warning of the
build report; never a refusal unless ``--strict``) when

* their templates are near-identical: cosine at least :func:`same_person_bar` of the
  embedder. The bar is the embedder's calibrated FAR 1e-3 threshold plus the gap between
  its FAR 1e-3 and FAR 1e-2 thresholds, i.e. the impostor tail extrapolated one more decade
  (about 1 pair of different people in 10,000). The FAR 1e-3 threshold itself is too low
  for templates: with ``dlib`` (0.9291), two different people of insightface's ``t1.jpg``
  score 0.930, while templates of one person's photos score 0.96 and more. Bars with the
  manifests of this change: dlib 0.948, mobilefacenet 0.418. An embedder without calibrated
  thresholds gets no template check.
* or, for a flat folder, their names differ only by a trailing number or a variant suffix
  (:func:`name_key`: ``alice``, ``alice2``, ``alice_small``, ``alice-240p`` are all
  ``alice``; a folder's name is its own key).

With ``strict``, names are kept in order (people already in the gallery and not touched by
this run first, then names that are their own key, then code-point order) and a name paired
with a kept one has this run's photos taken back out (rows ``skip``, ``refused (--strict)``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from cctv_sr.errors import CctvSrError
from cctv_sr.identity.gallery.enroll import OK, SKIP, WARN, FileResult
from cctv_sr.identity.gallery.store import Gallery

log = logging.getLogger(__name__)

_VARIANT = re.compile(
    r"(?:[0-9]+(?:p|px)?|[0-9]+x[0-9]+|\s*\([0-9]+\)"
    r"|[ _.-](?:small|large|big|medium|med|tiny|thumb|thumbnail|crop|cropped|hd|hq|lq|sd"
    r"|low|high|lowres|hires|copy|new|old|orig|original|final|edit|edited))$",
    re.IGNORECASE)


def name_key(stem: str) -> str:
    """``stem`` less trailing numbers and variant suffixes (``_small``, ``-240p``, ``2``),
    repeatedly; a stem that would be left empty (or only separators) is its own key."""
    key = stem
    while True:
        match = _VARIANT.search(key)
        if match is None:
            return key
        rest = key[:match.start()].rstrip(" _.-")
        if not rest:
            return key
        key = rest


def same_person_bar(embedder_name: str) -> float | None:
    """The cosine from which two templates are near-identical (module docstring), or None
    when the embedder has no calibrated thresholds."""
    from cctv_sr.identity.setup import calibrated_thresholds  # identity.setup imports the store

    try:
        t = calibrated_thresholds(embedder_name)
    except CctvSrError as exc:
        log.info("no near-identical template check for %s: %s", embedder_name, exc)
        return None
    return min(1.0, t.far_1e3 + (t.far_1e3 - t.far_1e2))


@dataclass(frozen=True)
class SamePerson:
    """Two names that may be one person: ``second`` may be ``first``."""

    first: str
    second: str
    score: float  # cosine of their templates
    bar: float | None  # near-identical from this cosine (None: no calibrated thresholds)
    similar_templates: bool
    similar_names: bool  # flat-folder names differing only by a number or variant suffix
    refused: bool = False  # --strict: this run's photos of ``second`` were taken out

    @property
    def why(self) -> str:
        """Why the two may be one person (without their names)."""
        why = []
        if self.similar_templates:
            why.append(f"near-identical templates (cosine {self.score:.3f} >= {self.bar:.3f})")
        if self.similar_names:
            cmp = "" if self.bar is None else (" >=" if self.score >= self.bar else " <")
            bar = "" if self.bar is None else f" {self.bar:.3f}"
            extra = "" if self.similar_templates else f" (cosine {self.score:.3f}{cmp}{bar})"
            why.append(f"names differ only by a number or suffix{extra}")
        done = "; refused (--strict)" if self.refused else ""
        return " and ".join(why) + done

    @property
    def short(self) -> str:
        """``why`` in a few words (for a table that shows the cosine)."""
        why = ["near-identical templates"] if self.similar_templates else []
        why += ["names alike"] if self.similar_names else []
        return ", ".join(why) + ("; refused (--strict)" if self.refused else "")

    @property
    def note(self) -> str:
        return f"{self.second!r} may be {self.first!r}: {self.why}"


def review_people(gallery: Gallery, rows: Sequence[FileResult], keys: Mapping[str, str],
                  bar: float | None, strict: bool, enrolled: Mapping[str, str],
                  ) -> tuple[list[FileResult], tuple[SamePerson, ...]]:
    """Pairs of likely-same people among this run's ``rows`` and the gallery (module
    docstring); with ``strict`` the second names' photos of this run are removed from the
    gallery (``enrolled``: file -> sha256 of the rows enrolled now) and their rows refused.
    ``keys``: person -> :func:`name_key` of this run's flat-folder names (others are their
    own key)."""
    touched = list(dict.fromkeys(r.person for r in rows if r.status in (OK, WARN)))
    if not touched:
        return list(rows), ()
    names, templates = gallery.templates()
    index = {n: i for i, n in enumerate(names)}
    fresh = set(touched)

    def rank(name: str) -> tuple[bool, bool, str]:
        return name in fresh, keys.get(name, name) != name, name

    found: dict[tuple[str, str], SamePerson] = {}
    for name in touched:
        if name not in index:
            continue
        scores = templates @ templates[index[name]]
        for other, i in index.items():
            if other == name:
                continue
            first, second = sorted((name, other), key=rank)
            score = float(scores[i])
            similar = bar is not None and score >= bar
            named = name in keys and keys[name] == keys.get(other, other)
            if (similar or named) and (first, second) not in found:
                found[first, second] = SamePerson(first, second, score, bar, similar, named)
    pairs = sorted(found.values(), key=lambda p: (p.first, p.second))
    if not strict or not pairs:
        for pair in pairs:
            log.info("%s", pair.note)  # the report lists them
        return list(rows), tuple(pairs)
    kept = {n for n in names if n not in fresh}
    refused: dict[str, str] = {}  # name -> the kept name it may be
    for name in sorted(fresh, key=rank):
        partner = next((p.first for p in pairs if p.second == name and p.first in kept), None)
        if partner is None:
            kept.add(name)
        else:
            refused[name] = partner
    pairs = [replace(p, refused=p.second in refused and refused[p.second] == p.first)
             for p in pairs]
    out = []
    for row in rows:
        if row.person in refused and row.status in (OK, WARN) and row.file in enrolled:
            gallery.remove_photo(row.person, enrolled[row.file])
            row = FileResult(row.file, row.person, SKIP, f"may be the same person as "
                             f"{refused[row.person]!r}: refused (--strict)")
        out.append(row)
    for pair in pairs:
        log.info("%s", pair.note)  # the report lists them
    return out, tuple(pairs)
