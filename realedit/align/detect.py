"""Face detection (dlib HOG by default, MMOD CNN optional) and 68-point landmarks.

Large photos are detected on a downscaled working copy; boxes and landmarks are mapped back
to full-resolution pixel coordinates (pixel centres at integers, the convention dlib and
OpenCV use). Every face gets a landmark-quality score: the predictor is re-run from jittered
boxes, and on a real face the landmarks barely move, while on a face-like false positive
(e.g. the mission patch in scikit-image's ``astronaut()``) they wander. Faces whose quality
is below ``min_quality`` are dropped (or kept and flagged, with ``keep_rejected=True``).

Quality combines the two independent pieces of evidence, because real faces are rarely weak on
both: a profile or a tiny face gets a low detector score but steady landmarks, glasses make
landmarks drift but keep a high score, while a false positive is weak on both.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ImageError, UsageError
from .dlib_models import dlib_model_path

# Smallest face box (pixels of the image it runs on) dlib's HOG detector finds: its window.
_HOG_MIN_FACE = 80.0
# Box jitters (dx, dy as a fraction of box width; ds = relative size change) for the stability
# test. Six runs cost ~6 ms in total: the predictor is < 1 ms per call.
_JITTERS = ((-0.1, 0, 0), (0.1, 0, 0), (0, -0.1, 0), (0, 0.1, 0), (0, 0, -0.1), (0, 0, 0.1))
# quality = sigmoid(2 * (1.5 + min(score, 2) - drift / 0.1)), drift = median landmark motion
# under jitter in inter-ocular distances. Measured on 470 CelebA/CelebA-HQ faces: drift
# 0-0.22 with the lowest z ~ +0.7 (quality 0.8); astronaut mission patch: score 0.12, drift
# 0.31, z = -1.5 (quality 0.05).
_Z_OFFSET, _DRIFT_UNIT, _SCORE_CAP = 1.5, 0.1, 2.0


def face_quality(score: float, drift: float) -> float:
    """0..1 plausibility of a detection from its detector score and landmark drift."""
    z = _Z_OFFSET + min(float(score), _SCORE_CAP) - drift / _DRIFT_UNIT
    return float(1.0 / (1.0 + np.exp(-2.0 * z)))


@dataclass(frozen=True)
class Face:
    """One detected face, in the coordinates of the full-resolution photo.

    box: (left, top, right, bottom) in pixels; landmarks: (68, 2) float64 (x, y), dlib's
    iBUG-300W order; score: detector confidence (HOG SVM margin or MMOD confidence; the two
    scales differ); quality: 0..1 landmark stability (1 = rock-steady); accepted: quality
    passed the detector's threshold.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray = field(repr=False)
    score: float
    quality: float
    accepted: bool = True
    detector: str = "hog"

    @property
    def eye_left(self) -> np.ndarray:
        """Centre of the eye on the left of the image (landmarks 36-41)."""
        return self.landmarks[36:42].mean(axis=0)

    @property
    def eye_right(self) -> np.ndarray:
        return self.landmarks[42:48].mean(axis=0)

    @property
    def size(self) -> float:
        """Side of the FFHQ quad in photo pixels: the natural measure of face size."""
        from .ffhq import ffhq_quad

        quad = ffhq_quad(self.landmarks)
        return float(np.hypot(*(quad[3] - quad[0])))

    def to_dict(self) -> dict:
        return {
            "box": [float(v) for v in self.box],
            "landmarks": self.landmarks.round(3).tolist(),
            "score": float(self.score),
            "quality": float(self.quality),
            "accepted": bool(self.accepted),
            "detector": self.detector,
        }


