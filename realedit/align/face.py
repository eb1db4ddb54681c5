"""A detected face and the FFHQ quad its landmarks define: what detection and alignment share."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ImageError, UsageError


def _rot90(v: np.ndarray) -> np.ndarray:
    """(x, y) -> (-y, x): the recipe's 90-degree rotation."""
    return np.array([-v[1], v[0]], dtype=np.float64)


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """FFHQ quad (4, 2) from 68 dlib landmarks: top-left, bottom-left, bottom-right, top-right."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise UsageError(f"expected (68, 2) landmarks, got {lm.shape}")
    eye_l, eye_r = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    eye_avg = (eye_l + eye_r) / 2
    eye_to_eye = eye_r - eye_l
    eye_to_mouth = (lm[48] + lm[54]) / 2 - eye_avg
    x = eye_to_eye - _rot90(eye_to_mouth)
    x = x / np.hypot(*x) * max(2.0 * np.hypot(*eye_to_eye), 1.8 * np.hypot(*eye_to_mouth))
    y = _rot90(x)
    c = eye_avg + 0.1 * eye_to_mouth
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


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
