"""The SR training crops: which faces may be trained on, the cache file, and its loader.

Sources under the shared data folder (``<shared>/data`` or the ``data`` folder itself):

- ``faces/utkface/*.jpg``: every image with a face (group = its file name: no identities);
- ``videos/talking_heads/liveportrait_*``: every ``stride``-th frame, near-duplicates of the
  last kept frame skipped, at most ``max_per_clip`` per clip (group = the clip's stem);
- ``faces/lfw_dev/<Name>/``: identities with EXACTLY one image (group = the name).

Never trained on, enforced here and by :func:`check_exclusions`: the ``sadtalker_*`` and
``video_retalking_*`` clips (dev clips of ``eval video``), the LFW identities with two or more
images (dev benchmark of ``eval identify``), and any HOLDOUT identity name (the data README's
sha256 rule). Every face is aligned like the eval oracle (:mod:`cctv_sr.evaluate.oracle`): the
oracle detector's 5 landmarks, :func:`cctv_sr.face.align.similarity_to_template` to the ArcFace
template at 128 and :func:`~cctv_sr.face.align.warp_face`; stills take the face nearest the
centre, clip frames the largest face.

The cache is ONE ``.npz`` (format in :mod:`cctv_sr.data.trainset_build`), by default
``<cache root>/train/trainset.npz``; never inside the repository. Example::

    info = build_trainset(Path("../shared"), None)
    ts = load_trainset(info.path)
    train_idx, val_idx = ts.split(val_fraction=0.05)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.data.degrade import HR_SIDE
from cctv_sr.data.lfw import IMAGE_EXTS
from cctv_sr.errors import ConfigError, ContractError

FORMAT_VERSION = 1
SOURCES = ("utkface", "clip", "lfw")  # index = TrainSet.source code
TRAIN_CLIP_PREFIXES = ("liveportrait_",)
DEV_CLIP_PREFIXES = ("sadtalker_", "video_retalking_")
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm"})
UTKFACE_DIR = "faces/utkface"
LFW_DIR = "faces/lfw_dev"
CLIPS_DIR = "videos/talking_heads"


# ------------------------------------------------------------------------------------ rules


def is_holdout_identity(name: str) -> bool:
    """The data README's identity split: HOLDOUT iff sha256(name)[0] is in 0-7."""
    return hashlib.sha256(name.encode()).hexdigest()[0] in "01234567"


def clip_allowed(stem: str) -> bool:
    """A talking-head clip may be trained on: a ``liveportrait_*`` clip that is no dev clip."""
    return stem.startswith(TRAIN_CLIP_PREFIXES) and not stem.startswith(DEV_CLIP_PREFIXES)


def lfw_allowed(name: str, n_images: int) -> bool:
    """An LFW identity may be trained on: exactly one image and a DEV name."""
    return n_images == 1 and not is_holdout_identity(name)


@dataclass(frozen=True)
class SourceItem:
    """One file to align: ``kind`` is one of :data:`SOURCES`; ``rel`` the path under the data
    folder (hashed into the cache, never stored in clear)."""

    kind: str
    path: Path
    rel: str
    group: str


@dataclass(frozen=True)
class SourcePlan:
    """What :func:`plan_sources` found: the items to align and what the rules left out."""

    data_root: Path
    items: tuple[SourceItem, ...]
    excluded_clips: tuple[str, ...]
    excluded_lfw_identities: int  # identities with >= 2 images (or HOLDOUT names)

    def count(self, kind: str) -> int:
        return sum(1 for i in self.items if i.kind == kind)