def as_rgb_array(image) -> np.ndarray:
    """HxWx3 uint8 RGB view of ``image`` (ndarray, PIL image, or an object with ``.rgb``)."""
    if hasattr(image, "rgb"):  # realedit.io.Photo
        image = image.rgb
    if not isinstance(image, np.ndarray):
        from PIL import Image

        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
        else:
            raise UsageError(f"expected an image array, got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ImageError(f"expected an HxWx3 image, got an array of shape {image.shape}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if image.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixels, got {image.dtype} (use realedit.io.read_image)")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"empty image of shape {image.shape}")
    return image


def _landmarks(predictor, image: np.ndarray, rect) -> np.ndarray:
    shape = predictor(image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def landmark_drift(predictor, image: np.ndarray, rect, landmarks: np.ndarray) -> float:
    """Median landmark displacement under box jitter, in units of the inter-ocular distance
    (median: a few badly defined points, e.g. the jaw under hair, should not decide)."""
    import dlib

    interocular = max(float(np.linalg.norm(landmarks[42:48].mean(0) - landmarks[36:42].mean(0))), 1.0)
    cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
    w = rect.width()
    drifts = []
    for dx, dy, ds in _JITTERS:
        half = w * (1 + ds) / 2
        x, y = cx + dx * w, cy + dy * w
        jittered = dlib.rectangle(int(round(x - half)), int(round(y - half)),
                                  int(round(x + half)), int(round(y + half)))
        moved = _landmarks(predictor, image, jittered)
        drifts.append(np.linalg.norm(moved - landmarks, axis=1))
    return float(np.median(np.concatenate(drifts))) / interocular


class Detector:
    """dlib detector + 68-point predictor, models loaded lazily and kept for reuse.

    kind: "hog" (fast, frontal) or "cnn" (dlib MMOD, ~1.6 s per 512 px photo on a CPU).
    max_side: photos larger than this are detected on a copy downscaled to it.
    upsample: dlib's upsampling count for the detector; "auto" = 1 when the working copy is
    at most 1024 px on its long side (finds faces down to ~40 px), else 0 (~80 px), and then
    (HOG) a second pass on the photo magnified towards 2x, so faces down to ~40 px are found
    at any photo size as long as that image stays within ``budget_pixels`` (beyond, the
    largest magnification that fits: ~80 px faces at 12 MP); see ``smallest_face``.
    budget_pixels: image area of that small-face pass (its cost ~ area: 12 MP took ~4 s on
    one busy CPU core; `python bench/align.py` measures it).
    min_score: detector threshold (HOG margin; dlib's own default is 0).
    min_quality: landmark-stability threshold in 0..1.
    """

    def __init__(self, kind: str = "hog", *, models_dir: str | Path | None = None,
                 max_side: int = 2048, upsample: int | str = "auto", min_score: float = 0.0,
                 min_quality: float = 0.5, budget_pixels: float = 12e6):
        if kind not in ("hog", "cnn"):
            raise UsageError(f"unknown detector {kind!r}: use 'hog' or 'cnn'")
        if max_side < 64:
            raise UsageError("max_side must be at least 64")
        self.kind = kind
        self.models_dir = models_dir
        self.max_side = int(max_side)
        self.upsample = upsample
        self.min_score = float(min_score)
        self.min_quality = float(min_quality)
        self.budget_pixels = float(budget_pixels)

    def __getstate__(self):
        # dlib's models do not pickle; worker processes load their own (lazily, as here).
        return {k: v for k, v in self.__dict__.items() if k not in ("_detector", "predictor")}

    @functools.cached_property
    def _detector(self):
        import dlib

        if self.kind == "hog":
            return dlib.get_frontal_face_detector()
        return dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod", self.models_dir)))

    @functools.cached_property
    def predictor(self):
        import dlib

        return dlib.shape_predictor(str(dlib_model_path("landmarks68", self.models_dir)))

    def _base_scale(self, h: int, w: int) -> tuple[float, int]:
        """(working copy / photo, dlib upsampling count) of the main detection pass."""
        f = min(1.0, self.max_side / max(h, w))
        up = self.upsample if self.upsample != "auto" else int(max(h, w) * f <= 1024)
        return f, int(up)

    def _magnification(self, h: int, w: int) -> float | None:
        """Photo -> image scale of the extra small-face HOG pass ("auto" only), or None when
        the main pass already sees faces as large."""
        if self.upsample != "auto" or self.kind != "hog":
            return None
        f, up = self._base_scale(h, w)
        # 2x makes HOG's ~80 px minimum a 40 px face; the budget caps the cost on big photos.
        mag = float(min(2.0, np.sqrt(self.budget_pixels / (h * w))))
        return mag if mag > f * 2 ** up * 1.01 else None

    def smallest_face(self, h: int, w: int) -> float:
        """About the smallest face (box side, photo pixels) this detector finds in an h x w photo."""
        f, up = self._base_scale(h, w)
        return _HOG_MIN_FACE / max(f * 2 ** up, self._magnification(h, w) or 0.0)

    def _working_copy(self, rgb: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Resized copy (or the image itself) and the per-axis full/working scale."""
        import cv2

        h, w = rgb.shape[:2]
        if max(h, w) <= self.max_side:
            return np.ascontiguousarray(rgb), 1.0, 1.0
        f = self.max_side / max(h, w)
        ww, wh = max(1, round(w * f)), max(1, round(h * f))
        # INTER_AREA = box filter: no aliasing, and cheap on very large inputs.
        small = cv2.resize(rgb, (ww, wh), interpolation=cv2.INTER_AREA)
        return small, w / ww, h / wh

    def _raw_detections(self, work: np.ndarray, rgb: np.ndarray | None = None):
        up = self.upsample
        if up == "auto":
            up = int(max(work.shape[:2]) <= 1024)
        if self.kind == "hog":
            rects, scores, _ = self._detector.run(work, int(up), self.min_score)
            found = list(zip(rects, scores))
            mag = None if rgb is None else self._magnification(*rgb.shape[:2])
            if mag is not None:
                found += [d for d in self._small_faces(rgb, mag, work.shape)
                          if all(_iou(d[0], r) < 0.3 for r, _ in found)]
            return found
        return [(d.rect, d.confidence) for d in self._detector(work, int(up))
                if d.confidence >= self.min_score]

    def _small_faces(self, rgb: np.ndarray, mag: float, work_shape) -> list:
        """HOG on the photo magnified by ``mag`` (bilinear, as dlib's own upsampling): faces
        smaller than the main pass can see; boxes returned in working-copy pixels. The area is
        capped by budget_pixels, so the cost is bounded at any photo size."""
        import cv2
        import dlib

        h, w = rgb.shape[:2]
        big = cv2.resize(rgb, (max(1, round(w * mag)), max(1, round(h * mag))),
                         interpolation=cv2.INTER_LINEAR if mag > 1 else cv2.INTER_AREA)
        fx, fy = work_shape[1] / big.shape[1], work_shape[0] / big.shape[0]
        rects, scores, _ = self._detector.run(big, 0, self.min_score)
        return [(dlib.rectangle(round(r.left() * fx), round(r.top() * fy),
                                round(r.right() * fx), round(r.bottom() * fy)), s)
                for r, s in zip(rects, scores)]

    def __call__(self, image, *, keep_rejected: bool = False) -> list[Face]:
        rgb = as_rgb_array(image)
        if min(rgb.shape[:2]) < 16:  # smaller than any detectable face; dlib would just return []
            return []
        work, sx, sy = self._working_copy(rgb)
        faces = []
        for rect, score in self._raw_detections(work, rgb):
            lm = _landmarks(self.predictor, work, rect)
            quality = face_quality(score, landmark_drift(self.predictor, work, rect, lm))
            # working pixel centre i <-> full-resolution coordinate (i + 0.5) * s - 0.5
            lm_full = np.column_stack([(lm[:, 0] + 0.5) * sx - 0.5, (lm[:, 1] + 0.5) * sy - 0.5])
            box = ((rect.left() + 0.5) * sx - 0.5, (rect.top() + 0.5) * sy - 0.5,
                   (rect.right() + 0.5) * sx - 0.5, (rect.bottom() + 0.5) * sy - 0.5)
            accepted = quality >= self.min_quality
            if accepted or keep_rejected:
                faces.append(Face(box=tuple(float(v) for v in box), landmarks=lm_full,
                                  score=float(score), quality=float(quality),
                                  accepted=accepted, detector=self.kind))
        faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        return faces


def _iou(a, b) -> float:
    """Intersection over union of two dlib rectangles."""
    iw = min(a.right(), b.right()) - max(a.left(), b.left())
    ih = min(a.bottom(), b.bottom()) - max(a.top(), b.top())
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a.width() * a.height() + b.width() * b.height() - inter)


@functools.lru_cache(maxsize=4)
def default_detector(kind: str = "hog") -> Detector:
    """Process-wide cached Detector with default settings, so dlib models load once (the
    68-point model is ~100 MB and takes ~1 s to read)."""
    return Detector(kind)


def detect_faces(image, *, detector: Detector | None = None, keep_rejected: bool = False) -> list[Face]:
    """Faces in ``image`` (HxWx3 uint8 RGB array, PIL image or realedit.io.Photo), largest first.

    Non-faces (landmark quality below the detector's threshold) are dropped unless
    ``keep_rejected``. An image without faces gives ``[]``; deciding whether that is an
    error is the caller's business (the pipeline raises NoFaceError).
    """
    return (detector or default_detector())(image, keep_rejected=keep_rejected)
