"""Fit the embedded model's direction bank: age, gender, smile, pose, plus named SeFa directions.

    python scripts/fit_bank.py --model realedit-celeba64 --samples 3000 \
        --scorer-dir ../shared/models/attributes -o weights/realedit-celeba64.directions

Same method as `realedit directions fit` (sample z, w = mapping(z), synthesise, score, keep the
extremes, 70/30 split, linear SVM), but the samples are drawn and synthesised ONCE and every
scorer reads the same images (the age/gender net gives both in one pass), which is what makes a
whole bank affordable on 2 cores. The scorers are research-only files passed by path; nothing
of them is written into the bank.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from realedit import models
from realedit.edit import (Direction, DirectionBank, condition, fit_boundary, format_layers,
                           get_scorer, save_bank, sefa)
from realedit.edit.layers import search_layers
from realedit.edit.scorers import AgeGenderScorer
from realedit.errors import RealeditError


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
    their score while P(male) moves < 0.1 (realedit.edit.layers); the table goes in stats."""
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
    args = ap.parse_args(argv)

    G = models.load(args.model)
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
    for d in sefa(G, num=args.sefa, model=args.model):
        bank.add(d)
    save_bank(bank, args.output)
    print(f"wrote {args.output}.npz/.json")


if __name__ == "__main__":
    main()
