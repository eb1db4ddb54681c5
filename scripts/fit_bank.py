"""Fit the embedded model's direction bank: age, gender, smile, pose, plus named SeFa directions.

    python scripts/fit_bank.py --model realedit-celeba64 --samples 3000 \
        --scorer-dir ../shared/models/attributes -o weights/realedit-celeba64.directions

Same method as `realedit directions fit` (sample z, w = mapping(z), synthesise, score, keep the
extremes, 70/30 split, linear SVM), but the samples are drawn and synthesised ONCE and every
scorer reads the same images (the age/gender net gives both in one pass), which is what makes a
whole bank affordable on 2 cores. The scorers are research-only files passed by path; nothing
of them is written into the bank.

With --learn (default: age), the bank also gets a W+ direction per named attribute, conditioned
on gender, learned on real photos (realedit.research.learn): --photos are aligned and inverted once
(cached in --photo-cache), 80 % to learn on, 20 % to choose the step; the start is the
conditional SVM direction on its searched layer window. `--attr age=+3 --keep gender` on a W+
code then uses the learned entry; plain `--attr age=+3` still uses the SVM direction.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from realedit import models
from realedit.edit import (Direction, DirectionBank, condition, format_layers, parse_layers,
                           save_bank)
from realedit.research import fit_boundary, get_scorer, sefa
from realedit.research.layers import search_layers
from realedit.research.learn import PhotoCodes, learn_direction
from realedit.research.scorers import AgeGenderScorer
from realedit.errors import RealeditError

SHARED = Path(__file__).resolve().parents[2] / "shared"


def sample(G, n, batch=64, seed=0):
    """w codes (n, w_dim) and images (n, 3, R, R) in [-1, 1], deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    ws, imgs = [], []
    with torch.no_grad():
        for s in range(0, n, batch):
            z = torch.randn(min(batch, n - s), G.z_dim, generator=g)
            w = G.mapping(z)
            ws.append(w[:, 0])
            imgs.append(G.synthesis(w, noise="const"))
    return torch.cat(ws).numpy().astype(np.float64), torch.cat(imgs)


def choose_layers(G, bank, args, ag):
    """Restrict age and smile to the W+ layers where, with gender kept, they most often move
    their score while P(male) moves < 0.1 (realedit.research.layers); the table goes in stats."""
    gender = AgeGenderScorer(Path(args.scorer_dir) / "age_faceres.pt", "male")
    for attr in ("age", "smile"):
        if attr not in bank or "gender" not in bank:
            continue
        primal = bank.get(attr, model=args.model, space="w")
        cond = condition(primal, [bank.get("gender", model=args.model, space="w")])
        target = ag if attr == "age" else get_scorer("smile", scorer_dir=args.scorer_dir)
        t0 = time.perf_counter()
        layers, table = search_layers(G, cond, target, {"gender": gender}, {"gender": 0.1},
                                      samples=args.layer_search, seed=args.seed + 1)
        stats = dict(primal.stats, layer_search=[r.as_dict() for r in table],
                     layer_search_rule="age/smile +3 with gender kept: share of held-out samples "
                                       "where the score moved and P(male) moved < 0.1",
                     seconds_layer_search=round(time.perf_counter() - t0, 1))
        bank.add(replace(primal, layers=layers, stats=stats))
        best = next(r for r in table if r.layers == layers)
        print(f"{attr}: layers {format_layers(layers)} (success {best.success:.3f} vs "
              f"{table[0].success:.3f} on all layers)", flush=True)


def align_photos(photos, count):
    """Aligned 256 px crops of the first ``count`` photos (largest face; photos without a
    usable face are skipped), their paste masks (uint8) and file names."""
    from realedit.align import align_face
    from realedit.align.select import pick_faces
    from realedit.blend.paste import crop_mask
    from realedit.io import read_image

    crops, masks, names = [], [], []
    for p in sorted(Path(photos).glob("*.jpg"))[:count]:
        rgb = read_image(p).rgb
        try:
            face = pick_faces(rgb, "largest", min_size=32, where=str(p))[0][0]
        except RealeditError:
            continue
        a = align_face(rgb, face, 256)
        crops.append(a.image)
        masks.append(np.round(crop_mask(a, 256) * 255).astype(np.uint8))
        names.append(p.name)
    print(f"aligned {len(crops)} of {count} photos", flush=True)
    return np.stack(crops), np.stack(masks), names


