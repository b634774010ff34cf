"""SQLite storage of the gallery: people, their photos' embeddings and one template each.

One file, stdlib :mod:`sqlite3`. Person names are data (NFC TEXT), never paths: any Unicode
name round-trips, ``'../..'`` and ``'a/b'`` included. Embeddings are little-endian float32 BLOBs
with their dim, all made by the embedder named in the one ``gallery`` row (writers refuse to
mix). Schema: ``_SCHEMA`` below; its version is in table ``schema_version``.

Example::

    with Gallery.open("gallery.db") as g:
        names, templates = g.templates()        # list[str], (P, dim) float32, unit rows
"""

from __future__ import annotations

import sqlite3
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cctv_sr import __version__
from cctv_sr.errors import ConfigError, OutputError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE gallery (id INTEGER PRIMARY KEY CHECK (id = 1), embedder TEXT NOT NULL,
    embedder_version TEXT NOT NULL, dim INTEGER NOT NULL CHECK (dim > 0), detector TEXT NOT NULL,
    align_side INTEGER NOT NULL, created_at TEXT NOT NULL, tool_version TEXT NOT NULL);
CREATE TABLE person (person_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, template BLOB
    NOT NULL, dim INTEGER NOT NULL, enrolled_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE photo (photo_id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES person(person_id) ON DELETE CASCADE,
    path TEXT NOT NULL, sha256 TEXT NOT NULL, embedding BLOB NOT NULL, dim INTEGER NOT NULL,
    embedder TEXT NOT NULL, embedder_version TEXT NOT NULL, detector TEXT NOT NULL,
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    det_score REAL NOT NULL, n_faces INTEGER NOT NULL, note TEXT NOT NULL,
    enrolled_at TEXT NOT NULL, UNIQUE (person_id, sha256));
"""


def normalise_name(name: str) -> str:
    """A person name as stored: NFC. Blank names and control characters are refused."""
    nfc = unicodedata.normalize("NFC", name) if isinstance(name, str) else ""
    if not nfc.strip():
        raise ConfigError(f"person name {name!r} is empty")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in nfc):
        raise ConfigError(f"person name {name!r} has control characters or is not valid text")
    return nfc


def now_utc() -> str:
    """Current UTC time as ISO 8601 text (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class EmbedderInfo:
    """Which models made a gallery's vectors (every vector in one gallery shares them)."""

    name: str
    version: str
    dim: int
    detector: str
    align_side: int = 128


@dataclass(frozen=True)
class Person:
    """One enrolled person."""

    person_id: int
    name: str
    n_photos: int


@dataclass(frozen=True, eq=False)
class PhotoRecord:
    """One enrolled photo: source file, face used (xyxy in photo px), unit embedding."""

    path: str
    sha256: str
    xyxy: tuple[float, float, float, float]
    det_score: float
    n_faces: int
    note: str
    embedding: np.ndarray
    detector: str
    enrolled_at: str


def _blob(vector: np.ndarray) -> bytes:
    """Unit-normalised little-endian float32 bytes of ``vector``."""
    vec = np.asarray(vector, dtype=np.float64)
    return (vec / max(float(np.linalg.norm(vec)), 1e-12)).astype("<f4").tobytes()


def _vector(blob: bytes, dim: int, where: str) -> np.ndarray:
    if not isinstance(blob, bytes) or len(blob) != 4 * dim:
        raise OutputError(f"{where}: stored embedding is not {dim} float32 values (corrupt db)")
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


class Gallery:
    """A gallery db file. :meth:`open` an existing one (read-only unless ``writable``) or
    :meth:`create` a new one. Thread-safe; a context manager (or call :meth:`close`)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, writable: bool) -> None:
        self._conn, self.path, self.writable = conn, path, writable
        self._lock = threading.RLock()
        row = self._query("SELECT embedder, embedder_version, dim, detector, align_side, "
                          "created_at FROM gallery WHERE id = 1")
        if not row:
            raise OutputError(f"{path}: not a cctv-sr gallery (no gallery row)")
        name, version, dim, detector, side, created = row[0]
        self.info = EmbedderInfo(name, version, int(dim), detector, int(side))
        self.embedder_name: str = name  # every vector of the gallery comes from this embedder
        self.embedder_version: str = version
        self.dim: int = int(dim)
        self.created_at: str = created

    @staticmethod
    def _connect(path: Path, mode: str) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True,
                                   check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise OutputError(f"{path}: cannot open gallery db: {exc}") from exc
        return conn

    @classmethod
    def open(cls, path: str | Path, *, writable: bool = False) -> Gallery:
        """An existing gallery; ConfigError when missing, OutputError when corrupt/foreign."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such gallery db (see `cctv-sr gallery build`)")
        conn = cls._connect(path, "rw" if writable else "ro")
        try:
            rows = [tuple(r) for r in conn.execute("SELECT version FROM schema_version")]
            if rows != [(SCHEMA_VERSION,)]:
                raise OutputError(f"{path}: gallery schema version {rows} is not "
                                  f"{SCHEMA_VERSION} (made by another cctv-sr version?)")
            return cls(conn, path, writable)
        except sqlite3.Error as exc:
            conn.close()
            raise OutputError(f"{path}: not a cctv-sr gallery db ({exc})") from exc
        except BaseException:
            conn.close()
            raise

    @classmethod
    def create(cls, path: str | Path, info: EmbedderInfo) -> Gallery:
        """A new, empty gallery at ``path`` (absent or an empty file)."""
        path = Path(path)
        if info.dim <= 0 or not info.name:
            raise ConfigError(f"gallery needs an embedder name and a positive dim, got {info}")
        if path.exists() and (not path.is_file() or path.stat().st_size > 0):
            raise OutputError(f"{path}: already exists; refusing to create a gallery over it")
        conn = cls._connect(path, "rwc")
        try:
            conn.executescript("BEGIN;" + _SCHEMA)  # leaves the transaction open
            conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            conn.execute("INSERT INTO gallery VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                         (info.name, info.version, info.dim, info.detector, info.align_side,
                          now_utc(), __version__))
            conn.execute("COMMIT")
            return cls(conn, path, True)
        except sqlite3.Error as exc:
            conn.close()
            raise OutputError(f"{path}: cannot write gallery db: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self._lock:
            try:
                return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]
            except sqlite3.Error as exc:
                raise OutputError(f"{self.path}: gallery db query failed: {exc}") from exc

    def people(self) -> list[Person]:
        """Everyone enrolled, ordered by name (code points)."""
        rows = self._query("SELECT person_id, name, COUNT(photo_id) FROM person LEFT JOIN "
                           "photo USING (person_id) GROUP BY person_id ORDER BY name")
        return [Person(int(i), n, int(c)) for i, n, c in rows]

    def find(self, name: str) -> Person | None:
        """The person called ``name`` (compared after NFC), or None."""
        rows = self._query("SELECT person_id, name, COUNT(photo_id) FROM person LEFT JOIN "
                           "photo USING (person_id) WHERE name = ? GROUP BY person_id",
                           (unicodedata.normalize("NFC", name),))
        return Person(int(rows[0][0]), rows[0][1], int(rows[0][2])) if rows else None

    def _person(self, person: Person | str) -> Person:
        found = self.find(person.name if isinstance(person, Person) else person)
        if found is None:
            raise ConfigError(f"{self.path}: no person {person!r} in the gallery")
        return found

    def templates(self) -> tuple[list[str], np.ndarray]:
        """Names and templates ``(P, dim)`` float32 in the order of :meth:`people`; each
        template is the mean of the person's photo embeddings, re-normalised to unit length."""
        rows = self._query("SELECT name, template FROM person ORDER BY name")
        mat = np.zeros((len(rows), self.dim), np.float32)
        for i, (name, blob) in enumerate(rows):
            mat[i] = _vector(blob, self.dim, f"{self.path}: template of {name!r}")
        return [r[0] for r in rows], mat

    def photos(self, person: Person | str) -> list[PhotoRecord]:
        """Every photo of ``person``, in enrolment order."""
        rows = self._query("SELECT path, sha256, x0, y0, x1, y1, det_score, n_faces, note, "
                           "embedding, detector, enrolled_at FROM photo WHERE person_id = ? "
                           "ORDER BY photo_id", (self._person(person).person_id,))
        return [PhotoRecord(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6], r[7], r[8],
                            _vector(r[9], self.dim, f"{self.path}: photo {r[0]!r}"), r[10],
                            r[11]) for r in rows]

    def photo_embeddings(self, person: Person | str) -> np.ndarray:
        """``(n_photos, dim)`` float32 unit rows of ``person``'s photos."""
        return np.stack([r.embedding for r in self.photos(person)]).astype(np.float32)

    def photo_paths(self, person: Person | str) -> list[str]:
        """Absolute paths the photos of ``person`` were enrolled from (they may have moved)."""
        return [r.path for r in self.photos(person)]

    def has_photo(self, name: str, sha256: str) -> bool:
        """Whether ``name`` already has a photo with this sha256."""
        return bool(self._query("SELECT 1 FROM photo JOIN person USING (person_id) WHERE name "
                                "= ? AND sha256 = ?", (unicodedata.normalize("NFC", name), sha256)))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all."""
        if not self.writable:
            raise OutputError(f"{self.path}: gallery was opened read-only")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _write(self, sql: str, params: Sequence[object]) -> int:
        if not self.writable:
            raise OutputError(f"{self.path}: gallery was opened read-only")
        with self._lock:
            try:
                return int(self._conn.execute(sql, params).lastrowid or 0)
            except sqlite3.Error as exc:
                raise OutputError(f"{self.path}: cannot write gallery db: {exc}") from exc

    def add_photo(self, name: str, path: str, sha256: str, embedding: np.ndarray,
                  xyxy: Sequence[float], det_score: float, n_faces: int = 1, note: str = "",
                  detector: str = "") -> None:
        """Store one photo's embedding under ``name`` (created when new) and refresh their
        template. Use inside :meth:`transaction` to commit several at once."""
        name = normalise_name(name)
        vec = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if vec.shape[0] != self.dim or not np.all(np.isfinite(vec)):
            raise ConfigError(f"embedding for {name!r}: {vec.shape[0]} values (or non-finite "
                              f"ones); the gallery holds {self.dim}-d vectors")
        stamp, found = now_utc(), self.find(name)
        pid = found.person_id if found else self._write(
            "INSERT INTO person (name, template, dim, enrolled_at, updated_at) VALUES "
            "(?, ?, ?, ?, ?)", (name, _blob(vec), self.dim, stamp, stamp))
        self._write("INSERT INTO photo (person_id, path, sha256, embedding, dim, embedder, "
                    "embedder_version, detector, x0, y0, x1, y1, det_score, n_faces, note, "
                    "enrolled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (pid, path, sha256, _blob(vec), self.dim, self.info.name, self.info.version,
                     detector or self.info.detector, *(float(v) for v in xyxy),
                     float(det_score), int(n_faces), note, stamp))
        self._refresh_template(name, pid, stamp)

    def _refresh_template(self, name: str, pid: int, stamp: str) -> None:
        mean = self.photo_embeddings(name).mean(axis=0)
        self._write("UPDATE person SET template = ?, updated_at = ? WHERE person_id = ?",
                    (_blob(mean), stamp, pid))

    def owners(self, sha256: str) -> list[str]:
        """Names holding a photo with this sha256, ordered by name."""
        return [r[0] for r in self._query("SELECT DISTINCT name FROM photo JOIN person USING "
                                          "(person_id) WHERE sha256 = ? ORDER BY name",
                                          (sha256,))]

    def remove_photo(self, name: str, sha256: str) -> None:
        """Delete ``name``'s photo with this sha256 and refresh their template; a person left
        with no photo is deleted. ConfigError when there is no such person."""
        person = self._person(name)
        self._write("DELETE FROM photo WHERE person_id = ? AND sha256 = ?",
                    (person.person_id, sha256))
        if self._query("SELECT 1 FROM photo WHERE person_id = ?", (person.person_id,)):
            self._refresh_template(person.name, person.person_id, now_utc())
        else:
            self._write("DELETE FROM person WHERE person_id = ?", (person.person_id,))

    def remove_person(self, name: str) -> Person:
        """Delete ``name`` and all their photos; ConfigError when there is no such person."""
        person = self._person(name)
        self._write("DELETE FROM person WHERE person_id = ?", (person.person_id,))
        return person
