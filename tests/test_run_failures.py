"""How a run ends when its input or its disk lets it down, tried as a user would: the
installed command in a fresh process.

* a file cut short that the container says should be longer: a warning, ``truncated`` in
  run.json with the frames expected and decoded, exit code 3 (not "complete", exit 0);
* an OUTDIR that cannot be created: one error line, exit 1;
* a disk that fills mid-run (a real 1.5 MiB tmpfs mounted by the test, which needs root; it
  skips otherwise): one error line, exit 1, run.json says ``failed`` with the reason, and no
  temporary file is left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from videos import encode_clip, pattern_frames

from cctv_sr.data.synth import Walker, head_patches, render_clip


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cctv_sr.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("cctv-sr: error:")]


def test_truncated_file_is_reported_not_complete(tmp_path: Path) -> None:
    full = encode_clip(tmp_path / "full.mkv", pattern_frames(80, 160, 120), 10.0, "mjpeg")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    out = tmp_path / "o"
    proc = cli("run", str(cut), "--out", str(out), "--quiet")
    assert proc.returncode == 3, proc.stderr
    assert "truncated" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout.startswith("truncated:")
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "truncated"
    record = meta["inputs"][0]
    assert record["truncated"] is True and record["frames_expected"] == 80
    assert 10 < meta["counts"]["frames_decoded"] < 40


def test_outdir_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    clip = encode_clip(tmp_path / "c.mp4", pattern_frames(5, 160, 120), 10.0, "libx264")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = cli("run", str(clip), "--out", str(blocker / "out"), "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert len(error_lines(proc)) == 1 and "Traceback" not in proc.stderr
    assert "cannot create output directory" in error_lines(proc)[0]


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_mid_run(tmp_path: Path, small_disk: Path, group_photo: np.ndarray) -> None:
    heads = head_patches(group_photo)
    n = 60
    walkers = [Walker(heads[k], (40 + 60 * k, 80), (60 + 60 * k, 150), 48, 52, 0, n - 1)
               for k in range(4)]
    clip = encode_clip(tmp_path / "people.mp4",
                       [f for f, _ in render_clip(walkers, 320, 240, n, seed=2)], 10.0)
    out = small_disk / "out"
    proc = cli("run", str(clip), "--out", str(out), "--quiet", "--save-all-crops")
    assert proc.returncode == 1, proc.stderr
    errors = error_lines(proc)
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "No space left on device" in errors[0] or "disk full" in errors[0], errors
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed"
    assert "No space left" in meta["error"] or "disk full" in meta["error"]
    assert not [p for p in small_disk.rglob("*") if p.name.endswith(".tmp")]
