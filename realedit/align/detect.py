"""Face detection (dlib HOG by default, MMOD CNN optional) and 68-point landmarks.

Large photos are detected on a downscaled working copy, and faces too small for it (down
to ``min_face``, 40 px by default) on overlapping magnified tiles of the photo; boxes and
landmarks are mapped back to full-resolution pixel coordinates (pixel centres at integers,
the convention dlib and OpenCV use). Every face gets a landmark-quality score: the predictor
is re-run from jittered boxes, and on a real face the landmarks barely move, while on a
face-like false positive (e.g. the mission patch in scikit-image's ``astronaut()``) they
wander. Faces whose quality is below ``min_quality`` are dropped (or kept and flagged, with
``keep_rejected=True``).

Quality combines the two independent pieces of evidence, because real faces are rarely weak on
both: a profile or a tiny face gets a low detector score but steady landmarks, glasses make
landmarks drift but keep a high score, while a false positive is weak on both.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..args import DETECTORS
from ..errors import UsageError
from .dlib_models import dlib_model_path
from .face import Face, as_rgb_array  # noqa: F401 (re-exported)

# Smallest face box (pixels of the image it runs on) dlib's HOG detector finds: its window.
_HOG_MIN_FACE = 80.0
# Faces (box side, photo pixels) a Detector looks for by default, at any photo size.
DEFAULT_MIN_FACE = 40.0
# The CNN's default: dlib's MMOD model sees faces from ~80 px without upsampling, which costs
# it 4x (CelebA-HQ 000434 at 512 px, loaded machine: 5.9 s at 80 px, 22 s at 40 px).
CNN_MIN_FACE = 80.0
# Smallest min_face a Detector accepts: below it the 68 landmarks are guesses.
MIN_FACE_LIMIT = 20.0
# A pass "sees" min_face when its smallest face is within 1% of it (scales are rounded).
_SLACK = 1.01
# The tile pass magnifies 10% beyond 80 / min_face: a face between two of HOG's pyramid levels
# (5/6 apart) is seen slightly too small. Measured: the astronaut shrunk to 160 px (dlib box
# ~30 px, face ~45 px wide) scored 0.57..1.0 over 12 placements at 2.2x, -0.22..0.46 at 2x
# (half of them missed).
_TILE_MARGIN = 1.1
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

    kind: "hog" (fast, frontal) or "cnn" (dlib MMOD, ~1.6 s per 512 px photo on an idle CPU;
    finds turned or partly covered faces HOG misses).
    max_side: photos larger than this are detected on a copy downscaled to it (the main pass).
    upsample: dlib's upsampling count for the main pass; "auto" = 1 when the working copy is
    at most 1024 px on its long side and that is needed to see ``min_face``, else 0.
    min_face: smallest face (box side, photo pixels) to find, at any photo size ("auto", HOG);
    None: DEFAULT_MIN_FACE for HOG, CNN_MIN_FACE for the CNN.
    Where the main pass cannot see faces that small (HOG's window is 80 px of the image it
    scans), a second pass runs on overlapping tiles of the photo magnified by 1.1 * 80 /
    min_face (2.2x for the default 40), so memory stays bounded at any photo size; its cost
    grows with the photo's area and with 1 / min_face**2 (~5x the photo's pixels are scanned
    at 40 px; `python bench/align.py`); ``smallest_face`` says what is found.
    tile: side of a magnified tile in pixels; bounds the memory of each thread (a 4096 px tile
    is 50 MB of pixels plus dlib's HOG pyramid of it).
    workers: threads for the tiles (dlib releases the GIL); None = the CPUs this process may
    use, at most $OMP_NUM_THREADS when set.
    min_score: detector threshold (HOG margin; dlib's own default is 0).
    min_quality: landmark-stability threshold in 0..1.
    """

    def __init__(self, kind: str = "hog", *, models_dir: str | Path | None = None,
                 max_side: int = 2048, upsample: int | str = "auto",
                 min_face: float | None = None, tile: int = 4096,
                 workers: int | None = None, min_score: float = 0.0, min_quality: float = 0.5):
        if kind not in DETECTORS:
            raise UsageError(f"unknown detector {kind!r}: use 'hog' or 'cnn'")
        if max_side < 64:
            raise UsageError("max_side must be at least 64")
        if min_face is None:
            min_face = CNN_MIN_FACE if kind == "cnn" else DEFAULT_MIN_FACE
        if not MIN_FACE_LIMIT <= float(min_face):  # nan too; inf = the main pass alone
            raise UsageError(f"min_face must be at least {MIN_FACE_LIMIT:.0f} px (smaller faces "
                             f"have too few pixels for the landmarks), got {min_face}")
        if tile < 512:
            raise UsageError(f"tile must be at least 512 px, got {tile}")
        if workers is not None and int(workers) < 1:
            raise UsageError(f"workers must be at least 1, got {workers}")
        self.kind = kind
        self.models_dir = models_dir
        self.max_side = int(max_side)
        self.upsample = upsample
        self.min_face = float(min_face)
        self.tile = int(tile)
        self.workers = None if workers is None else int(workers)
        self.min_score = float(min_score)
        self.min_quality = float(min_quality)

    def __getstate__(self):
        # dlib's models do not pickle; worker processes load their own (lazily, as here).
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_detector", "predictor", "_tile_hogs")}

    def load(self) -> "Detector":
        """Load dlib's models now (seconds the first time in a process), not in the first
        photo's detection."""
        self._detector, self.predictor  # noqa: B018 - cached properties
        return self

    @functools.cached_property
    def _detector(self):
        import dlib

        if self.kind == "hog":
            return dlib.get_frontal_face_detector()
        return dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod", self.models_dir)))

    @functools.cached_property
    def predictor(self):
        return _shape_predictor(str(dlib_model_path("landmarks68", self.models_dir)))

    def _hogs(self, n: int) -> list:
        """n HOG detectors for the tile threads: one each, because a dlib object detector keeps
        the image it scans inside itself (not thread-safe). Built once (~0.5 s each), kept."""
        import dlib

        hogs = self.__dict__.setdefault("_tile_hogs", [self._detector])
        while len(hogs) < n:
            hogs.append(dlib.get_frontal_face_detector())
        return hogs[:n]

    def _base_scale(self, h: int, w: int) -> tuple[float, int]:
        """(working copy / photo, dlib upsampling count) of the main detection pass."""
        f = min(1.0, self.max_side / max(h, w))
        if self.upsample != "auto":
            return f, int(self.upsample)
        # upsampling costs 4x: only where the working copy is small and min_face needs it
        return f, int(max(h, w) * f <= 1024 and _HOG_MIN_FACE / f > self.min_face * _SLACK)

    def _magnification(self, h: int, w: int) -> float | None:
        """Photo -> tile scale of the small-face pass ("auto" HOG only), or None when the main
        pass already sees faces of ``min_face``."""
        if self.upsample != "auto" or self.kind != "hog":
            return None
        f, up = self._base_scale(h, w)
        if _HOG_MIN_FACE / (f * 2 ** up) <= self.min_face * _SLACK:
            return None
        return _HOG_MIN_FACE / self.min_face * _TILE_MARGIN

    def smallest_face(self, h: int, w: int) -> float:
        """About the smallest face (box side, photo pixels) this detector finds in an h x w photo."""
        f, up = self._base_scale(h, w)
        if self._magnification(h, w) is not None:
            return self.min_face
        return _HOG_MIN_FACE / (f * 2 ** up)

    def tiles(self, h: int, w: int) -> list[tuple[int, int, int, int]]:
        """(x0, y0, x1, y1) photo tiles of the small-face pass ([] when it does not run)."""
        mag = self._magnification(h, w)
        if mag is None:
            return []
        f, up = self._base_scale(h, w)
        # Every face the main pass cannot see must lie wholly inside some tile: overlap by the
        # main pass's smallest face (+20%: boxes vary; +16 px: HOG looks a cell or two beyond).
        overlap = int(np.ceil(_HOG_MIN_FACE / (f * 2 ** up) * 1.2)) + 16
        return tile_grid(h, w, max(int(self.tile / mag), 3 * overlap), overlap)

    def _workers(self) -> int:
        if self.workers is not None:
            return self.workers
        return default_workers()

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

    def _raw_detections(self, work: np.ndarray, up: int) -> list:
        if self.kind == "hog":
            rects, scores, _ = self._detector.run(work, int(up), self.min_score)
            return list(zip(rects, scores))
        return [(d.rect, d.confidence) for d in self._detector(work, int(up))
                if d.confidence >= self.min_score]

    def _faces(self, image: np.ndarray, found, sx: float, sy: float, x0: float = 0.0,
               y0: float = 0.0) -> list[Face]:
        """Landmarks + quality of each (rect, score) found in ``image``, mapped to the photo:
        image pixel centre i <-> photo coordinate offset + (i + 0.5) * s - 0.5."""
        faces = []
        for rect, score in found:
            lm = _landmarks(self.predictor, image, rect)
            quality = face_quality(score, landmark_drift(self.predictor, image, rect, lm))
            lm_full = np.column_stack([x0 + (lm[:, 0] + 0.5) * sx - 0.5,
                                       y0 + (lm[:, 1] + 0.5) * sy - 0.5])
            box = (x0 + (rect.left() + 0.5) * sx - 0.5, y0 + (rect.top() + 0.5) * sy - 0.5,
                   x0 + (rect.right() + 0.5) * sx - 0.5, y0 + (rect.bottom() + 0.5) * sy - 0.5)
            faces.append(Face(box=tuple(float(v) for v in box), landmarks=lm_full,
                              score=float(score), quality=float(quality),
                              accepted=quality >= self.min_quality, detector=self.kind))
        return faces

    def _tile_faces(self, rgb: np.ndarray, hog, tiles, mag: float) -> list[Face]:
        """HOG on each tile magnified by ``mag`` (bilinear, as dlib's own upsampling); landmarks
        on the magnified tile, where the face is large enough for the predictor. A detection
        crossing a tile edge inside the photo is dropped: the overlap puts that face wholly
        inside the neighbouring tile, where it is not cut."""
        import cv2

        h, w = rgb.shape[:2]
        faces = []
        for x0, y0, x1, y1 in tiles:
            crop = rgb[y0:y1, x0:x1]
            size = (max(1, round((x1 - x0) * mag)), max(1, round((y1 - y0) * mag)))
            if size == (x1 - x0, y1 - y0):
                big = np.ascontiguousarray(crop)
            else:
                big = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR if mag > 1
                                 else cv2.INTER_AREA)
            rects, scores, _ = hog.run(big, 0, self.min_score)
            sx, sy = (x1 - x0) / size[0], (y1 - y0) / size[1]
            for face in self._faces(big, zip(rects, scores), sx, sy, x0, y0):
                l, t, r, b = face.box
                cut = ((x0 > 0 and l < x0) or (y0 > 0 and t < y0)
                       or (x1 < w and r > x1 - 1) or (y1 < h and b > y1 - 1))
                if not cut:
                    faces.append(face)
        return faces

    def _small_faces(self, rgb: np.ndarray, mag: float) -> list[Face]:
        """The small-face pass over all tiles, split round-robin over the worker threads."""
        from concurrent.futures import ThreadPoolExecutor

        tiles = self.tiles(*rgb.shape[:2])
        n = max(1, min(self._workers(), len(tiles)))
        hogs = self._hogs(n)
        if n == 1:
            return self._tile_faces(rgb, hogs[0], tiles, mag)
        with ThreadPoolExecutor(n, thread_name_prefix="realedit-detect") as pool:
            parts = pool.map(lambda k: self._tile_faces(rgb, hogs[k], tiles[k::n], mag), range(n))
            return [face for part in parts for face in part]

    def __call__(self, image, *, keep_rejected: bool = False) -> list[Face]:
        rgb = as_rgb_array(image)
        if min(rgb.shape[:2]) < 16:  # smaller than any detectable face; dlib would just return []
            return []
        h, w = rgb.shape[:2]
        work, sx, sy = self._working_copy(rgb)
        faces = self._faces(work, self._raw_detections(work, self._base_scale(h, w)[1]), sx, sy)
        mag = self._magnification(h, w)
        if mag is not None:
            faces = merge_faces(faces, self._small_faces(rgb, mag))
        faces = [f for f in faces if f.accepted or keep_rejected]
        faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        return faces


