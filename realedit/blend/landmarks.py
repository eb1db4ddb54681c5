"""Landmark motion for the warp transfer: where the generator's face parts went, read by dlib.

Optical flow between two 64 px generator faces sees texture move, but much of what makes a
smile or a turn is re-shading that dlib reads as shape: on 23 development photos DIS
followed 20-40 % of the mouth corners' motion under smile=+3 (landmarks on the upsampled
G(w) and G(w + edit)) and none of the nose tip's under pose=+3. So the 68 landmarks of the
generator's before and after images are predicted (dlib's shape predictor, from the same box
for both, averaged over a few jittered boxes so that the two read alike where nothing moved)
and their motion is spread over the face by a thin-plate spline (:func:`tps_field`).

The same landmarks register the generator's face to the photo's (the inversion leaves the
photo's mouth a few pixels from the generator's): :func:`alignment_offset` maps each photo
pixel to its place on the generator's face, so the edit lands on the photo's own features.

All functions are pure (numpy in, numpy out) apart from dlib's cached predictor.
"""
from __future__ import annotations

import numpy as np

# dlib's HOG face box in FFHQ-crop units (realedit.align.ffhq.FACE_BOX_IN_FFHQ): the
# generator's face sits there, as the photo's crop does.
# Box jitters (dx, dy in box widths, ds relative size) averaged for the generator's
# landmarks: one box gave the mouth corners 0.5-1 px of jitter on a 256 px grid between two
# nearly identical faces; the mean of seven about a third of that.
JITTERS = ((0, 0, 0), (0.03, 0, 0), (-0.03, 0, 0), (0, 0.03, 0), (0, -0.03, 0), (0, 0, 0.05),
           (0, 0, -0.05))
# Thin-plate smoothing (grid px^2 of bending energy per px^2 of misfit), applied to a spline
# fitted on a grid of side TPS_GRID: small enough to follow a mouth corner, large enough that
# two neighbouring landmarks jittering apart do not fold the field between them.
TPS_SMOOTH = 2.0


def predict_landmarks(image: np.ndarray, box, *, predictor=None) -> np.ndarray:
    """(68, 2) landmarks of the face in ``image`` (uint8 HxWx3) inside ``box`` (left, top,
    right, bottom; px), the mean over JITTERS of dlib's shape predictor (no detection)."""
    import dlib

    from ..align.detect import _landmarks, default_detector

    pred = predictor if predictor is not None else default_detector().predictor
    img = np.ascontiguousarray(image)
    l, t, r, b = (float(v) for v in box)
    cx, cy, w = (l + r) / 2, (t + b) / 2, r - l
    out = []
    for dx, dy, ds in JITTERS:
        half = w * (1 + ds) / 2
        x, y = cx + dx * w, cy + dy * w
        rect = dlib.rectangle(int(round(x - half)), int(round(y - half)),
                              int(round(x + half)), int(round(y + half)))
        out.append(_landmarks(pred, img, rect))
    return np.mean(out, axis=0)


def _tps_kernel(d: np.ndarray) -> np.ndarray:
    """r^2 log r, 0 at r = 0."""
    return np.where(d > 0, d * d * np.log(np.maximum(d, 1e-12)), 0.0)


def tps_field(points: np.ndarray, values: np.ndarray, size: int, *, smooth: float | None = None,
              grid: int = 64) -> np.ndarray:
    """(size, size, K) float32: the smoothing thin-plate spline through ``values`` (N, K) at
    ``points`` (N, 2; x, y in px of a size x size grid). Evaluated on a ``grid`` px grid and
    upsampled bilinearly: the spline is smooth at that scale, and 64x64 evaluations cost
    ~1 ms where 256x256 cost ~50. Extrapolates affinely: callers fade it (hull_weight)."""
    import cv2

    smooth = TPS_SMOOTH if smooth is None else smooth
    # pixel centres of the size grid in the coarse grid's pixel coordinates (cv2.resize's
    # convention), so that coarse pixel j is evaluated where the upsampling puts it
    p = (np.asarray(points, np.float64) + 0.5) * (grid / size) - 0.5
    v = np.asarray(values, np.float64)
    n = len(p)
    k = _tps_kernel(np.linalg.norm(p[:, None] - p[None], axis=2))
    aff = np.hstack([np.ones((n, 1)), p])
    a = np.zeros((n + 3, n + 3))
    a[:n, :n] = k + smooth * np.eye(n)
    a[:n, n:], a[n:, :n] = aff, aff.T
    rhs = np.zeros((n + 3, v.shape[1]))
    rhs[:n] = v
    coef = np.linalg.lstsq(a, rhs, rcond=None)[0]
    gx, gy = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64))
    q = np.stack([gx.ravel(), gy.ravel()], 1)
    out = _tps_kernel(np.linalg.norm(q[:, None] - p[None], axis=2)) @ coef[:n] + coef[n] + q @ coef[n + 1:]
    out = out.reshape(grid, grid, -1).astype(np.float32)
    if grid != size:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)
    return out.reshape(size, size, -1)


def hull_weight(points: np.ndarray, size: int, *, grow: float, feather: float) -> np.ndarray:
    """(size, size) float32 in 0..1: 1 on the convex hull of ``points`` dilated by ``grow``
    px, falling to 0 over ``feather`` px (Gaussian sigma) outside it; exactly 0 far away."""
    import cv2

    m = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(m, cv2.convexHull(np.round(np.asarray(points) * 16).astype(np.int32)), 1,
                       cv2.LINE_AA, shift=4)
    r = int(round(grow + 2.5 * feather))
    if r > 0:
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    k = int(2 * np.ceil(3 * feather) + 1)
    out = cv2.GaussianBlur(m.astype(np.float32), (k, k), feather, borderType=cv2.BORDER_CONSTANT) \
        if feather > 0 else m.astype(np.float32)
    out[out < 1.0 / 512] = 0.0
    return np.minimum(out, 1.0)
