"""What the bench scripts share: the photos they run on and how they print a table."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def photos(n: int) -> list[Path]:
    """Up to n - 1 CelebA-HQ photos from ../shared (when present) plus the astronaut."""
    shared = ROOT.parent / "shared" / "data" / "celebahq"
    files = sorted(shared.glob("*.jpg"))[: max(n - 1, 0)] if shared.is_dir() else []
    return files + [ROOT / "demo" / "photos" / "astronaut.jpg"]


def fmt_row(cells, widths) -> str:
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))


def print_table(header, rows) -> None:
    """Columns padded to their widest cell, a dashed rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print(fmt_row(r, widths))
    sys.stdout.flush()