@functools.lru_cache(maxsize=2)
def _shape_predictor(path: str):
    """The 68-point model (~100 MB, ~1 s to read), shared by all Detectors of a process: it is
    read-only once loaded, so threads and detectors can share it."""
    import dlib

    return dlib.shape_predictor(path)


def default_workers() -> int:
    """CPUs this process may use, capped by $OMP_NUM_THREADS when that is set (the thread count
    torch and OpenMP libraries take as the user's wish)."""
    import os

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        n = min(n, int(omp))
    return max(1, n)


def tile_grid(h: int, w: int, side: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Tiles (x0, y0, x1, y1) of at most ``side`` px covering an h x w image, neighbours
    overlapping by at least ``overlap`` px, evenly sized (row-major order)."""
    def cuts(n_px: int) -> list[tuple[int, int]]:
        if n_px <= side:
            return [(0, n_px)]
        k = int(np.ceil((n_px - overlap) / (side - overlap)))
        length = int(np.ceil((n_px + (k - 1) * overlap) / k))
        starts = np.linspace(0, n_px - length, k).round().astype(int)
        return [(int(s), int(s) + length) for s in starts]

    return [(x0, y0, x1, y1) for y0, y1 in cuts(h) for x0, x1 in cuts(w)]


def _box_overlap(a, b) -> tuple[float, float]:
    """(intersection over union, intersection over the smaller box) of two (l, t, r, b) boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0, 0.0
    inter = iw * ih
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter), inter / max(min(area_a, area_b), 1e-9)


