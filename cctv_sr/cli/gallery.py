"""``cctv-sr gallery build | list | add | remove``: the command line of the gallery.

:func:`add_gallery_parser` adds the ``gallery`` verb to the main parser's subparsers and
:func:`run_gallery` runs it. Errors the user can fix are raised as
:class:`~cctv_sr.errors.CctvSrError` (the main CLI prints them as one line, exit code 1).

Exit codes of ``build`` and ``add``: 0 when at least one of the given photos is in the gallery
afterwards (per-file problems are in the table, not failures; names that may be one person
are warnings listed under it); 1 when none is (an empty folder, no image files, or no photo
usable: the error line says which; a new gallery file is then not written, an existing one is
left unchanged), and 1 on fatal errors (bad paths, unreadable or foreign db, embedder
mismatch, model errors, ``add`` of a photo already enrolled as someone else).
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from cctv_sr.detect import DETECTORS
from cctv_sr.embed import EMBEDDERS
from cctv_sr.identity.gallery import (
    DEFAULT_DETECTOR,
    DEFAULT_EMBEDDER,
    EnrollResult,
    Gallery,
    add_photos,
    build_gallery,
    remove_person,
)
from cctv_sr.identity.gallery.enroll import ERROR, SKIP, WARN

_NAMING = (
    "GALLERY_DIR/<person>/<photos>: the folder name is the person. GALLERY_DIR/<photo> (flat): "
    "the file stem is the person, less one numeric suffix _N or -N (alice.jpg, alice_2.jpg and "
    "alice-3.png are all 'alice'). Names are NFC-normalised; two sources giving one name are "
    "merged and reported."
)
# Bidi embedding/override/isolate controls: shown escaped so a name cannot reorder the table.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embedder", choices=sorted(EMBEDDERS),
                   help=f"embedder (default: the gallery's own, else {DEFAULT_EMBEDDER})")
    p.add_argument("--detector", choices=sorted(DETECTORS),
                   help=f"face detector (default: the gallery's own, else {DEFAULT_DETECTOR})")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--strict", action="store_true",
                   help="refuse photos showing several faces, and names that may be one person "
                        "(default: use the largest face; warn)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def add_gallery_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``gallery`` and its sub-commands to ``subparsers``; returns the gallery parser."""
    p = subparsers.add_parser("gallery", help="build and edit the gallery of people searched for",
                              description="Enrol people from their photos into a gallery db.")
    sub = p.add_subparsers(dest="gallery_cmd", required=True, metavar="{build,list,add,remove}")
    build = sub.add_parser("build", help="enrol everyone in a folder of photos",
                           description=f"Enrol people from GALLERY_DIR. {_NAMING}")
    build.add_argument("gallery_dir", type=Path, metavar="GALLERY_DIR")
    build.add_argument("--out", type=Path, required=True, help="gallery db file (e.g. gallery.db)")
    build.add_argument("--overwrite", action="store_true",
                       help="replace an existing gallery (also to change its embedder)")
    _model_options(build)
    ls = sub.add_parser("list", help="people in a gallery")
    ls.add_argument("gallery_db", type=Path, metavar="GALLERY_DB")
    ls.add_argument("--json", action="store_true")
    add = sub.add_parser("add", help="add photos of one person (created when new)")
    add.add_argument("gallery_db", type=Path, metavar="GALLERY_DB")
    add.add_argument("person", metavar="PERSON", help="the person's name (any text)")
    add.add_argument("photos", type=Path, nargs="+", metavar="PHOTO")
    _model_options(add)
    rm = sub.add_parser("remove", help="delete a person and their photos")
    rm.add_argument("gallery_db", type=Path, metavar="GALLERY_DB")
    rm.add_argument("person", metavar="PERSON")
    return p


def _show(text: str) -> str:
    """``text`` safe for a terminal: control, bidi-override and invalid characters escaped."""
    return "".join(
        ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text)


