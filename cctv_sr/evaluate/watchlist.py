"""The watchlist split of the open-set benchmark (docs/EVAL.md 1b) and its JSON helpers.

The watchlist is the closed-set gallery without the identities whose sha256(name), in hex,
ends in an even digit (0 2 4 6 8 a c e): their probes are strangers.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

FPIR_TARGETS: tuple[float, ...] = (1e-2, 1e-3)
STRANGER_DIGITS = frozenset("02468ace")

def is_stranger(name: str) -> bool:
    """True when identity ``name`` is left out of the watchlist: the last hex digit of the
    sha256 of its UTF-8 name is even."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[-1] in STRANGER_DIGITS


@dataclass(frozen=True)
class WatchlistSplit:
    """The watchlist of one run.

    ``columns``: closed-set gallery indices kept on the watchlist (in gallery order);
    ``labels``: per probe its watchlist index, -1 for a stranger; the counts are of gallery
    (watchlist) identities, of probe identities on and off the list, and of probes.
    """

    columns: np.ndarray
    labels: np.ndarray
    watchlist_identities: int
    listed_identities: int
    stranger_identities: int
    listed_probes: int
    stranger_probes: int

    def counts(self) -> dict[str, int]:
        return {"watchlist_identities": self.watchlist_identities,
                "listed_identities": self.listed_identities,
                "stranger_identities": self.stranger_identities,
                "listed_probes": self.listed_probes,
                "stranger_probes": self.stranger_probes}


def split_watchlist(gallery_names: Sequence[str], probe_labels: np.ndarray) -> WatchlistSplit:
    """The watchlist from the closed-set gallery names and the probes' gallery indices."""
    probe_labels = np.asarray(probe_labels, np.int64)
    keep = np.array([not is_stranger(n) for n in gallery_names], dtype=bool)
    columns = np.flatnonzero(keep)
    remap = np.full(len(gallery_names), -1, np.int64)
    remap[columns] = np.arange(columns.size)
    labels = remap[probe_labels] if probe_labels.size else probe_labels.copy()
    listed = labels >= 0
    if probe_labels.size and (listed.all() or not listed.any()):
        log.warning("open set: every probe is %s, so %s are undefined",
                    "listed" if listed.all() else "a stranger",
                    "FPIR and the thresholds at a target FPIR" if listed.all() else "FNIR")
    return WatchlistSplit(
        columns=columns, labels=labels, watchlist_identities=int(columns.size),
        listed_identities=len(set(probe_labels[listed].tolist())),
        stranger_identities=len(set(probe_labels[~listed].tolist())),
        listed_probes=int(listed.sum()), stranger_probes=int((~listed).sum()))


def json_key(stem: str, f: float) -> str:
    return f"{stem}_{f:.0e}".replace("e-0", "e-")


def json_num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)
