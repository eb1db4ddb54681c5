"""A before | after picture grid: one row per photo, the original face then one column per
edit, each cell the same aligned crop (the original's FFHQ quad) cut from the photo as
realedit wrote it -- so what a reader sees is what reaches the photo, ghosts in hair and
background included.

    image, skipped = edit_grid(editor, photos)      # default: smile +-3, age +3, pose +3
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

# The README grid: smile up and down, age, pose -- the edits the issue asks a reader to see.
DEFAULT_GRID_EDITS = (({"smile": 3.0}, ("gender",)), ({"smile": -3.0}, ("gender",)),
                      ({"age": 3.0}, ("gender",)), ({"pose": 3.0}, ()))
HEADER = 40          # px of label strip above the columns
BORDER = 4           # px of white between cells


def edit_label(edits: Mapping[str, float], keep: Sequence[str] = ()) -> str:
    """{"smile": 3}, ["gender"] -> "smile +3, keep gender"."""
    text = ", ".join(f"{a} {x:+g}" for a, x in edits.items())
    return text + (f", keep {', '.join(keep)}" if keep else "")


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)   # scalable since Pillow 10.1
    except TypeError:
        return ImageFont.load_default()


def compose_grid(rows: Sequence[Sequence[np.ndarray | None]], col_labels: Sequence[str],
                 row_labels: Sequence[str] = (), cell: int = 256) -> np.ndarray:
    """Cells (cell x cell x 3 uint8, None for a failed edit: grey with "failed") on white,
    column labels in a header strip, row labels on each row's first cell. Returns RGB uint8."""
    from PIL import Image, ImageDraw

    n_rows, n_cols = len(rows), len(col_labels)
    step = cell + BORDER
    canvas = Image.new("RGB", (n_cols * step + BORDER, HEADER + n_rows * step + BORDER), "white")
    draw = ImageDraw.Draw(canvas)
    head, small = _font(max(12, cell // 14)), _font(max(10, cell // 20))
    for c, label in enumerate(col_labels):
        x = BORDER + c * step + cell // 2
        draw.text((x, HEADER // 2), label, fill="black", font=head, anchor="mm")
    for r, row in enumerate(rows):
        y = HEADER + BORDER + r * step
        for c, img in enumerate(row):
            x = BORDER + c * step
            if img is None:
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(128, 128, 128))
                draw.text((x + cell // 2, y + cell // 2), "failed", fill="white", font=head,
                          anchor="mm")
                continue
            canvas.paste(Image.fromarray(np.asarray(img, np.uint8)).resize((cell, cell)), (x, y))
        if r < len(row_labels) and row_labels[r]:
            box = draw.textbbox((BORDER + 4, y + 4), row_labels[r], font=small)
            draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill="black")
            draw.text((BORDER + 4, y + 4), row_labels[r], fill="white", font=small)
    return np.asarray(canvas)


def edit_grid(editor, photos: Sequence, runs=DEFAULT_GRID_EDITS, *, cell: int = 256,
              apply_options: Mapping | None = None, progress=None):
    """Invert each photo once (largest face), apply every (edits, keep) run, and lay the
    aligned crops out as a grid. Returns (RGB array, [(photo, reason)] for photos left out
    because no face could be edited); None instead of the array when every photo failed."""
    from pathlib import Path

    from .align import align_face
    from .errors import RealeditError

    def cells(inverted):
        face = inverted.faces[0].face
        row = [align_face(inverted.photo.rgb, face, cell).image]
        for edits, keep in runs:
            try:
                out = editor.apply(inverted, edits, keep, **(apply_options or {})).photo.rgb
                row.append(align_face(out, face, cell).image)
            except RealeditError:
                row.append(None)       # e.g. a broken face refused: shown as "failed"
        return row

    rows, names, skipped = [], [], []
    # eval's batched path: faces of several photos inverted together, each photo's own error
    # handed back with it
    for i, (photo, inverted) in enumerate(editor.invert_many(photos)):
        if isinstance(inverted, RealeditError):
            skipped.append((str(photo), str(inverted)))
        elif isinstance(inverted, BaseException):
            raise inverted
        else:
            rows.append(cells(inverted))
            names.append(Path(str(photo)).name)
        if progress:
            progress(i + 1, len(photos))
    if not rows:
        return None, skipped
    labels = ["original", *(edit_label(e, k) for e, k in runs)]
    return compose_grid(rows, labels, names, cell), skipped
