"""The gallery: enrolment from photo folders, SQLite storage, the ``gallery`` CLI verb."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sqlite3
import unicodedata
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED, shared_path

from cctv_sr.cli import main
from cctv_sr.cli.gallery import add_gallery_parser, run_gallery
from cctv_sr.config import DetectorConfig, EmbedderConfig
from cctv_sr.data.synth import T1_FACE_BOXES, background, head_patches
from cctv_sr.errors import ConfigError, OutputError
from cctv_sr.identity.gallery import (
    EmbedderInfo,
    EnrollResult,
    FileResult,
    Gallery,
    add_photos,
    build_gallery,
    flat_person_name,
    remove_person,
)
from cctv_sr.identity.gallery.enroll import MIN_FACE_PX, decode_image
from cctv_sr.identity.gallery.hygiene import name_key, same_person_bar
from cctv_sr.identity.setup import calibrated_thresholds

MODELS_DIR = SHARED / "models"
PEOPLE = ("ann", "bob", "cy", "dee", "eve", "fay")  # the six faces of T1_FACE_BOXES


def _embedder_name() -> str:
    return "mobilefacenet"  # the default, shipped in the package


@pytest.fixture(scope="module")
def models() -> object:
    """(mtcnn, embedder), loaded once; MobileFaceNet, shipped in the package."""
    from cctv_sr.detect.mtcnn import MtcnnDetector
    from cctv_sr.embed import create_embedder

    embedder = create_embedder(EmbedderConfig(name=_embedder_name()))
    # One torch thread: steady timing on a shared, busy CPU.
    detector = MtcnnDetector(DetectorConfig(min_face_px=MIN_FACE_PX), num_threads=1)
    return detector, embedder


@pytest.fixture(scope="module")
def patches(group_photo: np.ndarray) -> list[np.ndarray]:
    """One head photo per person of the group photo."""
    assert len(T1_FACE_BOXES) == len(PEOPLE)
    return head_patches(group_photo, margin=2.2)


def variant(patch: np.ndarray) -> np.ndarray:
    """A second 'photo' of the same person: mirrored and shifted a few pixels."""
    shift = np.float32([[1, 0, 4], [0, 1, -3]])
    moved = cv2.warpAffine(patch, shift, patch.shape[1::-1], borderMode=cv2.BORDER_REFLECT101)
    return np.ascontiguousarray(moved[:, ::-1])


def write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def row_for(result: EnrollResult, suffix: str) -> FileResult:
    found = [r for r in result.rows if r.file.rstrip("/").endswith(suffix)]
    assert len(found) == 1, (suffix, result.rows)
    return found[0]


class FakeEmbedder:
    """A stand-in embedder: 8 band means of the crop (tests of bookkeeping, not of faces)."""

    name, dim, version, model_files = "fake", 8, "fake 1", ()

    def embed(self, crops: np.ndarray) -> np.ndarray:
        bands = crops.astype(np.float32).mean(axis=(2, 3)).reshape(len(crops), 8, -1).mean(2)
        return bands / np.linalg.norm(bands, axis=1, keepdims=True)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cctv-sr")
    add_gallery_parser(parser.add_subparsers(dest="command", required=True))
    return run_gallery(parser.parse_args(argv))


@pytest.mark.parametrize("stem, person", [
    ("alice", "alice"), ("alice_2", "alice"), ("alice-03", "alice"), ("agent_007", "agent"),
    ("x_1_2", "x_1"), ("_1", "_1"), ("a_b", "a_b"), ("2020", "2020"), ("名前_1", "名前"),
    ("..", ".."), ("obama2", "obama2"),
])
def test_flat_file_naming_rule(stem: str, person: str) -> None:
    assert flat_person_name(stem) == person


@pytest.mark.parametrize("stem, key", [
    ("alice", "alice"), ("alice2", "alice"), ("alice_small", "alice"), ("alice-240p", "alice"),
    ("alice 240p", "alice"), ("alice_small_2", "alice"), ("Alice-HD", "Alice"),
    ("alice (1)", "alice"), ("alice.copy", "alice"), ("alice_640x480", "alice"),
    ("2020", "2020"), ("small", "small"), ("_small", "_small"), ("Harold", "Harold"),
    ("anne-marie", "anne-marie"), ("bob_smith", "bob_smith"), ("名前2", "名前"),
])
def test_name_key(stem: str, key: str) -> None:
    assert name_key(stem) == key


@pytest.mark.parametrize("ext, image", [
    (".png", np.full((20, 30), 200, np.uint8)),  # greyscale
    (".png", np.full((20, 30, 4), (10, 20, 30, 0), np.uint8)),  # BGRA, fully transparent
    (".png", np.full((20, 30, 3), 40000, np.uint16)),  # 16-bit
    (".tif", np.full((20, 30), 1000, np.uint16)),  # 16-bit grey
    (".jpg", np.full((20, 30, 3), 90, np.uint8)),
])
def test_decode_image_gives_bgr_uint8(ext: str, image: np.ndarray) -> None:
    ok, data = cv2.imencode(ext, image)
    decoded = decode_image(data.tobytes())
    assert ok and decoded is not None
    assert decoded.shape == (20, 30, 3) and decoded.dtype == np.uint8
    assert decode_image(b"") is None and decode_image(b"GIF89a" + bytes(40)) is None


def test_store_templates_are_normalised_means(tmp_path: Path) -> None:
    vecs = np.eye(4, dtype=np.float32)[[0, 1, 1]] + 0.1
    with Gallery.create(tmp_path / "g.db", EmbedderInfo("e", "v1", 4, "mtcnn")) as g:
        with g.transaction():
            for i, v in enumerate(vecs):
                g.add_photo("p", f"/x/{i}.jpg", f"{i:064x}", v * 3, (0, 0, 9, 9), 0.9)
        with pytest.raises(ConfigError, match="4-d"):
            g.add_photo("p", "/x/bad.jpg", "f" * 64, np.ones(5), (0, 0, 1, 1), 1.0)
    g = Gallery.open(tmp_path / "g.db")
    names, templates = g.templates()
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    mean = unit.mean(0) / np.linalg.norm(unit.mean(0))
    assert names == ["p"] and templates.dtype == np.float32 and templates.shape == (1, 4)
    np.testing.assert_allclose(templates[0], mean, atol=1e-6)
    np.testing.assert_allclose(g.photo_embeddings("p"), unit, atol=1e-6)
    with pytest.raises(OutputError, match="read-only"):
        g.remove_person("p")


def test_round_trip(tmp_path: Path, models: tuple, patches: list[np.ndarray]) -> None:
    root = tmp_path / "people"
    for name, patch in zip(PEOPLE, patches):
        write(root / name / "a.jpg", patch)
        write(root / name / "b.png", variant(patch))
    db = tmp_path / "gallery.db"
    result = build_gallery(root, db, models=models)
    assert result.ok and result.created and set(result.people) == set(PEOPLE)
    assert [r.status for r in result.rows] == ["ok"] * 12, result.rows
    assert result.same_person == ()  # six different people: no near-identical templates
    with Gallery.open(db) as g:
        assert (g.embedder_name, g.embedder_version, g.dim) == (
            models[1].name, models[1].version, models[1].dim)
        assert [(p.name, p.n_photos) for p in g.people()] == [(n, 2) for n in PEOPLE]
        names, templates = g.templates()
        assert names == list(PEOPLE) and templates.shape == (6, g.dim)
        for i, name in enumerate(names):
            photos = g.photo_embeddings(name)
            mean = photos.mean(0) / np.linalg.norm(photos.mean(0))
            np.testing.assert_allclose(templates[i], mean, atol=1e-5)
            assert np.argmax(photos @ templates.T, axis=1).tolist() == [i, i]  # own template
            assert g.photo_paths(name) == [str((root / name / f).resolve())
                                           for f in ("a.jpg", "b.png")]
    # add: a third photo for ann, a new person, and a photo that is already there
    extra = write(tmp_path / "new" / "ann3.jpg", cv2.resize(patches[0], None, fx=1.3, fy=1.3))
    assert add_photos(db, "ann", [extra], models=models).people == ("ann",)
    fay = root / "fay" / "a.jpg"
    with pytest.raises(ConfigError, match=re.escape(
            f"{fay}: this photo (same sha256) is already enrolled as 'fay'; refusing to enrol "
            "it as 'zed' too: one photo, one person")):
        add_photos(db, "zed", [write(tmp_path / "new" / "z0.jpg", cv2.resize(
            patches[1], None, fx=1.2, fy=1.2)), fay],
                   models=models)
    fay_sha = _sha(fay)
    with Gallery.open(db) as g:  # nothing of the refused call was written
        assert g.find("zed") is None and g.owners(fay_sha) == ["fay"]
    smaller = cv2.resize(patches[5], None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    zed = add_photos(db, "zed", [write(tmp_path / "new" / "z.jpg", smaller)],
                     models=models)  # fay again, but another photo: a warning, not a refusal
    assert zed.ok and [(p.first, p.second, p.similar_templates, p.similar_names)
                       for p in zed.same_person] == [("fay", "zed", True, False)]
    again = add_photos(db, "ann", [root / "ann" / "a.jpg"], models=models)
    assert again.ok and again.rows[0].status == "skip" and "already" in again.rows[0].note
    assert remove_person(db, "bob").n_photos == 2
    with pytest.raises(ConfigError, match="no person"):
        remove_person(db, "bob")
    # re-building into the same db adds nothing new and still succeeds
    rebuilt = build_gallery(root, db, models=models)
    assert rebuilt.ok and not rebuilt.created and rebuilt.photos_used == 2  # bob's, re-added
    with Gallery.open(db) as g:
        counts = {p.name: p.n_photos for p in g.people()}
        assert counts == {"ann": 3, "bob": 2, "cy": 2, "dee": 2, "eve": 2, "fay": 2, "zed": 1}
        assert g.owners(fay_sha) == ["fay"]
        rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM photo").fetchone()
        assert rows == (sum(counts.values()),)


Builder = Callable[[Path, list[np.ndarray], np.ndarray], None]


def _no_face(root: Path, p: list[np.ndarray], group: np.ndarray) -> None:
    write(root / "tex" / "wall.jpg", background(320, 240, seed=3))


def _group(root: Path, p: list[np.ndarray], group: np.ndarray) -> None:
    write(root / "crowd" / "group.jpg", group)


def _unreadable(root: Path, p: list[np.ndarray], group: np.ndarray) -> None:
    (root / "junk").mkdir()
    (root / "junk" / "broken.jpg").write_bytes(np.random.default_rng(0).bytes(5000))


def _text(root: Path, p: list[np.ndarray], group: np.ndarray) -> None:
    (root / "notes.txt").write_text("not a photo")


def _empty(root: Path, p: list[np.ndarray], group: np.ndarray) -> None:
    (root / "nobody").mkdir()


def _dup_photo(root: Path, p: list[np.ndarray], group: np.ndarray) -> None:
    write(root / "cy" / "one.png", p[2])
    (root / "cy" / "two.png").write_bytes((root / "cy" / "one.png").read_bytes())


def _shared_photo(root: Path, p: list[np.ndarray], group: np.ndarray) -> None:
    write(root / "cy" / "one.png", p[2])
    (root / "dee.png").write_bytes((root / "cy" / "one.png").read_bytes())  # flat: after cy/


def _dup_name(root: Path, p: list[np.ndarray], group: np.ndarray) -> None:
    write(root / "alice" / "a.jpg", p[3])
    write(root / "alice.jpg", variant(p[3]))


def _nfc_nfd(root: Path, p: list[np.ndarray], group: np.ndarray) -> None:
    # NFD sorts first ("e" + combining mark < "ë"), so the NFC folder's photo gets the note
    write(root / unicodedata.normalize("NFD", "Zoë") / "b.jpg", p[4])
    write(root / unicodedata.normalize("NFC", "Zoë") / "c.jpg", variant(p[4]))


BAD_INPUTS: list[tuple[str, Builder, bool, str, str, str]] = [
    # case, builder, --strict, file suffix, status, note (regex)
    ("no face", _no_face, False, "wall.jpg", "skip", "no face"),
    ("several faces", _group, False, "group.jpg", "warn", r"^\d+ faces: used the largest$"),
    ("several faces strict", _group, True, "group.jpg", "skip", r"\d+ faces: refused \(--strict"),
    ("random bytes .jpg", _unreadable, False, "broken.jpg", "error", "not a readable image"),
    ("text file", _text, False, "notes.txt", "skip", "not an image file"),
    ("empty folder", _empty, False, "nobody", "skip", "empty folder"),
    ("duplicate photo", _dup_photo, False, "two.png", "skip", "duplicate photo .*one.png"),
    ("same photo, two names", _shared_photo, False, "dee.png", "skip",
     r"^same photo under another name \(sha256 of .*/cy/one\.png, enrolled as 'cy'\); "
     "not enrolled as 'dee'$"),
    ("folder and flat name", _dup_name, False, "alice.jpg", "warn",
     "name also from folder alice/; merged"),
    ("NFC and NFD name", _nfc_nfd, False, "c.jpg", "warn",
     "name also from folder Zoe\u0308/ \\(same name, other Unicode form\\); merged"),
]


@pytest.mark.parametrize("case, build, strict, suffix, status, note", BAD_INPUTS,
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_reported_per_file(tmp_path: Path, models: tuple, patches: list[np.ndarray],
                                        group_photo: np.ndarray, case: str, build: Builder,
                                        strict: bool, suffix: str, status: str,
                                        note: str) -> None:
    root = tmp_path / "people"
    write(root / "ann" / "a.jpg", patches[0])  # one good person in every tree
    build(root, patches, group_photo)
    result = build_gallery(root, tmp_path / "g.db", strict=strict, models=models)
    row = row_for(result, suffix)
    in_gallery = status in ("ok", "warn") or case == "duplicate photo"  # its twin is enrolled
    assert (row.status, row.in_gallery) == (status, in_gallery), row
    assert row.note and re.search(note, row.note), row
    assert result.ok and "ann" in result.people and result.problems >= 1
    with Gallery.open(tmp_path / "g.db") as g:
        people = {p.name: p.n_photos for p in g.people()}
    merged = {"folder and flat name": ("alice", 2), "NFC and NFD name": ("Zoë", 2),
              "duplicate photo": ("cy", 1), "several faces": ("crowd", 1),
              "same photo, two names": ("cy", 1)}
    if case in merged:
        assert people[merged[case][0]] == merged[case][1]
    assert set(people) == {"ann"} | ({merged[case][0]} if case in merged else set())


def test_every_photo_failed(tmp_path: Path, models: tuple, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "people"
    write(root / "tex" / "wall.jpg", background(200, 200, seed=1))
    (root / "readme.txt").write_text("x")
    result = build_gallery(root, tmp_path / "g.db", models=models)
    assert not result.ok and not result.created and not (tmp_path / "g.db").exists()
    assert result.nothing_enrolled == (f"no photo enrolled from {root}: 1 image file, none "
                                       "usable (not an image file (1), no face found (1))")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people"]  # no temp file left
    # --overwrite of an existing gallery with nothing usable leaves the old one intact
    db = tmp_path / "old.db"
    with Gallery.create(db, EmbedderInfo(models[1].name, models[1].version, models[1].dim,
                                         "mtcnn")) as g:
        g.add_photo("kept", "/x.jpg", "0" * 64, np.ones(models[1].dim), (0, 0, 1, 1), 1.0)
    assert not build_gallery(root, db, overwrite=True, models=models).ok
    assert [p.name for p in Gallery.open(db).people()] == ["kept"]


NAMES = ["..", "../../etc", "a/b", "Zoë", "名前", "👤", "שלום", "/", "x\u202ey", " lead space"]


def test_unicode_and_traversal_names_are_data(tmp_path: Path, models: tuple,
                                              patches: list[np.ndarray],
                                              capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "work"
    db = work / "g.db"
    photos = []
    for i, name in enumerate(NAMES):  # one photo, one person: other bytes for every name
        image = patches[1].copy()
        image[0, 0] = (i, i, i)
        photos.append(write(work / f"p{i}.png", image))
        assert add_photos(db, name, [photos[-1]], models=models).ok, name
    photo = photos[0]
    # flat files whose stems are odd names (a name with '/' cannot be a file name)
    flat = work / "flat"
    write(flat / "...jpg", patches[2])  # stem '..'
    write(flat / "名前_2.jpg", patches[3])
    write(flat / unicodedata.normalize("NFD", "Zoë-7.png"), patches[4])
    assert build_gallery(flat, db, models=models).ok
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with Gallery.open(db) as g:
        people = {p.name: p.n_photos for p in g.people()}
        assert g.photo_paths("..") == [str(photo.resolve()), str((flat / "...jpg").resolve())]
    assert people == {**{n: 1 for n in NAMES}, "..": 2, "名前": 2, "Zoë": 2}
    assert sorted(p.name for p in work.iterdir()) == sorted(
        ["flat", "g.db"] + [p.name for p in photos])
    assert not (tmp_path / "etc").exists() and not (work / "a").exists()
    # the CLI shows them as data; a bidi override is escaped in the text table
    assert cli(["gallery", "list", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in listed["people"]} == set(people)
    assert cli(["gallery", "list", str(db)]) == 0
    text = capsys.readouterr().out
    assert "x\\u202ey" in text and "\u202e" not in text and "👤" in text
    assert cli(["gallery", "remove", str(db), "../../etc"]) == 0
    assert "../../etc" not in {p.name for p in Gallery.open(db).people()}
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    for bad in ("", "   ", "a\nb", "nul\x00"):
        with pytest.raises(ConfigError):
            add_photos(db, bad, [photo], models=models)


def test_mixing_embedders_is_refused(tmp_path: Path, models: tuple, patches: list[np.ndarray],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "people"
    write(root / "ann" / "a.jpg", patches[0])
    db = tmp_path / "g.db"
    assert build_gallery(root, db, models=models).ok
    other = "arcface" if models[1].name != "arcface" else "dlib"
    with pytest.raises(ConfigError, match="refusing to mix"):
        add_photos(db, "bob", [root / "ann" / "a.jpg"], embedder=other)  # refused before loading
    with pytest.raises(ConfigError, match="refusing to mix"):
        cli(["gallery", "build", str(root), "--out", str(db), "--embedder", other])
    fake = (models[0], FakeEmbedder())
    with pytest.raises(ConfigError, match="refusing to mix"):
        add_photos(db, "bob", [root / "ann" / "a.jpg"], models=fake)  # same call, other model
    with Gallery.open(db) as g:
        assert [p.name for p in g.people()] == ["ann"] and g.embedder_name == models[1].name
    rebuilt = build_gallery(root, db, overwrite=True, models=fake)  # --overwrite may switch
    assert rebuilt.ok and rebuilt.created
    with Gallery.open(db) as g:
        assert (g.embedder_name, g.dim, g.templates()[1].shape) == ("fake", 8, (1, 8))


def test_bad_db_files(tmp_path: Path, models: tuple) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00not sqlite" * 100)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    for path in (junk, foreign):
        with pytest.raises(OutputError, match="not a cctv-sr gallery"):
            Gallery.open(path)
        with pytest.raises(OutputError):  # --overwrite replaces galleries only
            build_gallery(tmp_path, path, overwrite=True, models=models)
    with pytest.raises(ConfigError, match="no such gallery"):
        Gallery.open(tmp_path / "missing.db")
    with pytest.raises(ConfigError, match="not found"):
        build_gallery(tmp_path / "missing", tmp_path / "g.db", models=models)
    with pytest.raises(OutputError, match="does not exist"):
        add_photos(tmp_path / "no" / "g.db", "ann", ["x.jpg"], models=models)


def test_cli_build_list_add_remove(tmp_path: Path, patches: list[np.ndarray],
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    if MODELS_DIR.is_dir():
        monkeypatch.setenv("CCTV_SR_MODELS", str(MODELS_DIR))
    root = tmp_path / "people"
    write(root / "ann" / "a.jpg", patches[0])
    write(root / "bob.png", patches[1])
    (root / "bob.txt").write_text("x")
    db = tmp_path / "g.db"
    emb = _embedder_name()
    assert cli(["gallery", "build", str(root), "--out", str(db), "--embedder", emb]) == 0
    out = capsys.readouterr().out
    assert "ann/a.jpg" in out and "bob.txt" in out and "not an image file" in out
    assert "2 people enrolled, 2 photos used, 1 problems" in out
    assert main(["gallery", "add", str(db), "bob", str(root / "ann" / "a.jpg")]) == 1
    assert capsys.readouterr().err == (
        f"cctv-sr: error: {root / 'ann' / 'a.jpg'}: this photo (same sha256) is already "
        "enrolled as 'ann'; refusing to enrol it as 'bob' too: one photo, one person\n")
    bob2 = write(tmp_path / "bob2.jpg", variant(patches[1]))
    assert cli(["gallery", "add", str(db), "bob", str(bob2), "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["people"] == ["bob"] and added["rows"][0]["status"] == "ok"
    assert added["same_person"] == [] and added["nothing_enrolled"] is None
    assert cli(["gallery", "remove", str(db), "ann"]) == 0
    assert cli(["gallery", "list", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert listed["embedder"]["name"] == emb
    assert [(p["name"], p["n_photos"]) for p in listed["people"]] == [("bob", 2)]



def test_nothing_enrolled_says_why(tmp_path: Path, models: tuple,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("cctv_sr.identity.gallery.load_models", lambda *a: models)
    empty, no_images, no_faces = (tmp_path / n for n in ("empty", "no_images", "no_faces"))
    empty.mkdir()
    (no_images / "nobody").mkdir(parents=True)
    (no_images / "notes.txt").write_text("x")
    write(no_faces / "wall.jpg", background(200, 200, seed=1))
    write(no_faces / "tex" / "wall.png", background(200, 200, seed=2))
    db = tmp_path / "g.db"
    expected = {
        empty: f"{empty}: the folder is empty: no photos to enrol",
        no_images: f"{no_images}: no image files to enrol in the folder (empty folder: no "
                   "images (1), not an image file (1))",
        no_faces: f"no photo enrolled from {no_faces}: 2 image files, none usable (no face "
                  "found (2))",
    }
    for folder, why in expected.items():
        assert build_gallery(folder, db, models=models).nothing_enrolled == why
        assert cli(["gallery", "build", str(folder), "--out", str(db)]) == 1
        out, err = capsys.readouterr()
        assert err == f"cctv-sr: error: {why}; {db} not written\n"
        assert "->" not in out and not db.exists()  # no arrow to a file that is not there
        assert cli(["gallery", "build", str(folder), "--out", str(db), "--json"]) == 1
        assert json.loads(capsys.readouterr().out)["nothing_enrolled"] == why
    with Gallery.create(db, EmbedderInfo(models[1].name, models[1].version, models[1].dim,
                                         "mtcnn")) as g:
        g.add_photo("kept", "/x.jpg", "0" * 64, np.ones(models[1].dim), (0, 0, 1, 1), 1.0)
    for extra in ([], ["--overwrite"]):
        assert cli(["gallery", "build", str(empty), "--out", str(db), *extra]) == 1
        assert capsys.readouterr().err == f"cctv-sr: error: {expected[empty]}; {db} left " \
                                          "unchanged\n"
    wall = no_faces / "wall.jpg"
    assert cli(["gallery", "add", str(db), "kept", str(wall)]) == 1
    assert capsys.readouterr().err == ("cctv-sr: error: no photo enrolled: 1 photo given, none "
                                       f"usable (no face found (1)); {db} left unchanged\n")


@pytest.mark.shared
@pytest.mark.parametrize("name, people", [
    ("face_recognition_knn", {"alex_lacamoire", "biden", "kit_harington", "obama",
                              "rose_leslie"}),
    ("faceapi_bbt", {"amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon",
                     "stuart"}),
])
def test_shared_galleries(tmp_path: Path, models: tuple, name: str, people: set[str]) -> None:
    root = shared_path(f"data/gallery/{name}")
    result = build_gallery(root, tmp_path / "g.db", models=models)
    images = [r for r in result.rows if r.file.lower().endswith((".jpg", ".jpeg", ".png"))]
    assert set(result.people) == people
    assert [r for r in images if r.status != "ok"] == []  # every photo: one clear face
    assert {r.file for r in result.rows if r not in images} <= {str(root / "LICENSE")}
    with Gallery.open(tmp_path / "g.db") as g:
        assert sum(p.n_photos for p in g.people()) == len(images)


def _flat_variants(root: Path, patches: list[np.ndarray]) -> None:
    """ann four times under the names of the issue, bob once, and cy's photo named bob_small."""
    ann = patches[0]
    h, w = ann.shape[:2]
    low = cv2.resize(cv2.resize(ann, (w // 3, h // 3), interpolation=cv2.INTER_AREA), (w, h))
    write(root / "ann.jpg", ann)
    write(root / "ann2.jpg", variant(ann))
    write(root / "ann_small.jpg", cv2.resize(ann, None, fx=0.7, fy=0.7,
                                             interpolation=cv2.INTER_AREA))
    write(root / "ann-240p.jpg", low)
    write(root / "bob.jpg", patches[1])
    write(root / "bob_small.jpg", patches[2])  # another person: the names alone are alike


ANN_PAIRS = {("ann", "ann-240p"), ("ann", "ann2"), ("ann", "ann_small"), ("ann-240p", "ann2"),
             ("ann-240p", "ann_small"), ("ann2", "ann_small")}


def test_same_person_under_two_names_is_a_warning(tmp_path: Path, models: tuple,
                                                  patches: list[np.ndarray],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "flat"
    _flat_variants(root, patches)
    result = build_gallery(root, tmp_path / "g.db", models=models)
    assert result.ok and len(result.people) == 6 and result.problems == 0  # still enrolled
    bar = same_person_bar(models[1].name)
    far = calibrated_thresholds(models[1].name)  # bar: FAR 1e-3 + (FAR 1e-3 - FAR 1e-2)
    assert bar == pytest.approx(2 * far.far_1e3 - far.far_1e2) and bar > far.far_1e3
    by_pair = {(p.first, p.second): p for p in result.same_person}
    assert set(by_pair) == ANN_PAIRS | {("bob", "bob_small")}, result.same_person
    for pair in ANN_PAIRS:  # one person's templates: near-identical, and alike names
        assert by_pair[pair].similar_templates and by_pair[pair].similar_names, by_pair[pair]
        assert by_pair[pair].score >= bar and not by_pair[pair].refused
    bob = by_pair["bob", "bob_small"]  # alike names only: reported with its (low) score
    assert bob.similar_names and not bob.similar_templates and bob.score < bar
    assert bob.note == (f"'bob_small' may be 'bob': names differ only by a number or suffix "
                        f"(cosine {bob.score:.3f} < {bar:.3f})")
    with Gallery.open(tmp_path / "g.db") as g:
        names, templates = g.templates()
    i, j = names.index("ann"), names.index("ann2")
    assert by_pair["ann", "ann2"].score == pytest.approx(float(templates[i] @ templates[j]))
    # the CLI lists the pairs under the table and suggests the folder layout
    monkeypatch.setattr("cctv_sr.identity.gallery.load_models", lambda *a: models)
    assert cli(["gallery", "build", str(root), "--out", str(tmp_path / "c.db")]) == 0
    out = capsys.readouterr().out
    assert f"warning: names that may be one person (7 pairs; near-identical: cosine >= {bar:.3f}" \
           "):" in out
    assert re.search(r"\nann2 +ann +[01]\.\d{3} +near-identical templates, names alike\n", out)
    assert re.search(r"\nbob_small +bob +-?0\.\d{3} +names alike\n", out)
    assert f"hint: give each person one folder, {root}/<name>/<photos> (e.g. {root}/ann/ " \
           "holding the photos of both names), then `gallery build --overwrite`" in out
    assert out.rstrip().endswith(f"6 people enrolled, 6 photos used, 0 problems (0 skipped, "
                                 f"0 errors, 0 warnings) -> {tmp_path / 'c.db'}")
    assert cli(["gallery", "build", str(root), "--out", str(tmp_path / "j.db"), "--json",
                "--overwrite"]) == 0
    listed = json.loads(capsys.readouterr().out)["same_person"]
    assert {(p["first"], p["second"]) for p in listed} == set(by_pair)
    # a folder per person: six different people are no pair
    tidy = tmp_path / "tidy"
    for name, patch in zip(PEOPLE, patches):
        write(tidy / name / "a.jpg", patch)
    assert build_gallery(tidy, tmp_path / "t.db", models=models).same_person == ()


def test_strict_refuses_the_second_name(tmp_path: Path, models: tuple,
                                        patches: list[np.ndarray]) -> None:
    root = tmp_path / "flat"
    _flat_variants(root, patches)
    db = tmp_path / "g.db"
    result = build_gallery(root, db, strict=True, models=models)
    assert result.ok and set(result.people) == {"ann", "bob"}
    for name in ("ann2", "ann_small", "ann-240p"):
        row = row_for(result, f"/{name}.jpg")
        assert (row.status, row.in_gallery, row.note) == (
            "skip", False, "may be the same person as 'ann': refused (--strict)"), row
    assert row_for(result, "/bob_small.jpg").note == \
        "may be the same person as 'bob': refused (--strict)"
    assert {(p.first, p.second) for p in result.same_person if p.refused} == {
        ("ann", "ann2"), ("ann", "ann_small"), ("ann", "ann-240p"), ("bob", "bob_small")}
    with Gallery.open(db) as g:
        assert [(p.name, p.n_photos) for p in g.people()] == [("ann", 1), ("bob", 1)]
        assert np.isfinite(g.templates()[1]).all()
    # into an existing gallery: only this run's photos of the refused name come out again
    more = tmp_path / "more"
    write(more / "bob.png", variant(patches[1]))
    write(more / "bob3.jpg", cv2.resize(patches[1], None, fx=0.8, fy=0.8))
    again = build_gallery(more, db, strict=True, models=models)
    assert [(r.file.rsplit("/", 1)[1], r.status) for r in again.rows] == [
        ("bob.png", "ok"), ("bob3.jpg", "skip")], again.rows
    with Gallery.open(db) as g:
        assert [(p.name, p.n_photos) for p in g.people()] == [("ann", 1), ("bob", 2)]