def data_root_of(shared_root: Path) -> Path:
    """``<shared>/data`` when it exists, else ``shared_root`` itself (it may be data/)."""
    root = Path(shared_root)
    if (root / "data" / "faces").is_dir() or (root / "data" / "videos").is_dir():
        return root / "data"
    if (root / "faces").is_dir() or (root / "videos").is_dir():
        return root
    raise ConfigError(f"{root}: no faces/ or videos/ folder (expected the shared data folder)")


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def plan_sources(shared_root: Path, *, limit_per_source: int | None = None) -> SourcePlan:
    """The training items under ``shared_root``, sorted, with the exclusions applied.
    ``limit_per_source`` keeps the first N items of each kind (tests, quick builds)."""
    data = data_root_of(shared_root)
    utk: list[SourceItem] = []
    if (data / UTKFACE_DIR).is_dir():
        utk = [SourceItem("utkface", p, p.relative_to(data).as_posix(), p.name)
               for p in image_files(data / UTKFACE_DIR)]
    clips: list[SourceItem] = []
    excluded_clips: list[str] = []
    if (data / CLIPS_DIR).is_dir():
        for p in sorted((data / CLIPS_DIR).iterdir()):
            if not (p.is_file() and p.suffix.lower() in VIDEO_EXTS):
                continue
            if clip_allowed(p.stem):
                clips.append(SourceItem("clip", p, p.relative_to(data).as_posix(), p.stem))
            else:
                excluded_clips.append(p.stem)
    lfw: list[SourceItem] = []
    excluded_lfw = 0
    if (data / LFW_DIR).is_dir():
        for folder in sorted(p for p in (data / LFW_DIR).iterdir() if p.is_dir()):
            files = image_files(folder)
            if not files:
                continue
            if lfw_allowed(folder.name, len(files)):
                lfw.append(SourceItem("lfw", files[0], files[0].relative_to(data).as_posix(),
                                      folder.name))
            else:
                excluded_lfw += 1
    if limit_per_source is not None:
        utk, clips, lfw = (x[:limit_per_source] for x in (utk, clips, lfw))
    items = tuple(utk + clips + lfw)
    if not items:
        raise ConfigError(f"{data}: no training source found ({UTKFACE_DIR}, {CLIPS_DIR}/"
                          f"liveportrait_*, {LFW_DIR})")
    return SourcePlan(data, items, tuple(excluded_clips), excluded_lfw)


# ----------------------------------------------------------------------------------- loader


@dataclass(frozen=True)
class TrainSetInfo:
    """Provenance and counts of one cache file (also stored in it as JSON, key ``meta``)."""

    path: Path
    version: int
    count: int
    counts: dict[str, int]  # crops per source
    groups: int
    detector: str
    detector_sha256: str
    aligner: str
    codec: str  # webp (lossless) | raw
    params: dict[str, float]  # stride, max_per_clip, dedup threshold, min native size
    skipped: dict[str, int]  # no_face, small, duplicate, unreadable
    excluded: dict[str, int]  # dev clips, lfw identities with >= 2 images
    build_key: str
    seconds: float
    file_bytes: int

    def to_json(self) -> str:
        d = {k: v for k, v in self.__dict__.items() if k not in ("path", "file_bytes")}
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, path: Path) -> TrainSetInfo:
        d = json.loads(text)
        size = Path(path).stat().st_size if Path(path).is_file() else 0
        return cls(path=Path(path), file_bytes=size, **d)


