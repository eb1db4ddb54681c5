"""Speed of the align and blend stages on this machine (prints a table).

    python bench/align.py [--repeat 3]

Rows: detect (HOG + 68 landmarks + quality check) and FFHQ align for a 1024 px CelebA-HQ
photo and a composed 12 MP (4000x3000) photo, at 256 and 1024 output; paste-back per face
for 256 and 1024 crops (landmark mask + colour correction; and with Poisson). The dlib model
load is timed separately (once per process). Times are the median of --repeat runs.
"""
from __future__ import annotations

import argparse
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


def small_face_photo() -> np.ndarray:
    """demo/photos/astronaut.jpg shrunk to 160 px (face ~40 px) in a corner of 1200x900."""
    canvas = Image.new("RGB", (1200, 900), (120, 125, 130))
    face = Image.open(REPO / "demo" / "photos" / "astronaut.jpg").convert("RGB")
    canvas.paste(face.resize((160, 160), Image.LANCZOS), (1030, 730))
    return np.asarray(canvas)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    photo_1024 = np.asarray(Image.open(SHARED / "celebahq" / "000014.jpg").convert("RGB"))
    photos = {"1024x1024": photo_1024, "4000x3000 (12 MP)": photo_12mp(photo_1024)}

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
    # Small faces: the detector magnifies the photo (2x: ~40 px faces) within its pixel budget;
    # the old scheme (no upsampling above 1024 px, ~80 px faces) for comparison.
    corner = small_face_photo()
    old = Detector(upsample=0)
    _ = old.predictor, old._detector
    for label, d in (("auto, 2x within 12 MP budget", det), ("no upsampling (before)", old)):
        t_s, found = timed(lambda: d(corner), args.repeat)
        rows.append((f"1200x900, 160 px astronaut in a corner: detect, {label}: "
                     f"{len(found)} face(s), smallest findable {d.smallest_face(900, 1200):.0f} px", t_s))
    face = det(photo_1024)[0]
    for size in (256, 1024):
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
    print(f"{'stage'.ljust(width)}  seconds   (median of {args.repeat}; "
          f"{torch.get_num_threads()} torch threads, cv2 {__import__('cv2').getNumThreads()} threads)")
    print("-" * (width + 10))
    for label, secs in rows:
        print(f"{label.ljust(width)}  {secs:7.3f}")


if __name__ == "__main__":
    main()
