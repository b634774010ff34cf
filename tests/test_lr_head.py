"""The LR identity head in `cctv-sr run`: the backend, the accelerator, the setup's space check
and what the identity sink writes with a head (CPU, seconds).

Real parts: tiny ``lrhead`` / ``lrnet`` checkpoints trained here on a synthetic trainset
(tests/heads.py), the shipped MobileFaceNet, bicubic SR, a real gallery db and OutputWriter.
"""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from heads import train_tiny

from cctv_sr.config import (
    EmbedderConfig,
    GateConfig,
    HeadConfig,
    MatchConfig,
    OutputConfig,
    RunConfig,
    SRConfig,
)
from cctv_sr.embed import create_embedder
from cctv_sr.embed.lrhead import LrHeadEmbedder
from cctv_sr.engine.accelerator import Accelerator
from cctv_sr.errors import ConfigError, ContractError, ModelError
from cctv_sr.identity.gallery.store import EmbedderInfo, Gallery
from cctv_sr.identity.match import DecisionRule, Thresholds
from cctv_sr.identity.setup import open_head, open_identity
from cctv_sr.identity.sink import GalleryView, IdentityWriter
from cctv_sr.io.lines import EmbedderRef, HeadRef
from cctv_sr.io.outdir import OutputWriter
from cctv_sr.models import registry
from cctv_sr.records import (
    AlignedFace,
    Embedded,
    FaceVectors,
    Quality,
    TrackEnd,
    TrackSummary,
)
from cctv_sr.sr import create_super_resolver
from cctv_sr.train import load_checkpoint

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def head_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("head")
    mp.setenv("CCTV_SR_CACHE", str(tmp / "cache"))
    try:
        return train_tiny("lrhead", tmp)
    finally:
        mp.undo()


def _head(path: Path, batch_size: int = 64) -> LrHeadEmbedder:
    cfg = HeadConfig(name="checkpoint", model_path=str(path), batch_size=batch_size)
    return registry.build("head", cfg, LrHeadEmbedder)


def _crops(n: int, side: int) -> np.ndarray:
    return RNG.integers(0, 255, (n, side, side, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------- the backend


def test_head_embeds_lr_crops_into_unit_vectors(head_ckpt: Path) -> None:
    head = _head(head_ckpt, batch_size=3)
    assert head.space == "mobilefacenet" and head.window == 1 and head.dim == 128
    assert head.name == "checkpoint:lrhead" and head.model_files == (head_ckpt,)
    assert head.version.startswith("lrhead step 2 sha256:") and head.version == _head(
        head_ckpt).version  # stable
    crops = _crops(7, 16)
    v = head.embed(crops)
    assert v.shape == (7, 128) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(_head(head_ckpt, batch_size=64).embed(crops), v, atol=1e-5)
    net, _ = load_checkpoint(head_ckpt)
    with torch.inference_mode():
        ref = net(torch.from_numpy(crops[:2]).permute(0, 3, 1, 2).float() / 255.0)
    np.testing.assert_allclose(v[:2], torch.nn.functional.normalize(ref, dim=1).numpy(),
                               atol=1e-5)
    assert head.embed(_crops(2, 32)).shape == (2, 128)  # any side
    assert head.embed(np.zeros((0, 16, 16, 3), np.uint8)).shape == (0, 128)
    with pytest.raises(ContractError):
        head.embed(crops.astype(np.float32))


def test_the_shipped_lrmfn_runs_fused_and_channels_last() -> None:
    """The shipped head (registry name lrmfn): batch norms folded, channels-last, and the
    outputs of the plain (unfused) checkpoint net within 1e-4; windows of T frames too."""
    from torch.fx import GraphModule

    head = registry.build("head", HeadConfig(name="lrmfn", batch_size=3), LrHeadEmbedder)
    assert head.name == "lrmfn" and head.arch == "lrmfn" and head.space == "mobilefacenet"
    assert head.version.startswith("cctv-sr lrmfn") and head.teacher_file == ""
    inner = head.net.net.net  # LrMfn -> channels-last wrapper -> the fused MobileFaceNet
    assert isinstance(inner, GraphModule)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in inner.modules())
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last)
               for m in inner.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
    crops = _crops(5, 24)
    v = head.embed(crops)
    plain, _ = load_checkpoint(head.model_files[0])
    with torch.inference_mode():
        ref = plain(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0).numpy()
    np.testing.assert_allclose(v, ref, atol=1e-4)
    np.testing.assert_allclose(head.embed_windows(crops[:, None]), v, atol=1e-6)
    assert head.embed_windows(np.zeros((0, 1, 16, 16, 3), np.uint8)).shape == (0, 128)
    with pytest.raises(ContractError, match=r"expected windows \(N, 1, S, S, 3\)"):
        head.embed_windows(np.zeros((2, 3, 16, 16, 3), np.uint8))