@dataclass(frozen=True)
class TrainSet:
    """The decoded cache: ``crops`` (N, 128, 128, 3) BGR uint8; ``group`` (N,) int32 indexes
    ``group_names`` (LFW name, clip stem or UTKFace file); ``source`` (N,) int8 indexes
    :data:`SOURCES`; ``native_px`` (N,) float32 the face's side at its own resolution;
    ``frame`` (N,) int32 the clip frame (-1 for stills)."""

    crops: np.ndarray
    group: np.ndarray
    group_names: tuple[str, ...]
    source: np.ndarray
    native_px: np.ndarray
    frame: np.ndarray
    info: TrainSetInfo

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def split(self, val_fraction: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation indices, disjoint by group: a group is validation iff
        sha256(f"{seed}|{name}") as a fraction of 2**64 is below ``val_fraction`` (stable
        across rebuilds and subsets)."""
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        is_val = np.array([
            int.from_bytes(hashlib.sha256(f"{seed}|{n}".encode()).digest()[:8], "big") / 2.0**64
            < val_fraction for n in self.group_names], bool)
        mask = is_val[self.group] if len(self.group_names) else np.zeros(len(self), bool)
        return np.flatnonzero(~mask), np.flatnonzero(mask)


def check_exclusions(group_names: tuple[str, ...] | list[str], source: np.ndarray,
                     group: np.ndarray) -> None:
    """ContractError when a crop comes from a dev clip or a HOLDOUT LFW name."""
    for code, kind in enumerate(SOURCES):
        names = {group_names[g] for g in np.unique(group[source == code])}
        if kind == "clip":
            bad = sorted(n for n in names if not clip_allowed(n))
        elif kind == "lfw":
            bad = sorted(n for n in names if is_holdout_identity(n))
        else:
            bad = []
        if bad:
            raise ContractError(f"training set holds excluded {kind} groups: {bad[:5]}")


def decode_crops(data: np.ndarray, offsets: np.ndarray, codec: str) -> np.ndarray:
    """The (N, 128, 128, 3) crops from the stored bytes (``webp``) or array (``raw``)."""
    if codec == "raw":
        return np.asarray(data, np.uint8).reshape(-1, HR_SIDE, HR_SIDE, 3)
    n = len(offsets) - 1
    out = np.empty((n, HR_SIDE, HR_SIDE, 3), np.uint8)
    for i in range(n):
        img = cv2.imdecode(data[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
        if img is None or img.shape != (HR_SIDE, HR_SIDE, 3):
            raise ContractError(f"training cache: crop {i} does not decode to a "
                                f"{HR_SIDE}x{HR_SIDE} image")
        out[i] = img
    return out


def load_trainset(path: Path) -> TrainSet:
    """Read and decode a cache file written by :func:`build_trainset`; checks the
    exclusions again."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no training cache (build it with build_trainset)")
    try:
        with np.load(path, allow_pickle=False) as z:
            info = TrainSetInfo.from_json(str(z["meta"]), path)
            if info.version != FORMAT_VERSION:
                raise ConfigError(f"{path}: cache format {info.version}, this code reads "
                                  f"{FORMAT_VERSION}; rebuild it")
            crops = decode_crops(z["data"], z["offsets"], info.codec)
            group, source = z["group"].astype(np.int32), z["source"].astype(np.int8)
            names = tuple(str(n) for n in z["group_names"])
            native, frame = z["native_px"].astype(np.float32), z["frame"].astype(np.int32)
    except (OSError, KeyError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: unreadable training cache ({exc})") from exc
    if not len(crops) == len(group) == len(source) == info.count:
        raise ContractError(f"{path}: columns disagree ({len(crops)} crops, {info.count} meta)")
    check_exclusions(names, source, group)
    return TrainSet(crops, group, names, source, native, frame, info)


def default_trainset_path() -> Path:
    """``<cache root>/train/trainset.npz`` (see :func:`cctv_sr.models.resolve.cache_root`)."""
    from cctv_sr.models.resolve import cache_root

    return cache_root() / "train" / "trainset.npz"


def build_trainset(shared_root: Path, out_path: Path | None = None, *, stride: int = 3,
                   max_per_clip: int = 300, dup_thresh: float = 3.0,
                   min_native_px: float = 48.0, detector: str = "auto", codec: str = "webp",
                   workers: int = 1, quiet: bool = False,
                   limit_per_source: int | None = None) -> TrainSetInfo:
    """Align every training face under ``shared_root`` into ONE cache file (default
    :func:`default_trainset_path`) and return its info; an up-to-date file is reused and an
    interrupted build resumes. ``quiet`` hides the progress bar; ``workers`` > 1 aligns in a
    spawn pool; ``limit_per_source`` keeps the first N items of each source."""
    from cctv_sr.data.trainset_build import BuildParams, run_build

    out = Path(out_path) if out_path is not None else default_trainset_path()
    if out.suffix != ".npz":
        raise ConfigError(f"{out}: the training cache is an .npz file")
    params = BuildParams(stride=stride, max_per_clip=max_per_clip, dup_thresh=dup_thresh,
                         min_native_px=min_native_px, detector=detector, codec=codec)
    plan = plan_sources(Path(shared_root), limit_per_source=limit_per_source)
    return run_build(plan, out, params, workers=workers, quiet=quiet)