def photo_codes(model, photos, count, steps, cache, batch=16) -> dict:
    """Crops, masks and hybrid W+ codes (the product's own detect -> align -> invert path,
    batched) of the photos to learn on. Cached in ``cache``."""
    if cache and Path(cache).is_file():
        return torch.load(cache, weights_only=True)
    from realedit.pipeline import Editor, crop_to_tensor

    ed = Editor.from_pretrained(model, steps=steps)
    crops, masks, names = align_photos(photos, count)
    codes = []
    for s in range(0, len(crops), batch):
        x = torch.cat([crop_to_tensor(c, ed.G.resolution) for c in crops[s:s + batch]])
        codes.append(ed.inverter.invert(x, "wp").latent.detach().float())
        print(f"inverted {s + len(x)}", flush=True)
    out = {"crops": torch.from_numpy(crops), "masks": torch.from_numpy(masks),
           "codes": torch.cat(codes), "names": names, "steps": steps}
    if cache:
        torch.save(out, cache)
    return out


def as_photo_codes(G, d) -> PhotoCodes:
    crops = d["crops"].permute(0, 3, 1, 2).float() / 127.5 - 1
    masks = d["masks"].float()[:, None] / 255
    codes = d["codes"].float()
    with torch.no_grad():
        before = torch.cat([G.synthesis(c, noise="const") for c in codes.split(64)])
    return PhotoCodes(crops, masks, codes, before)


