"""The eval's measurements on inputs with a known answer (no ../shared needed)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from realedit.evaluate import HEAD_MODEL_MM, head_yaw

ROOT = Path(__file__).resolve().parents[1]


def _project(yaw, pitch=0.0, roll=0.0, size=(640, 480), dist=700.0, model=None, shift=(0, 0)):
    """68 landmarks (only the model's points filled) of the generic head turned by `yaw`
    degrees about the vertical axis (then pitch, roll), seen by a pinhole camera."""
    model = HEAD_MODEL_MM if model is None else model
    obj = np.array(list(model.values()), dtype=np.float64)
    rot = (cv2.Rodrigues(np.radians([0.0, 0.0, roll]))[0]
           @ cv2.Rodrigues(np.radians([pitch, 0.0, 0.0]))[0]
           # a turn towards the image's right is a negative rotation about y (y points down)
           @ cv2.Rodrigues(np.radians([0.0, -yaw, 0.0]))[0])
    w, h = size
    cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], dtype=np.float64)
    pts, _ = cv2.projectPoints(obj, cv2.Rodrigues(rot)[0], np.array([*shift, dist]), cam, None)
    lm = np.zeros((68, 2))
    lm[list(model)] = pts[:, 0]
    return lm


@pytest.mark.parametrize("yaw", [-40, -15, -3, 0, 5, 20, 45])
def test_head_yaw_recovers_known_turns(yaw):
    assert head_yaw(_project(yaw), (640, 480)) == pytest.approx(yaw, abs=0.1)
    # pitch and roll do not leak into yaw
    assert head_yaw(_project(yaw, pitch=12, roll=-15), (640, 480)) == pytest.approx(yaw, abs=0.5)


def test_head_yaw_sign_means_nose_towards_image_right():
    lm = _project(20)
    face_mid = (lm[36, 0] + lm[45, 0]) / 2
    assert lm[30, 0] > face_mid            # the nose sits right of the eyes' midpoint
    assert head_yaw(lm, (640, 480)) > 0


def test_head_yaw_tolerates_a_head_unlike_the_model_and_noise():
    # A real head is not the generic one: deeper nose, wider eyes; landmarks jitter by a pixel.
    other = {i: (x * 1.1, y * 0.95, z * 1.3) for i, (x, y, z) in HEAD_MODEL_MM.items()}
    rng = np.random.default_rng(0)
    errs = []
    for yaw in (-30, -10, 10, 30):
        lm = _project(yaw, model=other) + rng.normal(0, 1.0, (68, 2))
        errs.append(head_yaw(lm, (640, 480)) - yaw)
    assert np.max(np.abs(errs)) < 6          # degrees
    # differences between two turns (what the eval reports) are close even so
    d = head_yaw(_project(25, model=other), (640, 480)) - head_yaw(_project(5, model=other), (640, 480))
    assert d == pytest.approx(20, abs=3)


def test_head_yaw_refuses_bad_landmarks():
    assert np.isnan(head_yaw(np.zeros((5, 2)), (100, 100)))
    lm = _project(10)
    lm[30] = np.nan
    assert np.isnan(head_yaw(lm, (640, 480)))


def test_head_yaw_on_a_photo_and_its_mirror():
    from PIL import Image

    from realedit.align import detect_faces
    rgb = np.asarray(Image.open(ROOT / "demo" / "photos" / "astronaut.jpg").convert("RGB"))
    size = (rgb.shape[1], rgb.shape[0])
    a = head_yaw(detect_faces(rgb)[0].landmarks, size)
    b = head_yaw(detect_faces(np.ascontiguousarray(rgb[:, ::-1]))[0].landmarks, size)
    assert abs(a) > 2 and np.sign(a) == -np.sign(b) and abs(a + b) < 2
