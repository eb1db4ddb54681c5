"""Does pivotal tuning pay? hybrid vs pti on real photos with the embedded model.

    python bench/pti.py [--photos 9] [--threads 1] [--scorer-dir ../shared/models/attributes]
                        [--detail residual warp replace]
                        [--pti tune_steps=40] [--pti tune_steps=80,locality_weight=0.5] ...

Per inverter (hybrid, then pti with each --pti setting; default: pti's defaults), on the first
photos of ../shared/data/celebahq plus demo/photos/astronaut.jpg, largest face:
  reconstruction: MSE of G(inverted) vs the aligned photo crop at the generator's resolution
    ([-1, 1] units), and dlib's identity distance between the crop (256 px) and G(inverted)
    upsampled to it (same landmarks; < 0.6 same person);
  edit smile=+3 --keep gender (per --detail mode; residual, the default, unless asked): smile logit change and P(male)
    drift with the CelebA / age-gender scorers (--scorer-dir; research-only files), identity
    distance photo before vs after (as `realedit eval`);
  seconds: invert (detect+align+invert) and the whole photo (plus edit+paste), one thread;
    wall time and CPU time of this process (with one thread, CPU time is what the wall time
    would be on an idle machine; wall time inflates when other jobs share the cores).
Reading and saving the photo are not included (bench/edit.py has the end-to-end seconds).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realedit.align import align_face  # noqa: E402
from realedit.errors import RealeditError  # noqa: E402
from realedit.evaluate import CROP, IdentityDescriptor  # noqa: E402
from realedit.invert.pti import TuneOptions  # noqa: E402
from realedit.pipeline import Editor, crop_to_tensor  # noqa: E402
from bench.common import photos, print_table  # noqa: E402


def parse_setting(text: str) -> dict:
    out = {}
    for part in filter(None, text.split(",")):
        k, _, v = part.partition("=")
        if k not in TuneOptions.__dataclass_fields__:
            raise SystemExit(f"unknown pti option {k!r}; choose from {', '.join(TuneOptions.__dataclass_fields__)}")
        out[k] = type(getattr(TuneOptions(), k))(float(v))
    return out


def to_uint8(img: torch.Tensor, size: int) -> np.ndarray:
    x = F.interpolate(img.float(), size=(size, size), mode="bicubic", align_corners=False)
    return ((x[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()


def measure(editor: Editor, files, scorers, ident, details):
    """{detail mode: [per-photo row]}: one inversion per photo, one edit per detail mode."""
    out = {d: [] for d in details}
    for f in files:
        t0, c0 = time.perf_counter(), time.process_time()
        inv = editor.invert(f)
        t_inv, c_inv = time.perf_counter() - t0, time.process_time() - c0
        fi = inv.faces[0]
        target = crop_to_tensor(fi.aligned.image, editor.G.resolution)
        base = {"photo": f.name, "mse": float((fi.reconstruction - target).square().mean()),
                "invert_s": t_inv, "invert_cpu": c_inv}
        # identity of the reconstruction: crop and G(inverted), both at 256, crop landmarks
        crop = align_face(inv.photo.rgb, fi.face, CROP)
        lm = crop.to_crop(fi.face.landmarks)
        base["recon_id"] = float(np.linalg.norm(ident(crop.image, lm) - ident(to_uint8(fi.reconstruction, CROP), lm)))
        for detail in details:
            row = dict(base)
            t1, c1 = time.perf_counter(), time.process_time()
            try:
                res = editor.apply(inv, {"smile": 3.0}, keep=["gender"], detail=detail)
            except RealeditError as exc:  # e.g. the broken-face guard: report, go on
                print("   ", detail, f.name, "refused:", exc, flush=True)
                continue
            row["total_s"] = t_inv + time.perf_counter() - t1
            row["total_cpu"] = c_inv + time.process_time() - c1
            if scorers:
                before = align_face(res.source.rgb, fi.face, CROP).image
                after = align_face(res.photo.rgb, fi.face, CROP).image
                x = torch.cat([crop_to_tensor(before, CROP), crop_to_tensor(after, CROP)])
                for attr, sc in scorers.items():
                    s = np.asarray(sc(x), dtype=float)
                    row[attr] = float(s[1] - s[0])
            d0 = ident(res.source.rgb, fi.face.landmarks)
            d1 = ident(res.photo.rgb, fi.face.landmarks)
            row["edit_id"] = float(np.linalg.norm(d0 - d1))
            out[detail].append(row)
            print("   ", detail, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
                  flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scorer-dir", default=str(ROOT.parent / "shared" / "models" / "attributes"))
    ap.add_argument("--pti", action="append", default=None, metavar="K=V,...",
                    help="a pti setting (TuneOptions fields); repeat to compare several")
    ap.add_argument("--skip-hybrid", action="store_true")
    ap.add_argument("--detail", nargs="+", default=["residual"], choices=["residual", "warp", "replace"],
                    help="transfer modes to measure the edit with (one inversion serves all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    files = photos(args.photos)
    scorers = {}
    if Path(args.scorer_dir).is_dir():
        from realedit.research import get_scorer
        scorers = {"smile": get_scorer("smile", scorer_dir=args.scorer_dir),
                   "gender": get_scorer("gender", scorer_dir=args.scorer_dir)}
    else:
        print(f"(no scorers at {args.scorer_dir}: edit columns skipped)", file=sys.stderr)
    ident = IdentityDescriptor()
    runs = [] if args.skip_hybrid else [("hybrid", None)]
    runs += [("pti", parse_setting(s)) for s in (args.pti or [""])]
    table = []
    for name, setting in runs:
        editor = Editor.from_pretrained("realedit-celeba64", inverter=name)
        if setting:
            editor.inverter.topts = TuneOptions(**{**TuneOptions().__dict__, **setting})
        label = name if setting is None else "pti " + (",".join(f"{k}={v:g}" for k, v in setting.items()) or "(defaults)")
        print(label, flush=True)
        editor.invert(files[0])  # warm-up: dlib models, first-call overheads
        for detail, rows in measure(editor, files, scorers, ident, args.detail).items():
            def col(k, fn=statistics.mean):
                v = [r[k] for r in rows if k in r]
                return fn(v) if v else float("nan")
            smile_up = np.mean([r["smile"] > 0 for r in rows]) if scorers else float("nan")
            g_ok = np.mean([abs(r["gender"]) < 0.1 for r in rows]) if scorers else float("nan")
            table.append([label, detail, len(rows), f"{col('mse'):.4f}", f"{col('recon_id'):.3f}",
                          f"{col('smile'):+.2f}", f"{smile_up:.2f}",
                          f"{col('gender', lambda v: statistics.mean(map(abs, v))):.3f}",
                          f"{g_ok:.2f}", f"{col('edit_id'):.3f}", f"{col('invert_s', statistics.median):.2f}",
                          f"{col('total_s', statistics.median):.2f}", f"{col('total_cpu', statistics.median):.2f}"])
    header = ["inverter", "detail", "photos", "recon MSE", "recon id dist", "smile logit +3", "smile up",
              "|dP(male)|", "dP<0.1", "edit id dist", "invert s (med)", "photo s (med)",
              "photo CPU s (med)"]
    print(f"\nrealedit-celeba64, {len(files)} photos, smile=+3 --keep gender, {args.threads} thread(s)")
    print_table(header, table)


if __name__ == "__main__":
    main()
