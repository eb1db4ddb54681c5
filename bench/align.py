"""Speed of the align and blend stages on this machine (prints a table).

    python bench/align.py [--repeat 3]

Rows: detect (HOG + 68 landmarks + quality check) and FFHQ align for a 1024 px CelebA-HQ
photo and a composed 12 MP (4000x3000) photo, at 256 and 1024 output; detect with a ~40 px
face in a corner of 1200x900, 12 MP and 24 MP photos at min_face 80 and 40 (1 and N threads;
--small-faces-only: just these); paste-back per face for 256 and 1024 crops (landmark mask +
colour correction; and with Poisson). The dlib model load is timed separately (once per
process). Times are the median of --repeat runs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"

from realedit.align import Detector, align_face  # noqa: E402
from realedit.align.detect import default_workers  # noqa: E402
from realedit.blend import paste_back  # noqa: E402


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def photo_12mp(face: np.ndarray) -> np.ndarray:
    import cv2

    canvas = np.empty((3000, 4000, 3), np.uint8)
    canvas[:] = np.linspace(50, 210, 4000).astype(np.uint8)[None, :, None]
    canvas[900:2100, 1400:2600] = cv2.resize(face, (1200, 1200), interpolation=cv2.INTER_AREA)
    return canvas


def corner_face_photo(h: int, w: int) -> tuple[np.ndarray, tuple[int, int]]:
    """demo/photos/astronaut.jpg shrunk to 160 px (dlib box ~30 px, face ~45 px wide) 10 px
    from the bottom-right corner of an h x w grey ramp with pixel noise; and where it went."""
    import cv2

    noise = np.random.default_rng(0).integers(-12, 13, (h, w, 1), dtype=np.int16)
    canvas = np.repeat((np.linspace(60, 200, w).astype(np.int16)[None, :, None] + noise)
                       .clip(0, 255).astype(np.uint8), 3, axis=2)
    face = np.asarray(Image.open(REPO / "demo" / "photos" / "astronaut.jpg").convert("RGB"))
    x, y = w - 170, h - 170
    canvas[y:y + 160, x:x + 160] = cv2.resize(face, (160, 160), interpolation=cv2.INTER_AREA)
    return canvas, (x, y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small-faces-only", action="store_true",
                    help="only the rows with a ~40 px face in a corner (no ../shared needed)")
    args = ap.parse_args()
    load_start = os.getloadavg()[0]
    if not args.small_faces_only:
        photo_1024 = np.asarray(Image.open(SHARED / "celebahq" / "000014.jpg").convert("RGB"))
        photos = {"1024x1024": photo_1024, "4000x3000 (12 MP)": photo_12mp(photo_1024)}
    else:
        photos = {}

    det = Detector()
    t = time.perf_counter()
    _ = det.predictor, det._detector
    rows = [("dlib model load (once per process)", time.perf_counter() - t)]
    for name, img in photos.items():
        t_det, faces = timed(lambda: det(img), args.repeat)
        h, w = img.shape[:2]
        rows.append((f"{name}: detect + landmarks + quality (faces from "
                     f"{det.smallest_face(h, w):.0f} px)", t_det))
        for size in (256, 1024):
            t_al, _ = timed(lambda: align_face(img, faces[0], size), args.repeat)
            rows.append((f"{name}: align {size} (supersample 4)", t_al))
            rows.append((f"{name}: detect + landmarks + align {size}", t_det + t_al))
        t_al1, _ = timed(lambda: align_face(img, faces[0], 256, supersample=1), args.repeat)
        rows.append((f"{name}: align 256 (supersample 1)", t_al1))
    # Small faces: the astronaut shrunk to 160 px (dlib box ~30 px, face ~45 px wide) near a
    # corner. min_face=80 is about the old behaviour (no small-face pass at 1200x900 before the
    # 12 MP budget pass; that pass reached 80 px at 12 MP, 113 px at 24 MP); min_face=40 the
    # tiled 2.2x pass, on 1 thread and on all workers.
    workers = default_workers()
    for (h, w), label in (((900, 1200), "1200x900"), ((3000, 4000), "4000x3000 (12 MP)"),
                          ((4000, 6000), "6000x4000 (24 MP)")):
        img, (x, y) = corner_face_photo(h, w)
        for min_face, n in ((80, workers), (40, 1), (40, workers)):
            d = Detector(min_face=min_face, workers=n)
            _ = d.predictor, d._hogs(n)
            t_s, found = timed(lambda: d(img), args.repeat)
            hit = any(x < f.box[0] < f.box[2] < x + 160 and y < f.box[1] < f.box[3] < y + 160
                      for f in found)
            rows.append((f"{label}, 40 px face in a corner: detect, min_face={min_face}, "
                         f"{n} thread(s): finds faces from {d.smallest_face(h, w):.0f} px, "
                         f"{len(d.tiles(h, w))} tiles; the corner face "
                         f"{'found' if hit else 'MISSED'}", t_s))
    for size in (256, 1024) if photos else ():
        face = det(photo_1024)[0]
        aligned = align_face(photo_1024, face, size)
        edited = 255 - aligned.image
        t_p, _ = timed(lambda: paste_back(photo_1024, aligned, edited), args.repeat)
        rows.append((f"paste-back per face, {size} crop (landmark mask + colour)", t_p))
        t_s, _ = timed(lambda: paste_back(photo_1024, aligned, edited, mask="square", color=False),
                       args.repeat)
        rows.append((f"paste-back per face, {size} crop (square mask, no colour)", t_s))
        t_q, _ = timed(lambda: paste_back(photo_1024, aligned, edited, poisson=True), args.repeat)
        rows.append((f"paste-back per face, {size} crop (+ Poisson)", t_q))

    import torch  # only to report the thread count others' benches use

    width = max(len(r[0]) for r in rows)
    print(f"{'stage'.ljust(width)}  seconds   (median of {args.repeat}; {torch.get_num_threads()} "
          f"torch threads, cv2 {__import__('cv2').getNumThreads()} threads, "
          f"{workers} detector threads; load average {load_start:.1f} -> "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print("-" * (width + 10))
    for label, secs in rows:
        print(f"{label.ljust(width)}  {secs:7.3f}")


if __name__ == "__main__":
    main()