def learn_on_photos(G, bank, args):
    """Replace nothing: add, per --learn attribute, a W+ direction conditioned on gender,
    learned on inverted real photos (see module doc)."""
    names = [a for a in args.learn.split(",") if a]
    if not names or "gender" not in bank:
        return
    cached = photo_codes(args.model, args.photos, args.photo_count, args.photo_steps, args.photo_cache)
    data = as_photo_codes(G, cached)
    # The last --learn-holdout photos stay unseen (scripts/calibrate_bank.py measures on them).
    data = data.subset(range(len(data) - args.learn_holdout))
    n_val = len(data) // 5
    val, train = data.subset(range(n_val)), data.subset(range(n_val, len(data)))
    for p in G.parameters():
        p.requires_grad_(False)
    ag = AgeGenderScorer(Path(args.scorer_dir) / "age_faceres.pt")
    smile = get_scorer("smile", scorer_dir=args.scorer_dir)
    for net in (ag.net, smile.net):
        for p in net.parameters():
            p.requires_grad_(False)

    def score_fn(y):
        out = ag.scores(y)
        if "smile" in names:
            out["smile"] = smile.logits(y)
        return out

    gender = bank.get("gender", model=args.model, space="w")
    for attr in names:
        primal = bank.get(attr, model=args.model, space="w")
        init = condition(primal, [gender])
        layers = (parse_layers(args.learn_layers) if args.learn_layers else
                  primal.layers) or tuple(range(G.num_ws))
        t0 = time.perf_counter()
        r = learn_direction(G, train, val, score_fn, attr, {"male": 0.1}, init.vector,
                            layers=layers, steps=args.learn_steps, margin=args.learn_margin,
                            amount=args.learn_amount, seed=args.seed,
                            callback=lambda h: print(f"{attr} step {h['step']}: held-out success "
                                                     f"{h['success']:.3f}", flush=True))
        stats = {"rule": f"{attr} +-3 with gender kept, on inverted photos: share of (photo, sign) "
                         "where the score moved the asked way and P(male) moved < 0.1",
                 "photos": str(args.photos), "photos_train": len(train), "photos_val": len(val),
                 "inversion_steps": int(cached.get("steps", args.photo_steps)), "init": "conditional SVM direction",
                 "init_success": round(r.init_success, 4), "success": round(r.best_success, 4),
                 "best_step": r.best_step, "margin": args.learn_margin,
                 "amount": args.learn_amount,
                 "history": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()
                              if k != "drift_mean"} | {"drift_male": round(h["drift_mean"]["male"], 4)}
                             for h in r.history],
                 "seconds": round(time.perf_counter() - t0, 1)}
        bank.add(Direction(attr, r.vector, args.model, "wp", layers, ("gender",), "learned", stats))
        print(f"{attr}|gender learned: held-out success {r.init_success:.3f} -> "
              f"{r.best_success:.3f} (step {r.best_step})", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="realedit-celeba64")
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--ratio", type=float, default=0.1,
                    help="fraction kept at each end (InterFaceGAN: 0.02 of 500k; fewer samples "
                         "need a larger share to give the SVM enough points)")
    ap.add_argument("--scorer-dir", required=True)
    ap.add_argument("--sefa", type=int, default=5)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layer-search", type=int, default=200, metavar="N",
                    help="held-out samples for choosing each attribute's W+ layers while gender "
                         "is kept (0: every direction edits all layers)")
    ap.add_argument("--from-bank", default="", metavar="PATH",
                    help="keep this bank's fitted and SeFa directions; only (re)learn --learn")
    ap.add_argument("--learn", default="age", metavar="ATTR[,ATTR]",
                    help="attributes to learn a gender-kept W+ direction for on real photos "
                         "('' for none)")
    ap.add_argument("--photos", default=str(SHARED / "data/celeba/images"))
    ap.add_argument("--photo-count", type=int, default=1100)
    ap.add_argument("--photo-steps", type=int, default=50, help="hybrid steps inverting them")
    ap.add_argument("--photo-cache", default="", help="file keeping their crops and codes")
    ap.add_argument("--learn-steps", type=int, default=300)
    ap.add_argument("--learn-margin", type=float, default=1.0,
                    help="target change asked per unit of edit (score units)")
    ap.add_argument("--learn-amount", type=float, default=3.0,
                    help="edit size (unit normals) the direction is learned and validated at: "
                         "a weak attribute needs steps beyond 3 to show, so learn it there")
    ap.add_argument("--learn-layers", default="", help="W+ layers to learn on (default: the "
                    "attribute's searched layer window)")
    ap.add_argument("--learn-holdout", type=int, default=0, metavar="N",
                    help="leave the last N cached photos out of learning (for calibration)")
    args = ap.parse_args(argv)
    unknown = [a for a in args.learn.split(",") if a and a not in ("age", "smile")]
    if unknown:  # only these have a differentiable scorer in learn_on_photos' score_fn
        ap.error(f"--learn {','.join(unknown)}: only age and smile can be learned")

    G = models.load(args.model)
    if args.from_bank:
        from realedit.edit import load_bank
        relearn = set(a for a in args.learn.split(",") if a)
        bank = DirectionBank(d for d in load_bank(args.from_bank)
                             if d.source != "learned" or d.name not in relearn)
        learn_on_photos(G, bank, args)
        save_bank(bank, args.output)
        print(f"wrote {args.output}.npz/.json")
        return
    t0 = time.perf_counter()
    codes, images = sample(G, args.samples, seed=args.seed)
    t_synth = time.perf_counter() - t0
    scores, seconds = {}, {}
    t0 = time.perf_counter()
    ag = AgeGenderScorer(Path(args.scorer_dir) / "age_faceres.pt", "age")
    pred = ag.predict(images)
    scores["age"], scores["gender"] = pred["age"], pred["male"]
    seconds["age"] = seconds["gender"] = time.perf_counter() - t0
    for attr, spec in (("smile", "smile"), ("pose", "pose")):
        t0 = time.perf_counter()
        scores[attr] = np.asarray(get_scorer(spec, scorer_dir=args.scorer_dir)(images), dtype=np.float64)
        seconds[attr] = time.perf_counter() - t0
        print(f"scored {attr} in {seconds[attr]:.0f} s", flush=True)

    bank = DirectionBank()
    for attr, s in scores.items():
        try:
            normal, offset, stats = fit_boundary(codes, s, ratio=args.ratio, seed=args.seed)
        except RealeditError as exc:  # e.g. dlib finds too few faces to score pose
            print(f"{attr}: not fitted ({exc}; {int(np.isfinite(s).sum())} of {len(s)} scored)")
            continue
        proj = codes @ normal
        stats.update({"samples": args.samples, "ratio": args.ratio, "scorer": attr,
                      "unscorable": int(np.sum(~np.isfinite(s))),
                      # Spread of the sampled codes along the direction: how big "+1" is.
                      "latent_std": float(proj.std()),
                      "score_corr": float(np.corrcoef(proj[np.isfinite(s)], s[np.isfinite(s)])[0, 1]),
                      "seconds_synthesis": round(t_synth, 1), "seconds_scoring": round(seconds[attr], 1)})
        bank.add(Direction(attr, normal, args.model, "w", None, (), "fit", stats))
        print(f"{attr}: val acc {stats['val_accuracy']:.3f}, all acc {stats['all_accuracy']:.3f}, "
              f"corr {stats['score_corr']:.2f}, latent std {stats['latent_std']:.2f}", flush=True)
    if args.layer_search:
        choose_layers(G, bank, args, ag)
    if args.learn:
        learn_on_photos(G, bank, args)
    for d in sefa(G, num=args.sefa, model=args.model):
        bank.add(d)
    save_bank(bank, args.output)
    print(f"wrote {args.output}.npz/.json")


if __name__ == "__main__":
    main()
