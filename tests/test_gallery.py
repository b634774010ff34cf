"""The gallery: enrolment from photo folders, SQLite storage, the ``gallery`` CLI verb."""

from __future__ import annotations

import argparse
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

from cctv_sr.cli.gallery import add_gallery_parser, run_gallery
from cctv_sr.config import DetectorConfig, EmbedderConfig
from cctv_sr.data.synth import T1_FACE_BOXES, background, head_patches
from cctv_sr.errors import BackendUnavailableError, ConfigError, ModelError, OutputError
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

MODELS_DIR = SHARED / "models"
PEOPLE = ("ann", "bob", "cy", "dee", "eve", "fay")  # the six faces of T1_FACE_BOXES


def _embedder_name() -> str:
    return "mobilefacenet" if (MODELS_DIR / "mobilefacenet").is_dir() else "dlib"


@pytest.fixture(scope="module")
def models() -> object:
    """(mtcnn, embedder), loaded once; mobilefacenet from ../shared when present, else dlib."""
    from cctv_sr.detect.mtcnn import MtcnnDetector
    from cctv_sr.embed import create_embedder

    with pytest.MonkeyPatch.context() as mp:
        if _embedder_name() == "mobilefacenet":
            mp.setenv("CCTV_SR_MODELS", str(MODELS_DIR))
        try:
            embedder = create_embedder(EmbedderConfig(name=_embedder_name()))
        except (BackendUnavailableError, ModelError) as exc:
            pytest.skip(f"no embedder available: {exc}")
        # One torch thread: steady timing on a shared, busy CPU.
        detector = MtcnnDetector(DetectorConfig(min_face_px=MIN_FACE_PX), num_threads=1)
        yield detector, embedder


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
    assert add_photos(db, "zed", [root / "fay" / "a.jpg"], models=models).ok
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
              "duplicate photo": ("cy", 1), "several faces": ("crowd", 1)}
    if case in merged:
        assert people[merged[case][0]] == merged[case][1]
    assert set(people) == {"ann"} | ({merged[case][0]} if case in merged else set())


def test_every_photo_failed(tmp_path: Path, models: tuple, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "people"
    write(root / "tex" / "wall.jpg", background(200, 200, seed=1))
    (root / "readme.txt").write_text("x")
    result = build_gallery(root, tmp_path / "g.db", models=models)
    assert not result.ok and not (tmp_path / "g.db").exists()
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
    photo = write(work / "p.jpg", patches[1])
    db = work / "g.db"
    for name in NAMES:
        assert add_photos(db, name, [photo], models=models).ok, name
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
    assert sorted(p.name for p in work.iterdir()) == ["flat", "g.db", "p.jpg"]
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
    assert cli(["gallery", "add", str(db), "bob", str(root / "ann" / "a.jpg"), "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["people"] == ["bob"] and added["rows"][0]["status"] == "ok"
    assert cli(["gallery", "remove", str(db), "ann"]) == 0
    assert cli(["gallery", "list", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert listed["embedder"]["name"] == emb
    assert [(p["name"], p["n_photos"]) for p in listed["people"]] == [("bob", 2)]
    (tmp_path / "empty").mkdir()
    assert cli(["gallery", "build", str(tmp_path / "empty"), "--out", str(tmp_path / "e.db")]) == 1
    assert "no photo enrolled" in capsys.readouterr().err and not (tmp_path / "e.db").exists()


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
