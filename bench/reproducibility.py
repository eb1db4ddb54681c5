"""How far an edit moves when only the float summation order changes: another thread count,
another batch size (the local and Ray engines of `realedit batch` differ in both), and a rerun
with everything fixed.

    python bench/reproducibility.py [--photos 8] [--inverters hybrid encoder]

Per photo (astronaut + CelebA-HQ from ../shared), the reference is one face per batch on one
torch thread; each comparison changes one thing. Printed per comparison and inverter: the
largest latent difference, the largest relative difference of the inversion's final loss, and
inside the paste mask of `smile=+3 --keep gender` (default warp transfer) the mean and largest
pixel difference (0..255 levels) and the share of pixels more than 10 levels apart (median over
photos, max in brackets).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import photos, print_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--inverters", nargs="+", default=["hybrid", "encoder"])
    args = ap.parse_args()

    import numpy as np

    from realedit import Editor
    from realedit.threads import Governor

    files = photos(args.photos)
    rows = []
    for inverter in args.inverters:
        ed = Editor.from_pretrained("realedit-celeba64", inverter=inverter)
        prepared = [ed.prepare(p) for p in files]

        def run(threads, batch):
            ed.threads = Governor(threads)
            invs = ed.invert_prepared(prepared, batch=batch)
            return [(inv, ed.apply(inv, {"smile": 3}, ["gender"])) for inv in invs]

        ref = run(1, 1)
        for label, threads, batch in (("rerun, same settings", 1, 1), ("2 threads", 2, 1),
                                      (f"batch of {len(files)}", 1, len(files))):
            other = run(threads, batch)
            lat, loss, mean, mx, share = [], [], [], [], []
            for (ia, ra), (ib, rb) in zip(ref, other):
                fa, fb = ia.faces[0], ib.faces[0]
                lat.append(float((fa.latent - fb.latent).abs().max()))
                loss.append(abs(fa.loss - fb.loss) / max(abs(fa.loss), 1e-12))
                m = np.maximum(ra.mask, rb.mask) > 0
                d = np.abs(ra.photo.rgb.astype(int) - rb.photo.rgb.astype(int)).max(axis=2)[m]
                mean.append(float(d.mean()))
                mx.append(int(d.max()))
                share.append(float((d > 10).mean()))

            def cell(v, fmt):
                return f"{fmt.format(statistics.median(v))} ({fmt.format(max(v))})"

            rows.append([label, inverter, cell(lat, "{:.3g}"), cell(loss, "{:.2%}"),
                         cell(mean, "{:.2f}"), cell(mx, "{:.0f}"), cell(share, "{:.2%}")])
    print(f"\n{len(files)} photos; reference: 1 thread, one face per batch; smile=+3 --keep gender, "
          "inside the paste mask; median over photos (max)")
    print_table(["changed", "inverter", "latent max |d|", "loss rel d", "pixels mean d",
                 "pixels max d", "pixels > 10 levels"], rows)


if __name__ == "__main__":
    main()