def merge_faces(first: list[Face], more: list[Face]) -> list[Face]:
    """``first`` plus those of ``more`` that are not the same face again (IoU >= 0.3, or one
    box mostly inside the other: a face does not sit inside a face), best score first."""
    kept = list(first)
    for face in sorted(more, key=lambda f: -f.score):
        if all(iou < 0.3 and inside < 0.7 for iou, inside in
               (_box_overlap(face.box, k.box) for k in kept)):
            kept.append(face)
    return kept


@functools.lru_cache(maxsize=4)
def default_detector(kind: str = "hog", min_face: float | None = None) -> Detector:
    """Process-wide cached Detector with default settings (but ``min_face``), so dlib models
    load once (the 68-point model is ~100 MB and takes ~1 s to read; each HOG detector ~0.3 s)."""
    return Detector(kind, min_face=min_face)


def detect_faces(image, *, detector: Detector | None = None, keep_rejected: bool = False) -> list[Face]:
    """Faces in ``image`` (HxWx3 uint8 RGB array, PIL image or realedit.io.Photo), largest first.

    Non-faces (landmark quality below the detector's threshold) are dropped unless
    ``keep_rejected``. An image without faces gives ``[]``; deciding whether that is an
    error is the caller's business (the pipeline raises NoFaceError).
    """
    return (detector or default_detector())(image, keep_rejected=keep_rejected)
