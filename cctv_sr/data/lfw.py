"""The identification set of an LFW-style tree (docs/EVAL.md section 1).

``<root>/<Identity>/<image>.jpg``: identities with at least 2 images, at most 10 each (the
first 10 by file name). The gallery is the first image of every eligible identity; the probes
are the other images. ``max_probes`` keeps a deterministic subsample of WHOLE identities
(ordered by the sha256 of their name) whose probe count first reaches ``max_probes``; the gallery
always keeps every eligible identity, so the task does not get easier with fewer probes.

Example::

    ds = load_dataset(Path("lfw_dev"), max_probes=750)
    ds.gallery[0]            # EvalImage(identity=0, name='AJ_Lamas', path=...)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cctv_sr.errors import ConfigError

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
MIN_IMAGES = 2
MAX_IMAGES = 10


@dataclass(frozen=True)
class Identity:
    """One identity folder: ``images`` are its first ``MAX_IMAGES`` files by name."""

    name: str
    images: tuple[Path, ...]


@dataclass(frozen=True)
class EvalImage:
    """One image of the set: ``identity`` indexes :attr:`EvalSet.identities`."""

    identity: int
    name: str
    path: Path

    @property
    def file_name(self) -> str:
        """The file name, which seeds the probe's degradation."""
        return self.path.name


@dataclass(frozen=True)
class EvalSet:
    """Gallery (one image per eligible identity) and probes (a subsample, whole identities)."""

    root: Path
    identities: tuple[str, ...]
    gallery: tuple[EvalImage, ...]
    probes: tuple[EvalImage, ...]
    total_probes: int  # probes before the --max-probes subsample

    @property
    def probe_identities(self) -> int:
        return len({p.identity for p in self.probes})


def _name_key(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def scan_tree(root: Path) -> list[Identity]:
    """Eligible identities under ``root``, sorted by name (missing or empty root: ConfigError)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"--data {root}: not a directory")
    out: list[Identity] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted((p for p in folder.iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_EXTS), key=lambda p: p.name)
        if len(files) >= MIN_IMAGES:
            out.append(Identity(folder.name, tuple(files[:MAX_IMAGES])))
    if not out:
        raise ConfigError(f"--data {root}: no identity folder with >= {MIN_IMAGES} images "
                          f"(expected <root>/<Identity>/<image>.jpg)")
    return out


def select_probe_identities(identities: list[Identity], max_probes: int | None) -> set[str]:
    """Names of the identities whose probes are used: all, or whole identities in sha256-of-name
    order until their probe count reaches ``max_probes``."""
    if max_probes is None or max_probes <= 0:
        return {i.name for i in identities}
    chosen: set[str] = set()
    count = 0
    for ident in sorted(identities, key=lambda i: _name_key(i.name)):
        if count >= max_probes:
            break
        chosen.add(ident.name)
        count += len(ident.images) - 1
    return chosen


def build_set(root: Path, identities: list[Identity], max_probes: int | None = None) -> EvalSet:
    """The gallery and probes of ``identities`` (see the module docstring)."""
    chosen = select_probe_identities(identities, max_probes)
    gallery: list[EvalImage] = []
    probes: list[EvalImage] = []
    for index, ident in enumerate(identities):
        gallery.append(EvalImage(index, ident.name, ident.images[0]))
        if ident.name in chosen:
            probes.extend(EvalImage(index, ident.name, p) for p in ident.images[1:])
    total = sum(len(i.images) - 1 for i in identities)
    return EvalSet(Path(root), tuple(i.name for i in identities), tuple(gallery), tuple(probes),
                   total)


def load_dataset(root: Path, max_probes: int | None = None) -> EvalSet:
    """:func:`scan_tree` then :func:`build_set`."""
    if max_probes is not None and max_probes < 0:
        raise ConfigError(f"--max-probes must be >= 0, got {max_probes}")
    return build_set(Path(root), scan_tree(Path(root)), max_probes)
