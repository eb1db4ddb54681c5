"""Measure what the bank's smile, age and pose edits do to PHOTOS, and calibrate their amounts.

    python scripts/calibrate_bank.py --bank weights/realedit-celeba64.directions \
        --photo-cache runs/celeba320_h20.pt --scorer-dir ../shared/models/attributes \
        --photos 48 --report runs/calibration.json [--write]

For each direction (and its gender-kept version), every cached photo (aligned crop + inverted
W+ code, built by scripts/fit_bank.py's photo_codes from ../shared/data/celeba) is edited by
latent steps of +-STEPS unit normals, the change pasted the way the product pastes it (the
generator's upsampled difference through the soft face mask), and the result is judged by
independent measures: the CelebA smile logit, the faceres age and P(male), head yaw in
degrees (dlib's 68 landmarks + a 3D head, realedit.evaluate.head_yaw), mouth width and
mouth-corner lift from the landmarks (in inter-ocular units: a smile is a shape change), and
dlib's identity descriptor distance (< 0.45 = same person). realedit.research.calibrate turns the
table into a per-direction scale (so that +-3 reaches the target effect where identity allows)
and a sensible range; --write stores them in the bank (vectors unchanged). A pose direction
whose positive steps turn heads to the subject's right (negative yaw) is flipped, so that
pose=+X always means "towards the image's right".
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_bank import as_photo_codes  # noqa: E402  (the same cache format)

from realedit import models  # noqa: E402
from realedit.edit import load_bank, save_bank  # noqa: E402
from realedit.research import get_scorer  # noqa: E402
from realedit.research.calibrate import calibrate  # noqa: E402
from realedit.research.learn import _steps, edited_crops  # noqa: E402
from realedit.research.scorers import FACE_BOX_IN_FFHQ, AgeGenderScorer, to_uint8  # noqa: E402

# The effect +-3 should have, in each measure's units (the "a person sees it" bar;
# --margin aims above it).
TARGETS = {"smile": ("smile", 2.0, "logit"), "age": ("age", 8.0, "years"),
           "pose": ("yaw", 8.0, "degrees")}


class Judge:
    """Independent measures of a batch of 256 px aligned crops (uint8 and [-1, 1] tensors)."""

    def __init__(self, scorer_dir):
        import dlib

        from realedit.align.dlib_models import dlib_model_path
        from realedit.evaluate import IdentityDescriptor
        self.ag = AgeGenderScorer(Path(scorer_dir) / "age_faceres.pt")
        self.smile = get_scorer("smile", scorer_dir=scorer_dir)
        self.predictor = dlib.shape_predictor(str(dlib_model_path("landmarks68")))
        self.ident = IdentityDescriptor()
        self.detector = dlib.get_frontal_face_detector()

    def rects(self, crops: np.ndarray):
        """One dlib rect per original crop (HOG, else the mean FFHQ face box), reused for its
        edits so landmark moves are the face's, not the detector's."""
        import dlib
        out = []
        for c in crops:
            dets = self.detector(c, 0)
            if dets:
                out.append(max(dets, key=lambda r: r.area()))
            else:
                s = c.shape[0]
                l, t, r, b = (int(round(v * s)) for v in FACE_BOX_IN_FFHQ)
                out.append(dlib.rectangle(l, t, r, b))
        return out

    def __call__(self, images: torch.Tensor, rects, ref=None) -> dict[str, np.ndarray]:
        from realedit.evaluate import head_yaw
        u8 = to_uint8(images)
        with torch.no_grad():
            ag = self.ag.predict(images)
            out = {"smile": np.asarray(self.smile(images), float), "age": ag["age"], "male": ag["male"]}
        lms, yaw, width, lift, desc = [], [], [], [], []
        for img, r in zip(u8, rects):
            lm = np.array([(p.x, p.y) for p in self.predictor(img, r).parts()], float)
            io = np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0))
            lms.append(lm)
            yaw.append(head_yaw(lm, (img.shape[1], img.shape[0])))
            width.append(np.linalg.norm(lm[54] - lm[48]) / io)
            # Corners above the lips' centre line (image y grows downwards): a smile lifts them.
            lift.append(((lm[62, 1] + lm[66, 1]) / 2 - (lm[48, 1] + lm[54, 1]) / 2) / io)
        out.update(yaw=np.array(yaw), mouth_width=np.array(width), corner_lift=np.array(lift))
        ref_lms = ref["_lms"] if ref is not None else lms
        out["_desc"] = np.stack([self.ident(img, lm) for img, lm in zip(u8, ref_lms)])
        out["_lms"] = lms
        if ref is not None:
            out["identity"] = np.linalg.norm(out["_desc"] - ref["_desc"], axis=1)
        return out


def measure(G, data, judge, rects, base, vec, layers, steps, batch=16):
    """{signed step: {measure: per-photo change}} for one direction (L, d) on ``layers``."""
    rows = {}
    for s in steps:
        for sign in (1, -1):
            step = sign * s
            parts = []
            for i in range(0, len(data), batch):
                part = data.subset(range(i, min(i + batch, len(data))))
                a = torch.full((len(part),), float(step))
                with torch.no_grad():
                    y = edited_crops(G, part, _steps(torch.as_tensor(vec, dtype=part.codes.dtype),
                                                     layers, a)).clamp(-1, 1)
                ref = {k: v[i:i + len(part)] for k, v in base.items()}
                parts.append(judge(y, rects[i:i + len(part)], ref))
            got = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if not k.startswith("_")}
            rows[step] = {k: v if k == "identity" else v - base[k] for k, v in got.items()}
    return rows


def summarise(rows, key):
    out = {}
    for step, r in sorted(rows.items()):
        sign = np.sign(step)
        eff = sign * r[key]
        out[step] = {"effect_mean": float(np.nanmean(eff)), "effect_q25": float(np.nanquantile(eff, 0.25)),
                     "moved_share": float(np.nanmean(eff > 0)),
                     "same_person": float(np.mean(r["identity"] < 0.45)),
                     "identity_mean": float(np.mean(r["identity"])),
                     "male_drift_ok": float(np.mean(np.abs(r["male"]) < 0.1)),
                     "smile": float(np.mean(r["smile"])), "age": float(np.mean(r["age"])),
                     "yaw": float(np.nanmean(r["yaw"])),
                     "mouth_width": float(np.mean(r["mouth_width"])),
                     "corner_lift": float(np.mean(r["corner_lift"]))}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="realedit-celeba64")
    ap.add_argument("--bank", default="weights/realedit-celeba64.directions.json")
    ap.add_argument("--photo-cache", default=None,
                    help="crops + codes to measure on (not needed with --from-report)")
    ap.add_argument("--photos", type=int, default=48, help="cached photos to measure on (from the end)")
    ap.add_argument("--scorer-dir", required=True)
    ap.add_argument("--steps", default="1.5,3,4.5,6,9,12", help="latent steps (unit normals)")
    ap.add_argument("--only", default="", help="labels to measure, e.g. smile,smile|gender")
    ap.add_argument("--layers", action="append", default=[], metavar="LABEL=SPEC",
                    help="measure LABEL on other W+ layers (e.g. pose=0-3); --write stores them")
    ap.add_argument("--report", default="runs/calibration.json")
    ap.add_argument("--write", action="store_true", help="store scales and ranges in --bank")
    ap.add_argument("--margin", type=float, default=0.2,
                    help="aim this much above each target, for photos the calibration never saw")
    ap.add_argument("--from-report", nargs="*", default=None, metavar="JSON",
                    help="use these earlier reports instead of measuring (a direction in several: "
                         "their tables are merged and calibrated again); --write stores them")
    args = ap.parse_args(argv)
    if args.from_report is not None:
        report = {}
        for path in args.from_report:
            for label, r in json.loads(Path(path).read_text()).items():
                if label in report:  # the same direction at more steps: one finer table
                    r = dict(r, table={**report[label]["table"], **r["table"]})
                report[label] = r
        for label, r in report.items():
            table = {float(k): v for k, v in r["table"].items()}
            r["target"] = TARGETS[label.partition("|")[0]][1] * (1 + args.margin)
            r["calibration"] = calibrate(
                [abs(k) for k in table], {k: t["effect_mean"] for k, t in table.items()},
                {k: t["same_person"] for k, t in table.items()}, target=r["target"]).as_dict()
        for label, r in report.items():
            c = r["calibration"]
            print(f"{label}: scale {c['scale']:.3g} range {c['amount_range']:.3g} per unit "
                  f"{c['per_unit']:+.3g} {r['unit']} reached={c['reached']}")
        if args.write:
            write(load_bank(args.bank), report, args)
        return
    if args.photo_cache is None:
        ap.error("--photo-cache is needed to measure (or give --from-report)")
    torch.set_grad_enabled(False)
    G = models.load(args.model)
    data = as_photo_codes(G, torch.load(args.photo_cache, weights_only=True))
    data = data.subset(range(len(data) - args.photos, len(data)))  # learning uses the first ones
    judge = Judge(args.scorer_dir)
    u8 = to_uint8(data.crops)
    rects = judge.rects(u8)
    base = judge(data.crops, rects)
    steps = [float(s) for s in args.steps.split(",")]
    bank = load_bank(args.bank)
    wanted = [("smile", ()), ("smile", ("gender",)), ("age", ()), ("age", ("gender",)), ("pose", ())]
    if args.only:
        keep = set(args.only.split(","))
        wanted = [w for w in wanted if (w[0] + ("|" + ",".join(w[1]) if w[1] else "")) in keep]
    report = {}
    layer_override = dict(item.split("=", 1) for item in args.layers)
    for name, keep in wanted:
        d = bank.direction(name, keep=keep, model=args.model, space=("wp", "w"))
        if d.label in layer_override:
            d = d.with_layers(layer_override[d.label])
        vec = np.broadcast_to(d.vector, (G.num_ws, d.dim))
        layers = d.layers or tuple(range(G.num_ws))
        t0 = time.perf_counter()
        rows = measure(G, data, judge, rects, base, vec, layers, steps)
        key, target, unit = TARGETS[name]
        flip = False
        if name == "pose":  # +X turns towards the image's right (positive yaw)
            flip = np.nanmean(rows[max(steps)]["yaw"]) < 0
            if flip:
                rows = {-s: r for s, r in rows.items()}
        table = summarise(rows, key)
        target *= 1 + args.margin
        cal = calibrate(steps, {s: t["effect_mean"] for s, t in table.items()},
                        {s: t["same_person"] for s, t in table.items()}, target=target)
        report[d.label] = {"table": table, "calibration": cal.as_dict(), "flip": bool(flip),
                           "photos": args.photos,
                           "layers": None if d.layers is None else list(d.layers),
                           "unit": unit, "target": target, "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{d.label}: scale {cal.scale:.3g} range {cal.amount_range:.3g} per unit "
              f"{cal.per_unit:+.3g} {unit} reached={cal.reached} flip={flip}", flush=True)
        for s, t in table.items():
            print(f"  step {s:+5.1f}: {key} {t['effect_mean']:+.2f} (q25 {t['effect_q25']:+.2f}, moved "
                  f"{t['moved_share']:.2f}) same {t['same_person']:.2f} id {t['identity_mean']:.3f} "
                  f"male_ok {t['male_drift_ok']:.2f} width {t['mouth_width']:+.3f} lift "
                  f"{t['corner_lift']:+.3f} yaw {t['yaw']:+.1f}", flush=True)
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=1))
    if args.write:
        write(bank, report, args)


def write(bank, report, args):
    """Store each measured calibration on its bank entry. A projection (e.g. smile|gender,
    computed from the plain smile) has no entry of its own: it calibrates the plain direction,
    whose scale the projection inherits, unless the plain direction was measured itself."""
    for label, r in report.items():
        name, _, cond = label.partition("|")
        conds = tuple(c for c in cond.split(",") if c)
        try:
            d = bank.get(name, model=args.model, conditions=conds)
        except Exception:  # a projection, not a stored entry
            if name in report:
                continue
            d = bank.get(name, model=args.model)
        cal = r["calibration"]
        stats = dict(d.stats, calibration={
            "per_unit": cal["per_unit"], "unit": r["unit"], "target_at_3": r["target"],
            "reached": cal["reached"], "measured_as": r.get("measured_as", label), "photos": r.get("photos", args.photos),
            "rule": "scale: latent step where the mean asked-way effect reaches the target, / 3, "
                    "unless identity (dlib < 0.45 on 95 %) breaks first; range: last safe step"})
        if args.photo_cache:
            stats["calibration"]["cache"] = str(args.photo_cache)
        vec = -d.vector if r["flip"] else d.vector
        bank.add(replace(d, vector=vec, stats=stats, scale=cal["scale"],
                         amount_range=cal["amount_range"],
                         layers=tuple(r["layers"]) if r.get("layers") else d.layers))
        print(f"{d.label}: scale {cal['scale']:.3g}, range {cal['amount_range']:.3g}"
              + (" (vector flipped)" if r["flip"] else ""))
    save_bank(bank, args.bank)
    print(f"wrote {args.bank}")


if __name__ == "__main__":
    main()
