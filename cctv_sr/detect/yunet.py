"""YuNet face detector: onnxruntime (batched, :mod:`cctv_sr.detect.yunet_ort`) when the
``[onnx]`` extra is installed, else OpenCV's ``cv2.FaceDetectorYN`` (needs opencv-contrib 4.8+).
Both give the same faces (the golden tests check it); ``detector.runtime`` picks one."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.config import DetectorConfig
from cctv_sr.detect.base import FaceDetector, check_images, require_file
from cctv_sr.detect.boxes import finalize
from cctv_sr.detect.yunet_ort import Raw, YunetRuntime
from cctv_sr.errors import BackendUnavailableError, ConfigError, ModelError
from cctv_sr.models.ort import onnxruntime_installed
from cctv_sr.records import FaceDetections

log = logging.getLogger(__name__)

TOP_K = 5000  # candidates OpenCV keeps before its own NMS
# Networks kept, one per input size. Changing a network's input size reallocates its buffers:
# measured here, a 192 px region after a 1080p frame took 22 ms instead of 2.4, and the frame
# after the region 170-200 ms instead of 105. Region sides come in steps of 32 px
# (:mod:`cctv_sr.detect.regions`), so a dozen networks hold the sizes a run uses most.
MAX_NETS = 12

# Rows of FaceDetectorYN.detect: x, y, w, h, 5 x (x, y) landmarks, score. The landmarks are
# "right eye, left eye, nose, right mouth corner, left mouth corner" from the subject's point
# of view, i.e. already image-left first: the canonical order (checked by the golden tests).
KPS_ORDER = [0, 1, 2, 3, 4]


class YunetDetector(FaceDetector):
    """YuNet (libfacedetection) on onnxruntime or on ``cv2.FaceDetectorYN``.

    ``model_path`` is the ONNX file (:func:`~cctv_sr.detect.create_detector` resolves
    ``detector.model_path``, else ``yunet_2023mar``'s
    ``face_detection_yunet_2023mar.onnx``). Detections whose box is smaller than
    ``cfg.min_face_px`` are dropped. ``cfg.runtime``: ``auto`` takes onnxruntime when it is
    installed and loads, else OpenCV. onnxruntime runs same-size images in one call and honours
    ``cfg.device`` (CUDA with onnxruntime-gpu); OpenCV runs one image per call on the CPU.
    """

    name = "yunet"
    track_high_thresh = 0.6
    track_new_thresh = 0.7

    @classmethod
    def check_available(cls) -> None:
        """BackendUnavailableError unless this OpenCV has ``cv2.FaceDetectorYN``."""
        if not hasattr(cv2, "FaceDetectorYN"):
            raise BackendUnavailableError(
                "yunet needs cv2.FaceDetectorYN: pip install 'opencv-contrib-python-headless>=4.8'"
            )

    def __init__(self, cfg: DetectorConfig, model_path: Path | None = None) -> None:
        super().__init__(cfg, model_path)
        path = require_file(self.model_path, "yunet",
                            " (e.g. shared/models/yunet_2023mar/face_detection_yunet_2023mar.onnx)")
        self._path = path
        self._nets: OrderedDict[tuple[int, int], cv2.FaceDetectorYN] = OrderedDict()
        self._runtime: YunetRuntime | None = None
        if cfg.runtime not in ("auto", "onnxruntime", "opencv"):
            raise ConfigError(f"detector.runtime must be auto, onnxruntime or opencv, "
                              f"got {cfg.runtime!r}")
        if cfg.runtime == "onnxruntime":
            self._runtime = YunetRuntime(path, cfg.device)
        elif cfg.runtime == "auto" and onnxruntime_installed():
            try:
                self._runtime = YunetRuntime(path, cfg.device)
            except BackendUnavailableError as exc:  # installed but broken (a package clash)
                log.warning("yunet: onnxruntime unusable (%s); running on OpenCV", exc)
        self.runtime = "onnxruntime" if self._runtime is not None else "opencv"
        if self._runtime is None:
            self.check_available()
            self._net_for((320, 320))  # a file that does not load fails here, not mid-run
            if cfg.device.startswith("cuda"):
                log.info("yunet runs on OpenCV's CPU backend; detector.device=%s ignored",
                         cfg.device)
        self.model_files = (path,)
        log.info("yunet model %s on %s", path, self.runtime)

    def detect(self, images: Sequence[np.ndarray]) -> list[FaceDetections]:
        """Faces in each image (see :meth:`FaceDetector.detect`)."""
        images = check_images(images)
        if self._runtime is None:
            return [self._detect_one(image) for image in images]
        raws = self._runtime.run(images, float(self.cfg.score_thresh))
        return [self._finalize(raw, image) for raw, image in zip(raws, images)]

    def _finalize(self, raw: Raw, image: np.ndarray) -> FaceDetections:
        xyxy, score, kps = raw
        return finalize(
            xyxy, score, kps, width=int(image.shape[1]), height=int(image.shape[0]),
            score_thresh=self.cfg.score_thresh, nms_thresh=self.cfg.nms_thresh,
            min_side=float(self.cfg.min_face_px),
        )

    def _net_for(self, size: tuple[int, int]) -> cv2.FaceDetectorYN:
        """The network set up for input ``size`` (width, height), made on first use; the least
        recently used one goes when more than :data:`MAX_NETS` are kept."""
        net = self._nets.get(size)
        if net is not None:
            self._nets.move_to_end(size)
            return net
        cfg = self.cfg
        try:
            # OpenCV's score cut is the caller's; its own NMS is off (threshold 1: nothing
            # overlaps more than that) so that finalize's NMS, on float boxes and after the
            # min_face_px cut, is the one both runtimes apply: OpenCV's runs on boxes cut to
            # integers before that cut, and kept other faces.
            # OpenCV 5 warns on every create that its new graph engine ignores targets; that
            # says nothing to a user, so keep its log quiet for this call.
            previous = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            try:
                net = cv2.FaceDetectorYN.create(
                    str(self._path), "", size, float(cfg.score_thresh), 1.0, TOP_K,
                )
            finally:
                cv2.utils.logging.setLogLevel(previous)
        except cv2.error as exc:
            raise ModelError(f"yunet: cannot load {self._path}: {str(exc).strip()}") from exc
        self._nets[size] = net
        if len(self._nets) > MAX_NETS:
            self._nets.popitem(last=False)
        return net

    def _detect_one(self, image: np.ndarray) -> FaceDetections:
        height, width = image.shape[:2]
        net = self._net_for((width, height))
        try:
            _, rows = net.detect(np.ascontiguousarray(image))
        except cv2.error as exc:
            raise ModelError(f"yunet: inference failed on a {width}x{height} image: {exc}") from exc
        if rows is None or len(rows) == 0:
            return FaceDetections.empty()
        rows = np.asarray(rows, np.float32).reshape(-1, 15)
        xyxy = np.concatenate([rows[:, 0:2], rows[:, 0:2] + rows[:, 2:4]], axis=1)
        kps = rows[:, 4:14].reshape(-1, 5, 2)[:, KPS_ORDER]
        return self._finalize((xyxy, rows[:, 14], kps), image)
