"""YuNet face detector through OpenCV's ``cv2.FaceDetectorYN`` (needs opencv-contrib 4.8+)."""

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
from cctv_sr.errors import BackendUnavailableError, ModelError
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
    """YuNet (libfacedetection) via ``cv2.FaceDetectorYN``; one image per network call.

    ``model_path`` is the ONNX file (:func:`~cctv_sr.detect.create_detector` resolves
    ``detector.model_path``, else ``yunet_2023mar``'s
    ``face_detection_yunet_2023mar.onnx``). Detections whose box is smaller than
    ``cfg.min_face_px`` are dropped. OpenCV's DNN runs on the CPU here (``cfg.device`` is
    ignored).
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
        self.check_available()
        self._path = path
        self._nets: OrderedDict[tuple[int, int], cv2.FaceDetectorYN] = OrderedDict()
        self._net_for((320, 320))  # a file that does not load fails here, not mid-run
        self.model_files = (path,)
        if cfg.device.startswith("cuda"):
            log.info("yunet runs on OpenCV's CPU backend; detector.device=%s ignored", cfg.device)
        log.info("yunet model %s", path)

    def detect(self, images: Sequence[np.ndarray]) -> list[FaceDetections]:
        """Faces in each image (see :meth:`FaceDetector.detect`)."""
        return [self._detect_one(image) for image in check_images(images)]

    def _net_for(self, size: tuple[int, int]) -> cv2.FaceDetectorYN:
        """The network set up for input ``size`` (width, height), made on first use; the least
        recently used one goes when more than :data:`MAX_NETS` are kept."""
        net = self._nets.get(size)
        if net is not None:
            self._nets.move_to_end(size)
            return net
        cfg = self.cfg
        try:
            # OpenCV applies its score cut before NMS; use the caller's cut for both.
            # OpenCV 5 warns on every create that its new graph engine ignores targets; that
            # says nothing to a user, so keep its log quiet for this call.
            previous = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            try:
                net = cv2.FaceDetectorYN.create(
                    str(self._path), "", size, float(cfg.score_thresh), float(cfg.nms_thresh),
                    TOP_K,
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
        return finalize(
            xyxy, rows[:, 14], kps, width=width, height=height,
            score_thresh=self.cfg.score_thresh, nms_thresh=self.cfg.nms_thresh,
            min_side=float(self.cfg.min_face_px),
        )