def test_non_head_checkpoints_and_missing_files_are_refused(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))
    lrnet = train_tiny("lrnet", tmp_path / "lrnet")
    with pytest.raises(ModelError, match="'lrnet', not of an LR identity head"):
        _head(lrnet)
    with pytest.raises(ModelError, match="no such head checkpoint"):
        _head(tmp_path / "nope.pt")
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        registry.build("head", HeadConfig(name="checkpoint"), LrHeadEmbedder)
    with pytest.raises(ConfigError, match="head.name: unknown LR identity head"):
        registry.build("head", HeadConfig(name="chekpoint"), LrHeadEmbedder)


# --------------------------------------------------------------------------- the accelerator


def _face(track: int, frame: int, crop: np.ndarray) -> AlignedFace:
    q = Quality(size_px=40.0, size=0.5, sharpness=0.6, frontal=0.8, det_score=0.99, score=0.5)
    return AlignedFace("s0", track, frame, frame, Fraction(1, 10), 0,
                       np.array([0, 0, 40, 40], np.float32), np.zeros((5, 2), np.float32),
                       crop, np.eye(2, 3, dtype=np.float32), q)


class WrongHead:
    """A head that returns one row too few."""

    name, dim, window = "wrong", 128, 1

    def embed(self, crops: np.ndarray) -> np.ndarray:
        return np.zeros((len(crops) - 1, 128), np.float32)


def test_accelerator_fills_the_head_vector_of_every_face(head_ckpt: Path) -> None:
    head = _head(head_ckpt)
    embedder = create_embedder(EmbedderConfig())
    acc = Accelerator(create_super_resolver(SRConfig()), 128, embedder, None, head)
    faces = [_face(1, i, c) for i, c in enumerate([*_crops(2, 16), *_crops(1, 32),
                                                     *_crops(1, 16)])]
    enhanced = acc.enhance(faces)
    vectors = acc.embed(enhanced)
    assert vectors is not None and len(vectors) == 4
    for face, v in zip(faces, vectors, strict=True):
        assert v.head is not None and v.head.shape == (128,)
        np.testing.assert_allclose(v.head, head.embed(face.crop[None])[0], atol=1e-5)
        np.testing.assert_allclose(v.lr, embedder.embed(face.crop[None])[0], atol=1e-5)
    assert acc.stats.head_faces == 4 and acc.stats.head_s > 0
    # a large face (its crop at out_size, sent without SR) never goes through the head (it is
    # trained on 12-40 px): its head vector is the embedder's LR vector
    big = [_face(1, 9, c) for c in _crops(2, 128)]
    mixed = acc.embed(acc.enhance([faces[0], big[0], big[1]]))
    assert mixed is not None and len(mixed) == 3 and acc.stats.head_faces == 5
    assert all(v.head is not None for v in mixed)
    np.testing.assert_allclose(mixed[0].head, vectors[0].head, atol=1e-5)
    for v in mixed[1:]:
        np.testing.assert_array_equal(v.head, v.lr)
    plain = Accelerator(create_super_resolver(SRConfig()), 128, embedder).embed(enhanced)
    assert plain is not None and all(v.head is None for v in plain)
    wrong = Accelerator(create_super_resolver(SRConfig()), 128, embedder, None,
                        WrongHead())  # type: ignore[arg-type]
    with pytest.raises(ContractError, match="LR head 'wrong' returned shape"):
        wrong.embed(enhanced)