def _width(text: str) -> int:
    return sum(0 if unicodedata.combining(ch) else
               2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _echo(text: str, err: bool = False) -> None:
    """One line to stdout/stderr, escaping what the stream's encoding cannot show."""
    stream = sys.stderr if err else sys.stdout
    try:
        stream.write(text + "\n")
    except UnicodeEncodeError:
        enc = stream.encoding or "ascii"
        stream.write(text.encode(enc, "backslashreplace").decode(enc) + "\n")


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        _echo("  ".join([_pad(c, w) for c, w in zip(row, widths)] + [row[-1]]).rstrip())


def _report(result: EnrollResult, root: Path | None, as_json: bool) -> None:
    counts = {s: sum(r.status == s for r in result.rows) for s in (WARN, SKIP, ERROR)}
    if as_json:
        _echo(json.dumps({"gallery": str(result.gallery), "created": result.created,
                          "ok": result.ok, "people": list(result.people),
                          "photos_used": result.photos_used, "problems": result.problems,
                          "counts": counts, "rows": [asdict(r) for r in result.rows],
                          "same_person": [{**asdict(p), "why": p.why}
                                          for p in result.same_person],
                          "nothing_enrolled": result.nothing_enrolled or None},
                         ensure_ascii=False, indent=2))
        return
    prefix = f"{root}/" if root is not None else None

    def rel(file: str) -> str:
        return file[len(prefix):] if prefix and file.startswith(prefix) else file

    if result.rows:
        _table([("FILE", "PERSON", "STATUS", "NOTE")] + [
            (_show(rel(r.file)), _show(r.person), r.status, _show(r.note)) for r in result.rows])
    _same_person(result, root)
    written = f" -> {result.gallery}" if result.ok else ""  # never an arrow to a missing file
    _echo(f"{len(result.people)} people enrolled, {result.photos_used} photos used, "
          f"{result.problems} problems ({counts[SKIP]} skipped, {counts[ERROR]} errors, "
          f"{counts[WARN]} warnings){written}")


def _same_person(result: EnrollResult, root: Path | None) -> None:
    """The names that may be one person, with their template cosine, and what to do."""
    pairs = result.same_person
    if not pairs:
        return
    bar = next((p.bar for p in pairs if p.bar is not None), None)
    rule = f"; near-identical: cosine >= {bar:.3f}" if bar is not None else ""
    _echo(f"warning: names that may be one person ({len(pairs)} pairs{rule}):")
    _table([("NAME", "MAY BE", "COSINE", "WHY")] + [
        (_show(p.second), _show(p.first), f"{p.score:.3f}", _show(p.short))
        for p in pairs])
    if root is not None:
        _echo(f"hint: give each person one folder, {root}/<name>/<photos> (e.g. "
              f"{root}/{_show(pairs[0].first)}/ holding the photos of both names), then "
              "`gallery build --overwrite`; or rename the files of different people")
    else:
        _echo("hint: if they are one person, `gallery remove` one name and add its photos "
              "to the other")


def _cmd_list(db: Path, as_json: bool) -> int:
    with Gallery.open(db) as gallery:
        people, info = gallery.people(), gallery.info
    if as_json:
        _echo(json.dumps({"gallery": str(db), "embedder": asdict(info),
                          "people": [asdict(p) for p in people]}, ensure_ascii=False, indent=2))
        return 0
    _echo(f"{db}: {len(people)} people, embedder {info.name} ({info.version}, {info.dim}-d), "
          f"detector {info.detector}")
    if people:
        _table([("PERSON", "PHOTOS")] + [(_show(p.name), str(p.n_photos)) for p in people])
    return 0


def run_gallery(args: argparse.Namespace) -> int:
    """Run a parsed ``gallery`` command; returns the exit code (see the module docstring)."""
    cmd = args.gallery_cmd
    if cmd == "list":
        return _cmd_list(args.gallery_db, args.json)
    if cmd == "remove":
        person = remove_person(args.gallery_db, args.person)
        _echo(f"removed {_show(person.name)} ({person.n_photos} photos) from {args.gallery_db}")
        return 0
    root: Path | None = None
    if cmd == "build":
        root = args.gallery_dir
        result = build_gallery(root, args.out, embedder=args.embedder, detector=args.detector,
                               strict=args.strict, overwrite=args.overwrite, device=args.device)
    else:
        result = add_photos(args.gallery_db, args.person, args.photos, embedder=args.embedder,
                            detector=args.detector, strict=args.strict, device=args.device)
    _report(result, root, args.json)
    if not result.ok:
        state = "left unchanged" if result.gallery.exists() else "not written"
        _echo(f"cctv-sr: error: {_show(result.nothing_enrolled)}; {result.gallery} {state}",
              err=True)
        return 1
    return 0
