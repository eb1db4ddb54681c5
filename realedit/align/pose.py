"""Head yaw from dlib's 68 landmarks: the one pose measurement of realedit.

The unit is **degrees of head yaw**: the angle the head is turned about its own vertical axis,
the number a protractor above the head would read. It is found by fitting a generic 3D head
(:data:`HEAD_MODEL_MM`) to the landmarks with ``cv2.solvePnP``, so it is geometry, not a
learned net. Landmark-based shortcuts disagree with it and with each other: the nose tip's
offset between the jaw-line ends, read as asin(offset / half width), gave 1.5-2x these
degrees, because dlib's jaw points are the face's silhouette, which does not turn with the
head, and the nose stands in front of it. tests/test_eval_metrics.py pins the unit: known
turns of a 68-point 3D face (another head than the model) projected through a camera, the
same head rendered as an image at known turns and read back by dlib, and mirrored photos.

Sign: positive when the face turns towards the image's right (the subject's own left; the
nose moves right in the picture); 0 looks straight into the camera.
"""
from __future__ import annotations

import numpy as np

# A generic adult head (mm). Camera-style axes: x towards the image's right (the subject's
# left), y down, z away from the camera; origin at the nose tip, so a frontal face has the
# identity rotation. Rounded anthropometric means (outer canthi ~90 mm apart, inner ~32 mm,
# mouth ~50 mm wide, nose tip to chin ~70 mm), depths from the nose tip back. Only points
# dlib places stably under expression and turn: eye corners, nose, mouth corners, chin (the
# jaw line is a silhouette, not a point on the head). Keys are dlib 68-point indices.
HEAD_MODEL_MM = {
    30: (0.0, 0.0, 0.0),        # nose tip
    8: (0.0, 68.0, 16.0),       # chin
    36: (-45.0, -36.0, 40.0),   # outer eye corner, image left (subject's right eye)
    45: (45.0, -36.0, 40.0),    # outer eye corner, image right
    39: (-16.0, -34.0, 28.0),   # inner eye corner, image left
    42: (16.0, -34.0, 28.0),    # inner eye corner, image right
    48: (-25.0, 30.0, 28.0),    # mouth corner, image left
    54: (25.0, 30.0, 28.0),     # mouth corner, image right
}

# How far the camera is taken to be from the head when nothing says (mm). Perspective matters:
# a head at 1 m read as if at 25 cm (a focal length of one image width on an aligned crop)
# measures 0.55-0.65 of its turn. Portraits (CelebA, FFHQ) are shot from about 1-3 m; from
# a selfie's 40 cm this reads a turn about 1.1x.
PORTRAIT_DISTANCE_MM = 1000.0
_EYES, _MOUTH = (36, 39, 42, 45), (48, 54)


def portrait_focal(landmarks: np.ndarray) -> float:
    """Focal length (px) of a camera PORTRAIT_DISTANCE_MM from a head with these landmarks:
    the face's scale (px per mm) from the eyes-to-mouth distance, which a turn does not
    shorten, against the same distance in :data:`HEAD_MODEL_MM`."""
    lm = np.asarray(landmarks, dtype=np.float64)
    mid = lambda pts: np.mean(pts, axis=0)  # noqa: E731
    model = lambda idx: mid([HEAD_MODEL_MM[i][:2] for i in idx])  # noqa: E731
    mm = np.linalg.norm(model(_EYES) - model(_MOUTH))
    px = np.linalg.norm(mid(lm[list(_EYES)]) - mid(lm[list(_MOUTH)]))
    return float(PORTRAIT_DISTANCE_MM * px / mm)


def head_yaw(landmarks: np.ndarray, image_size: tuple[int, int],
             focal: float | None = None) -> float:
    """Head yaw in degrees (module docstring: unit and sign) from dlib's 68 landmarks.

    ``image_size`` is (width, height) of the image the landmarks are in: the camera looks
    through its centre, so a face off-centre in a photo reads its viewing angle too (a few
    degrees; its aligned crop re-centres it). ``focal``: the camera's focal length in pixels,
    when it is known; by default the head is taken to be :data:`PORTRAIT_DISTANCE_MM` from
    the camera, so the focal length follows from the face's size in the picture, whatever
    the image's size. Returns NaN when the landmarks
    are not 68 finite points or the fit fails. Yaw is the turn about the head's own vertical
    axis (Euler order: yaw, then pitch, then roll in the picture plane), so roll and pitch do
    not leak into it.
    """
    import cv2

    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        return float("nan")
    idx = list(HEAD_MODEL_MM)
    obj = np.array([HEAD_MODEL_MM[i] for i in idx], dtype=np.float64)
    img = lm[idx]
    w, h = float(image_size[0]), float(image_size[1])
    f = portrait_focal(lm) if focal is None else float(focal)
    if not f > 0:
        return float("nan")
    cam = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], dtype=np.float64)
    ok, rvec, _ = cv2.solvePnP(obj, img, cam, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return float("nan")
    rot, _ = cv2.Rodrigues(rvec)
    # rot = Rz(roll) Rx(pitch) Ry(-yaw): its last row (the camera-z parts of the head's axes)
    # does not see the in-plane roll, and pitch scales both entries alike.
    return float(np.degrees(np.arctan2(rot[2, 0], rot[2, 2])))
