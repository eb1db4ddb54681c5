"""Build the embedded model's training set: FFHQ-align every photo in ../shared/data/celeba.

Each photo is aligned with realedit's own detector + FFHQ aligner at the training resolution.
Where no face is accepted, the photo's own (CelebA-aligned) crop is used instead, centre-cropped
to a square around where CelebA puts the face, and counted. Horizontal flips are applied at
training time, not stored.

    python scripts/prepare_celeba.py --size 64 --out /work/data/celeba64
writes OUT.npy (N, size, size, 3) uint8, OUT/ with one PNG per photo, and OUT.json with counts.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from realedit.align import align_face, detect_faces


def celeba_fallback(rgb: np.ndarray, size: int) -> np.ndarray:
    # CelebA aligned crops (178x218) centre the face slightly above the middle; a 178-px square
    # starting 20 px down covers roughly the FFHQ framing.
    h, w = rgb.shape[:2]
    top = max(0, min(h - w, 20))
    sq = rgb[top:top + w, :w]
    return np.asarray(Image.fromarray(sq).resize((size, size), Image.LANCZOS))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[2] / "shared/data/celeba/images"))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args(argv)
    files = sorted(Path(args.src).glob("*.jpg"))
    if args.limit:
        files = files[:args.limit]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    crops, fallback, t0 = [], [], time.time()
    for i, f in enumerate(files):
        rgb = np.asarray(Image.open(f).convert("RGB"))
        faces = detect_faces(rgb)
        if faces:
            crop = align_face(rgb, faces[0], args.size).image
        else:
            crop = celeba_fallback(rgb, args.size)
            fallback.append(f.name)
        crops.append(crop)
        Image.fromarray(crop).save(out_dir / (f.stem + ".png"))
        if i % 500 == 0:
            print(f"{i}/{len(files)} {time.time() - t0:.0f}s fallback={len(fallback)}", file=sys.stderr)
    np.save(str(out_dir) + ".npy", np.stack(crops))
    stats = {"photos": len(files), "aligned": len(files) - len(fallback), "fallback": len(fallback),
             "fallback_files": fallback, "size": args.size, "seconds": round(time.time() - t0, 1)}
    Path(str(out_dir) + ".json").write_text(json.dumps(stats, indent=2))
    print(json.dumps({k: v for k, v in stats.items() if k != "fallback_files"}))


if __name__ == "__main__":
    main()