# ------------------------------------------------------------------------------ the setup


def _gallery(path: Path, name: str, version: str) -> Path:
    with Gallery.create(path, EmbedderInfo(name, version, 128, "mtcnn")) as g:
        for i, person in enumerate(["ana", "bo"]):
            vec = np.zeros(128, np.float32)
            vec[i] = 1.0
            g.add_photo(person, f"/nonexistent/{person}.png", f"{i:064d}", vec, (0, 0, 1, 1),
                        0.99)
    return path


def test_a_head_is_refused_for_a_gallery_of_another_embedder(head_ckpt: Path,
                                                             tmp_path: Path) -> None:
    db = _gallery(tmp_path / "dlib.db", "dlib", "v1")
    cfg = RunConfig(match=MatchConfig(gallery=str(db)),
                    head=HeadConfig(name="checkpoint", model_path=str(head_ckpt)))
    with pytest.raises(ConfigError, match="built with embedder 'dlib'.*'mobilefacenet' space"):
        open_identity(cfg)


def test_the_shipped_head_is_skipped_for_a_gallery_it_does_not_fit(
        head_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """head.name=lrmfn (the default, here with another batch size) with a dlib gallery:
    skipped from its manifest's teacher before anything is built or loaded, not an error;
    with a gallery of a user's own
    MobileFaceNet file: skipped with a warning (an explicit checkpoint: ConfigError)."""
    shipped = create_embedder(EmbedderConfig()).version
    db = tmp_path / "g.db"
    built: list[str] = []
    real_build = registry.build

    def counting_build(kind: str, cfg: object, base: type) -> object:
        built.append(kind)
        return real_build(kind, cfg, base)  # type: ignore[arg-type]

    monkeypatch.setattr(registry, "build", counting_build)
    lrmfn = HeadConfig(name="lrmfn", batch_size=8)
    assert HeadConfig() != lrmfn and HeadConfig().name == "lrmfn"
    assert open_head(HeadConfig(name="none"), db, "mobilefacenet", 128, shipped) is None
    assert open_head(lrmfn, db, "dlib", 128, "dlib v1") is None
    assert built == []  # decided from the manifest's [spec] teacher
    user = "user file for mobilefacenet sha256:0123456789ab"
    with caplog.at_level(logging.WARNING, logger="cctv_sr.identity.setup"):
        assert open_head(lrmfn, db, "mobilefacenet", 128, user) is None
    assert built == [] and "not the shipped ones" in caplog.text
    explicit = HeadConfig(name="checkpoint", model_path=str(head_ckpt))
    with pytest.raises(ConfigError, match="distilled from the shipped mobilefacenet weights"):
        open_head(explicit, db, "mobilefacenet", 128, user)
    built.clear()
    head = open_head(lrmfn, db, "mobilefacenet", 128, shipped)
    assert head is not None and head.name == "lrmfn" and built == ["head"]


def test_a_head_opens_with_a_gallery_of_its_teacher(head_ckpt: Path, tmp_path: Path) -> None:
    version = create_embedder(EmbedderConfig()).version
    db = _gallery(tmp_path / "mfn.db", "mobilefacenet", version)
    head_cfg = HeadConfig(name="checkpoint", model_path=str(head_ckpt))
    setup = open_identity(RunConfig(match=MatchConfig(gallery=str(db)), head=head_cfg))
    assert setup.head is not None and setup.head.space == setup.embedder.name
    # by default the shipped head, in MobileFaceNet's space; head.name=none: no head
    off = RunConfig(match=MatchConfig(gallery=str(db)), head=HeadConfig(name="none"))
    assert open_identity(off).head is None
    shipped = open_identity(RunConfig(match=MatchConfig(gallery=str(db)))).head
    assert shipped is not None and shipped.name == "lrmfn" and shipped.space == "mobilefacenet"
    assert shipped.model_files[0].name == "lrmfn.pt"
    writer = setup.writer_for(OutputWriter(tmp_path / "out", OutputConfig()))
    try:
        assert writer.head == HeadRef(setup.head.name, setup.head.version)
    finally:
        writer.close()


# -------------------------------------------------------------------------------- the sink


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_matches_jsonl_carries_the_head(tmp_path: Path) -> None:
    """Five usable faces of one track: the embedder's LR vector leans to carol (cy 0.89, bo
    0.45), the head's and the SR one are bob, so the track is bob by (head + sr) / 2 and the
    embedder's LR alone says carol. Without head vectors the combined score still names bob
    (0.72 >= 0.70), but the embedder's LR score for bob (0.45) is under the LR bar (0.50):
    no match, and the reason says so."""
    templates = np.eye(3, 128, dtype=np.float32)
    writer = OutputWriter(tmp_path / "out", OutputConfig())
    rule = DecisionRule(Thresholds(0.5, 0.7), fpir=0.01, people=3)
    sink = IdentityWriter(writer, GalleryView(["ana", "bo", "cy"], templates, {}), rule, 3,
                          EmbedderRef("mobilefacenet", "v"), GateConfig(), HeadRef("h", "hv"))
    lr = _unit(0.45 * templates[1] + np.sqrt(1 - 0.45 ** 2) * templates[2])
    sr, head = _unit(templates[1] + 0.1 * templates[0]), templates[1]
    faces = [_face(4, i, _crops(1, 16)[0]) for i in range(5)]
    for f in faces:
        sink.handle(Embedded(f, FaceVectors(lr, sr, 0.99, head)))
    summary = TrackSummary("s0", 4, 0, 4, 0.0, 0.4, 5, 0, 0.5)
    sink.handle(TrackEnd(summary, (), ()))
    sink.close()
    (line,) = [json.loads(x) for x in (tmp_path / "out" / "matches.jsonl").read_text()
               .splitlines()]
    assert line["decision"] == "bo" and line["decision_head_only"] == "bo"
    assert line["reason"] is None and line["threshold"] == pytest.approx(0.7)
    assert line["decision_lr_only"] == "cy" and line["head"] == {"name": "h", "version": "hv"}
    top = line["candidates"][0]
    assert top["name"] == "bo" and top["score_head"] == pytest.approx(1.0, abs=1e-3)
    assert top["score"] == pytest.approx((top["score_head"] + top["score_sr"]) / 2, abs=2e-3)
    assert list(top) == ["name", "score", "score_lr", "score_sr", "score_head"]
    c = sink.counts
    assert (c.head_only_would_match, c.head_lr_disagree, c.lr_sr_disagree) == (1, 1, 1)
    # the same track without head vectors: no head fields, the embedder's LR score bars bob
    plain_writer = OutputWriter(tmp_path / "plain", OutputConfig())
    plain = IdentityWriter(plain_writer, GalleryView(["ana", "bo", "cy"], templates, {}), rule,
                           3, EmbedderRef("mobilefacenet", "v"), GateConfig(), HeadRef("h", "v"))
    for f in faces:
        plain.handle(Embedded(f, FaceVectors(lr, sr, 0.99)))
    plain.handle(TrackEnd(summary, (), ()))
    plain.close()
    (line,) = [json.loads(x) for x in (tmp_path / "plain" / "matches.jsonl").read_text()
               .splitlines()]
    assert line["decision"] is None and line["decision_head_only"] is None
    assert line["reason"] == "LR score 0.450 < 0.500"
    top = line["candidates"][0]
    assert top["name"] == "bo" and top["score"] == pytest.approx(0.7225, abs=2e-3)
    assert line["decision_lr_only"] == "cy"
    assert line["head"] is None and line["candidates"][0]["score_head"] is None
    assert (plain.counts.head_only_would_match, plain.counts.head_lr_disagree) == (0, 0)

