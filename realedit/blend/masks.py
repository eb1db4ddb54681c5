"""Soft masks in aligned-crop space (float32, 0..1, exactly 0 near the crop border).

Widths are fractions of the crop side. The crop always shows the face at the same scale, so
a width fixed in crop pixels is a width proportional to the face size in the photo.
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError

# The FFHQ crop leaves ~20 % margin around the face; these keep the feather inside it.
GROW = 0.02       # landmark hull dilation, covers the jaw line and ears' roots
FOREHEAD = 0.55   # forehead height as a fraction of the brow-to-chin distance
FEATHER = 0.02    # Gaussian sigma of the feather (the feather lies outside the grown hull)
BORDER = 0.02     # square mask: erosion before feathering


def _blur(m: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    if sigma <= 0:
        return m
    k = int(2 * np.ceil(3 * sigma) + 1)
    return cv2.GaussianBlur(m, (k, k), sigma, borderType=cv2.BORDER_CONSTANT)


def _clean(m: np.ndarray, size: int) -> np.ndarray:
    """Taper to 0 over the outer 3 % of the crop (no hard edge where a large mask meets the
    crop border; the outermost 0.5 % is 0) and snap near-zero weights to exactly 0."""
    m = np.clip(m, 0.0, 1.0).astype(np.float32)
    edge, width = max(1, int(round(size * 0.005))), max(1.0, size * 0.025)
    i = np.arange(size, dtype=np.float32)
    ramp = np.clip((np.minimum(i, size - 1 - i) - edge + 1) / width, 0.0, 1.0)
    m *= ramp[:, None] * ramp[None, :]
    m[m < 1.0 / 512] = 0.0
    return m


def square_mask(size: int, *, border: float = BORDER, feather: float = FEATHER) -> np.ndarray:
    """The whole crop, eroded by ``border`` and feathered (facexlib/GFPGAN style)."""
    m = np.zeros((size, size), np.float32)
    b = int(round(size * (border + 2 * feather)))  # the feather stays inside the crop
    if 2 * b >= size:
        raise UsageError("mask border and feather leave nothing of the crop")
    m[b:size - b, b:size - b] = 1.0
    return _clean(_blur(m, feather * size), size)


def landmark_mask(landmarks_crop: np.ndarray, size: int, *, grow: float = GROW,
                  forehead: float = FOREHEAD, feather: float = FEATHER) -> np.ndarray:
    """Face region: hull of the 68 landmarks (crop coords) plus a forehead band above the
    brows, dilated by ``grow`` and feathered by ``feather`` (fractions of ``size``).

    The hull is dilated by grow + 2.5 feather before blurring, so the weight is >= 0.99 on
    the whole grown face and the soft edge lies outside it: edits of the jaw line or
    forehead do not ghost against the original."""
    import cv2

    lm = np.asarray(landmarks_crop, dtype=np.float64)
    if lm.shape != (68, 2):
        raise UsageError(f"expected (68, 2) landmarks, got {lm.shape}")
    brows = lm[17:27]
    chin = lm[8]
    up = brows.mean(axis=0) - chin  # "up" for this face, whatever its roll
    lifted = brows + forehead * up
    pts = np.vstack([lm, lifted])
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))  # 4 fractional bits
    m = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(m, hull, 255, lineType=cv2.LINE_AA, shift=4)
    r = int(round((grow + 2.5 * feather) * size))
    if r > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        m = cv2.dilate(m, kernel)
    return _clean(_blur(m.astype(np.float32) / 255.0, feather * size), size)


def user_mask(mask, size: int) -> np.ndarray:
    """A caller's mask (bool, uint8 0..255 or float 0..1; any square size) as crop weights."""
    import cv2

    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[:, :, 0] if m.shape[2] in (1, 3, 4) else m
    if m.ndim != 2:
        raise UsageError(f"mask must be 2-D, got shape {m.shape}")
    if m.dtype == bool:
        m = m.astype(np.float32)
    elif m.dtype == np.uint8:
        m = m.astype(np.float32) / 255.0
    else:
        m = m.astype(np.float32)
    if m.shape != (size, size):
        m = cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(m, 0.0, 1.0)
