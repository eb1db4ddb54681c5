"""What an edit changes outside the face in a JPEG photo, once written and decoded again.

Edits each photo (embedded model, encoder inverter: the inverter does not matter here), writes
it the way `realedit` does (the input's quantisation tables and subsampling) and, for
comparison, as the old default (quality 95, 4:4:4); then decodes both files and counts the
pixels outside the paste mask that differ from the decoded input. PNG output is checked to be
bit-exact there. Prints one row per photo.

    python bench/jpeg_promise.py [PHOTO ...]     # default: demo/photos/astronaut.jpg
"""
from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from realedit import Editor
from realedit.io import write_image

REPO = Path(__file__).resolve().parents[1]


def outside_change(src: np.ndarray, path: Path, outside: np.ndarray) -> tuple[float, int]:
    out = np.asarray(Image.open(path).convert("RGB")).astype(int)
    diff = np.abs(out - src.astype(int)).max(axis=2)[outside]
    return float((diff > 0).mean() * 100), int(diff.max())


def main(photos):
    editor = Editor.from_pretrained(inverter="encoder")
    print("| photo | output | outside mask: % pixels changed | max change | size / input |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for photo in photos:
            photo = Path(photo)
            res = editor.edit(photo, {"smile": 3}, keep=["gender"])
            outside = res.mask == 0
            src = res.source.rgb
            rows = {"jpeg, input's tables": write_image(Path(tmp) / "a.jpg", res.photo),
                    "jpeg, quality 95 4:4:4 (old)": write_image(
                        Path(tmp) / "b.jpg", replace(res.photo, jpeg_tables=None)),
                    "png": write_image(Path(tmp) / "c.png", res.photo)}
            for name, path in rows.items():
                if name == "png":
                    assert outside_change(src, path, outside)[1] == 0  # lossless: bit-exact
                pct, mx = outside_change(src, path, outside)
                ratio = path.stat().st_size / photo.stat().st_size
                print(f"| {photo.name} | {name} | {pct:.2f} | {mx} | {ratio:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or [REPO / "demo" / "photos" / "astronaut.jpg"])
