"""Measure what the bank's directions do to photos *through the product's own path*
(``Editor.apply``: the default warp transfer and paste), in latent unit normals, and write a
report that ``scripts/calibrate_bank.py --from-report`` turns into per-direction scales.

    python scripts/calibrate_photos.py ../shared/data/celebahq/000014.jpg ... \
        --scorer-dir ../shared/models/attributes --report runs/calibration_warp.json
    python scripts/calibrate_bank.py --from-report runs/calibration_warp.json \
        --photo-cache none --scorer-dir ../shared/models/attributes --margin 0 --write

calibrate_bank.py measures on cached crops with the generator's difference pasted through a
soft mask (the residual transfer); under the warp transfer, which takes the face-wide tone
cast out, the same latent step does less to the scorers, so the scales must be measured here.
Judges are the ones `realedit eval` uses (smile logit, age in years, head yaw in degrees from
the 68 landmarks, dlib identity distance). An edit the broken-face guard refuses counts as
"not the same person" at that step. Use photos the evaluation does not use.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from realedit import evaluate as ev
from realedit.io import expand_inputs
from realedit.edit import direction_spaces
from realedit.errors import RealeditError
from realedit.pipeline import Editor

UNITS = {"smile": "logit", "age": "years", "pose": "degrees"}


def measure(editor, inverted, name, keep, steps, scorer, ident, kept_scorers=None):
    """{signed step: {effect_mean, effect_q25, moved_share, same_person, identity_mean,
    mouth_width, kept_ok}}, the effect taken the asked way (positive = it worked);
    mouth_width: mean relative change of the landmarks' mouth width (a smile is a shape
    change, which a colour cast cannot fake); kept_ok: {attr: share of photos whose kept
    attribute (e.g. P(male) for --keep gender) moved less than the eval's limit}."""
    kept_scorers = kept_scorers or {}
    # the direction Editor.apply moves along (a stored learned entry when there is one)
    d = editor.bank.direction(name, keep=keep, model=editor.model_name,
                              space=direction_spaces(inverted[0].space))
    table = {}
    for step in [s for a in steps for s in (a, -a)]:
        eff, ids, mouth, kept = [], [], [], {a: [] for a in kept_scorers}
        for inv in inverted:
            row = ev.PhotoReport(photo="", faces=1)
            try:
                res = editor.apply(inv, {name: step / d.scale}, keep)
            except RealeditError:  # a broken face: this step is past what the model gives
                eff.append(np.nan)
                ids.append(np.inf)
                mouth.append(np.nan)
                for a in kept:
                    kept[a].append(False)
                continue
            ev.measure_face(res.source.rgb, res.photo.rgb, res.faces[0].face, res.mask,
                            {name: scorer, **kept_scorers}, {name: step}, ident, row)
            b, a = row.target[name]
            eff.append((a - b) * np.sign(step))
            ids.append(row.identity_distance)
            mouth.append(row.mouth[1] / row.mouth[0] - 1)
            for attr in kept:
                b, a = row.kept[attr]
                kept[attr].append(abs(a - b) < ev.DEFAULT_MAX_DRIFT.get(attr, np.inf))
        e, i = np.asarray(eff, float), np.asarray(ids, float)
        ok = e[np.isfinite(e)]
        table[step] = {"effect_mean": float(ok.mean()) if ok.size else float("nan"),
                       "effect_q25": float(np.percentile(ok, 25)) if ok.size else float("nan"),
                       "moved_share": float((ok > 0).sum() / len(e)),
                       "same_person": float((i < ev.SAME_PERSON).mean()),
                       "identity_mean": float(i[np.isfinite(i)].mean()) if np.isfinite(i).any()
                       else float("nan"),
                       "mouth_width": float(np.nanmean(mouth)) if np.isfinite(mouth).any()
                       else float("nan"),
                       "kept_ok": {a: float(np.mean(v)) for a, v in kept.items()},
                       "identity": [round(float(x), 3) for x in i]}  # per photo, in order
        t = table[step]
        print(f"  {d.label} step {step:+5.1f}: {t['effect_mean']:+.2f} {UNITS[name]} (q25 "
              f"{t['effect_q25']:+.2f}, moved {t['moved_share']:.2f}) same {t['same_person']:.2f} "
              f"id {t['identity_mean']:.3f} mouth {t['mouth_width']:+.3f}"
              + "".join(f" {a}_ok {v:.2f}" for a, v in t["kept_ok"].items()), flush=True)
    return d, table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--model", default="realedit-celeba64")
    ap.add_argument("--scorer-dir", required=True)
    ap.add_argument("--steps", default="3,6,9,12", help="latent steps (unit normals)")
    ap.add_argument("--only", default="smile|gender,smile,age|gender,age,pose",
                    help="labels to measure")
    ap.add_argument("--report", default="runs/calibration_warp.json")
    args = ap.parse_args(argv)
    editor = Editor.from_pretrained(args.model)
    photos = expand_inputs(args.photos)
    inverted = []
    for p, inv in zip(photos, editor.invert_many(photos)):
        if isinstance(inv[1], BaseException):
            print(f"skipped {p}: {inv[1]}", file=sys.stderr)
        else:
            inverted.append(inv[1])
    if not inverted:
        sys.exit("no photo could be inverted")
    ident = ev.IdentityDescriptor()
    steps = [float(s) for s in args.steps.split(",")]
    report = {}
    for label in args.only.split(","):
        name, _, cond = label.partition("|")
        keep = tuple(c for c in cond.split(",") if c)
        scorer = ev.load_scorer(ev.DEFAULT_SCORERS[name], scorer_dir=args.scorer_dir)
        t0 = time.perf_counter()
        kept_scorers = {a: ev.load_scorer(ev.DEFAULT_SCORERS[a], scorer_dir=args.scorer_dir)
                        for a in keep if a in ev.DEFAULT_SCORERS}
        d, table = measure(editor, inverted, name, keep, steps, scorer, ident, kept_scorers)
        report[d.label] = {"table": {str(k): v for k, v in table.items()}, "flip": False,
                           "photos": len(inverted), "unit": UNITS[name],
                           "layers": None if d.layers is None else list(d.layers),
                           "measured_as": f"{d.label} through Editor.apply (detail=warp) on "
                                          f"{len(inverted)} photos: "
                                          + ", ".join(Path(p).stem for p in photos),
                           "seconds": round(time.perf_counter() - t0, 1)}
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.report}")


if __name__ == "__main__":
    main()
