"""Cost and quality of fitting attribute directions (prints tables).

    python bench/directions.py [--model NAME|PATH] [--samples 10000] [--scorer brightness
        --scorer male ...] [--scorer-dir DIR] [--batch 64] [--space w] [-o BANK]
    python bench/directions.py --adapters 160     # FFHQ-crop -> scorer framing, measured

Fitting rows: seconds to sample + synthesise, to score, and for the SVM; total; validation
and all-sample accuracy (see realedit.research.fit). Model: --model, else the registered
``realedit-celeba64`` if its file is present, else a random StyleGAN2 with the same
architecture (said in the output: its accuracies then only measure the pipeline).

--adapters N: on CelebA photos from ../shared, derives the CelebA frame and dlib face box in
FFHQ-crop units (first N photos), then on the next N/2 compares each network on the native
photo with the same network on the photo's FFHQ-aligned crop through realedit's adapters
(padding modes for the CelebA re-framing; fixed vs dlib face box for the age net).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"

from realedit.research import scorers as S  # noqa: E402
from realedit.research.fit import fit_boundary, sample_and_score  # noqa: E402


def pick_model(arg: str | None):
    from realedit.models import load

    if arg:
        return load(arg), arg
    try:
        from realedit import weights
        path = weights.resolve("realedit-celeba64", download=False)
        return load(path), "realedit-celeba64"
    except Exception as exc:  # not trained / not registered yet
        from realedit.models.stylegan2 import StyleGAN2Generator
        from realedit.training.gan import GanConfig

        print(f"note: no trained model ({type(exc).__name__}: {exc}); using a RANDOM StyleGAN2 "
              f"with the realedit-celeba64 architecture", file=sys.stderr)
        torch.manual_seed(0)
        return StyleGAN2Generator(**GanConfig().g_kwargs()).eval(), "random-stylegan2-64"


def table(rows, head):
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))


def bench_fit(args):
    G, model_name = pick_model(args.model)
    scorer_dir = args.scorer_dir or os.environ.get(S.SCORER_DIR_ENV) or \
        (str(SHARED / "models" / "attributes") if (SHARED / "models" / "attributes").is_dir() else None)
    rows, bank = [], []
    for spec in args.scorer:
        sc = S.get_scorer(spec, scorer_dir=scorer_dir)
        t0 = time.perf_counter()
        last = [0.0]

        def progress(done, total):
            if time.perf_counter() - last[0] > 30:
                last[0] = time.perf_counter()
                print(f"  {sc.name}: {done}/{total}", file=sys.stderr)

        data = sample_and_score(G, sc, args.samples, args.space, batch=args.batch, seed=args.seed,
                                progress=progress)
        t1 = time.perf_counter()
        normal, _, st = fit_boundary(data.codes, data.scores, ratio=args.ratio, seed=args.seed)
        t2 = time.perf_counter()
        rows.append((model_name, sc.name, args.space, args.samples, f"{data.seconds_synth:.1f}",
                     f"{data.seconds_score:.1f}", f"{t2 - t1:.2f}", f"{t2 - t0:.1f}",
                     f"{args.samples / (t2 - t0):.1f}", f"{st['val_accuracy']:.3f}",
                     f"{st['all_accuracy']:.3f}", int(np.sum(~np.isfinite(data.scores)))))
        if args.output:
            from realedit.edit import Direction
            st.update(samples=args.samples, scorer=sc.name, seed=args.seed)
            bank.append(Direction(sc.name, normal, model_name, args.space, None, (), "fit", st))
    print(f"\nfitting directions ({torch.get_num_threads()} threads, batch {args.batch}, "
          f"ratio {args.ratio}, G {G.resolution}px)")
    table(rows, ("model", "scorer", "space", "samples", "synth s", "score s", "svm s", "total s",
                 "img/s", "val acc", "all acc", "unscored"))
    if args.output:
        from realedit.edit import DirectionBank, save_bank
        print("written", *save_bank(DirectionBank(bank), args.output))


def _load_rgb(path):
    from PIL import Image
    return np.asarray(Image.open(path).convert("RGB"))


def _t(rgb):
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1


def bench_adapters(n: int):
    import torch.nn.functional as F

    from realedit.align import align_face, detect_faces, ffhq_quad

    attr = SHARED / "models" / "attributes"
    files = sorted((SHARED / "data" / "celeba" / "images").glob("*.jpg"))
    # 1. geometry: CelebA frame and dlib box in FFHQ-crop units (crop = [0,1]^2)
    frames, boxes = [], []
    for f in files[:n]:
        rgb = _load_rgb(f)
        faces = detect_faces(rgb)
        if not faces:
            continue
        q = ffhq_quad(faces[0].landmarks)
        inv = np.linalg.inv(np.stack([q[3] - q[0], q[1] - q[0]], 1))
        norm = lambda p: (np.asarray(p, float) - q[0]) @ inv.T  # noqa: E731 (pixel-centre coords)
        h, w = rgb.shape[:2]
        frames.append([*norm([-0.5, -0.5]), *norm([w - 0.5, h - 0.5])])
        l, t, r, b = faces[0].box
        boxes.append([*norm([l - 0.5, t - 0.5]), *norm([r + 0.5, b + 0.5])])
    fr, bx = np.array(frames), np.array(boxes)
    print(f"\ngeometry from {len(fr)} CelebA photos (left, top, right, bottom in FFHQ-crop units)")
    table([("CelebA frame", *np.round(fr.mean(0), 4), *np.round(fr.std(0), 3)),
           ("dlib HOG box", *np.round(bx.mean(0), 4), *np.round(bx.std(0), 3)),
           ("in realedit: frame", *S.CELEBA_FRAME_IN_FFHQ, "", "", "", ""),
           ("in realedit: box", *S.FACE_BOX_IN_FFHQ, "", "", "", "")],
          ("", "left", "top", "right", "bottom", "sd l", "sd t", "sd r", "sd b"))

    # 2. agreement on other photos: native framing vs FFHQ crop through the adapters
    male = S.CelebAClassifierScorer(attr / "male_clf_aug.pth", framing="celeba")
    smile = S.CelebAClassifierScorer(attr / "smile_clf_aug.pth", framing="celeba")
    age = S.AgeGenderScorer(attr / "age_faceres.pt", box="given")
    ref = {"male": [], "smile": [], "age": [], "p_male": []}
    crops = []
    for f in files[n:n + max(n // 2, 8)]:
        rgb = _load_rgb(f)
        faces = detect_faces(rgb)
        if not faces:
            continue
        x = _t(rgb)
        ref["male"].append(male(x)[0])
        ref["smile"].append(smile(x)[0])
        p = age.predict(x, boxes=S.dlib_box_edges(faces[0].box)[None])
        ref["age"].append(p["age"][0])
        ref["p_male"].append(p["male"][0])
        crops.append(_t(align_face(rgb, faces[0], 256).image))
    ref = {k: np.array(v) for k, v in ref.items()}
    C = torch.cat(crops)
    rows = []

    def row(what, res, a, b, thr):
        rows.append((what, res, f"{np.corrcoef(a, b)[0, 1]:.3f}", f"{np.mean((a > thr) == (b > thr)):.3f}",
                     f"{np.mean(np.abs(a - b)):.3f}"))

    for res in (256, 64):
        X = C if res == 256 else F.interpolate(C, size=(64, 64), mode="bilinear", antialias=True,
                                               align_corners=False)
        with torch.no_grad():
            for pad in ("border", "reflection", "zeros"):
                x = S.ffhq_to_celeba(X, padding=pad)
                row(f"male, CelebA re-frame ({pad})", res, ref["male"], male.net(x).numpy(), 0)
                row(f"smile, CelebA re-frame ({pad})", res, ref["smile"], smile.net(x).numpy(), 0)
            x = F.interpolate(X, size=(256, 256), mode="bilinear", align_corners=False)
            row("male, crop stretched (no re-frame)", res, ref["male"], male.net(x).numpy(), 0)
            row("smile, crop stretched (no re-frame)", res, ref["smile"], smile.net(x).numpy(), 0)
        for box in ("ffhq", "dlib"):
            age.box = box
            p = age.predict(X, boxes=age.boxes_for(X))
            row(f"age, box={box}", res, ref["age"], p["age"], 30)
            row(f"P(male), box={box}", res, ref["p_male"], p["male"], 0.5)
        age.box = "given"
    print(f"\nadapters: native photo vs its FFHQ crop, {len(crops)} CelebA photos "
          f"(agree = same side of 0 / age 30 / P 0.5)")
    table(rows, ("scorer / adapter", "crop px", "corr", "agree", "mean |diff|"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--scorer", action="append", default=None,
                    help="repeatable; default: brightness and male (if the networks are found)")
    ap.add_argument("--scorer-dir", default=None)
    ap.add_argument("--space", default="w", choices=["z", "w", "wp"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ratio", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("-o", "--output", default=None, help="also save the fitted bank here")
    ap.add_argument("--adapters", type=int, default=0, metavar="N",
                    help="measure the FFHQ-crop adapters on N CelebA photos instead")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.adapters:
        bench_adapters(args.adapters)
        return
    if args.scorer is None:
        have_nets = (SHARED / "models" / "attributes" / "male_clf_aug.pth").is_file() or \
            args.scorer_dir or os.environ.get(S.SCORER_DIR_ENV)
        args.scorer = ["brightness"] + (["male"] if have_nets else [])
    bench_fit(args)


if __name__ == "__main__":
    main()
