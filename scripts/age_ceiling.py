"""How old can ANY latent edit of the embedded model make a real photo look? A research
measurement for issue 21 (item 2), not a product feature.

For each photo (inverted as the product inverts it) this fits a separate W+ offset, the most
freedom any code-dependent edit (a latent mapper included) could have, with the signals
scripts/fit_age.py uses for the shipped entry:

- asked for: the age net's years (jittered face box), model-free hair greyness and skin
  crease detail (realedit.research.appearance);
- held by hinges: P(male), the net's face descriptor (identity proxy), the discriminator's
  realism, background, skin colour noise, skin colour and tone (cast);
- judged, as in fitting, on the photo view: the real aligned crop plus the upsampled change of
  the generator's image; every layer of ``--layers`` moves at most ``--budget`` (the shipped
  `age=+3` entry moves each by 9).

Then both the offset and the shipped `age=+3 --keep gender` entry go through the product's
own transfer (realedit.blend.transfer, default detail) and are judged like `realedit eval`
judges (age net and P(male) on the aligned crop, hair_greyness, dlib identity distance), and a
before | entry | ceiling strip per photo is written to ``--out`` for looking at.

    python scripts/age_ceiling.py ../shared/data/celebahq/{000812,000834,000836,000860,000868,000892,000896,000900}.jpg \
        --scorer-dir ../shared/models/attributes --out runs/age_ceiling

Measured with that command (8 dev CelebA-HQ photos, none of README's eval or the blind test;
CPU, 100 steps, ~15 min on a loaded 2-core machine): the offsets take the age net to +11 years
in the photo view, yet through the transfer the photos get +5.1 years (median 5.2; the entry
+3.2, median 3.0), P(male) within 0.1 on 7/8 (entry 8/8), hair greyness +2.2 (entry +2.1),
dlib distance 0.24 (entry 0.25). At full size the ceiling's faces are a little paler and duller,
no greyer hair, no wrinkles: nothing a person would call older. A per-photo optimum, the most a
code-dependent edit (a latent mapper) could learn, does not reach +8 years or an older look:
the limit is the 64 px generator and what its change carries to a photo.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from realedit import models
from realedit.align import align_face
from realedit.blend import transfer
from realedit.blend.masks import square_mask
from realedit.edit import apply_edits, parse_layers
from realedit.evaluate import CROP, IdentityDescriptor, judge_crops, load_scorer
from realedit.invert import synthesize
from realedit.args import DEFAULT_DETAIL
from realedit.pipeline import Editor
from realedit.research import appearance
from realedit.research.scorers import AgeGenderScorer, faceres_input, ffhq_face_boxes

VIEW = 128          # photo-view side, as in scripts/fit_age.py


def age_net(net, images, rng=None, jitter=0.04):
    box = ffhq_face_boxes(images.shape[0], images.shape[-1],
                          jitter=jitter if rng is not None else 0.0, rng=rng)
    return net(faceres_input(images, box))


def fit_offsets(G, D, net, W, crops, layers, args):
    """Per-code offsets (N, L, d), each active layer's norm <= args.budget."""
    sq = torch.from_numpy(square_mask(VIEW))
    border = appearance.region_mask("border")
    mask = torch.zeros(1, G.num_ws, 1)
    mask[:, layers] = 1

    def view(x, x0):
        return (crops + sq * F.interpolate(x - x0, size=(VIEW, VIEW), mode="bicubic",
                                           align_corners=False)).clamp(-1, 1)

    with torch.no_grad():
        x0 = G.synthesis(W, noise="const")
        r0, m0, d0 = age_net(net, crops), appearance.measure(crops), D(x0).reshape(-1)
    delta = torch.zeros_like(W, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=args.lr)
    rng = np.random.default_rng(0)
    for step in range(args.steps):
        x = G.synthesis(W + delta * mask, noise="const")
        v = view(x, x0)
        r = age_net(net, v, rng)
        m = appearance.measure(v, hair_from=crops)
        s = {"age": r["age"] - r0["age"], "male": r["male"] - r0["male"],
             "cos": F.cosine_similarity(r["features"], r0["features"], dim=1),
             "hair": m["hair_grey"] - m0["hair_grey"],
             "detail": m["skin_detail"] - m0["skin_detail"],
             "noise": m["skin_colour_noise"] - m0["skin_colour_noise"],
             "cast": (m["skin_a"] - m0["skin_a"]).abs() + (m["skin_b"] - m0["skin_b"]).abs(),
             "cast_L": (m["skin_lightness"] - m0["skin_lightness"]).abs(),
             "real": D(x).reshape(-1) - d0,
             "bg": ((x - x0).abs().mean(1) * border).sum((1, 2)) / border.sum() * 127.5}
        loss = (F.relu(args.years - s["age"]).mean() / 3 + 0.5 * F.relu(20 - s["hair"]).mean() / 5
                + 0.5 * F.relu(1 - s["detail"]).mean()
                + 4 * F.relu(s["male"].abs() - 0.05).mean() / 0.1
                + 3 * F.relu(1 - s["cos"] - args.id_free).mean() / 0.1
                + F.relu(-s["real"]).mean() / 0.5 + 0.5 * F.relu(s["bg"] - 3).mean() / 5
                + F.relu(s["noise"]).mean() / 0.5 + F.relu(s["cast"] - 1.5).mean() / 2
                + F.relu(s["cast_L"] - 4).mean() / 4)
        if step % 20 == 0 or step == args.steps - 1:
            shown = " ".join(f"{k} {float(s[k].detach().mean()):+.2f}"
                             for k in ("age", "hair", "male", "cos"))
            print(f"step {step}: {shown}", flush=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            n = delta.norm(dim=2, keepdim=True)
            delta.mul_(torch.clamp(args.budget / (n + 1e-8), max=1.0))
    return (delta * mask).detach()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--scorer-dir", required=True)
    ap.add_argument("--out", default="runs/age_ceiling")
    ap.add_argument("--layers", default="2-9")
    ap.add_argument("--budget", type=float, default=9.0, help="max offset norm per layer")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--years", type=float, default=12.0, help="age asked for (hinge)")
    ap.add_argument("--id-free", type=float, default=0.05, help="descriptor cosine change allowed")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    editor = Editor.from_pretrained("realedit-celeba64")
    ckpt, path = models.read_model("realedit-celeba64")
    G = models.generator_from_checkpoint(ckpt, path, "cpu").eval()
    D = models.discriminator_from_checkpoint(ckpt, path, "cpu").eval()
    net = AgeGenderScorer(Path(args.scorer_dir) / "age_faceres.pt").net
    for p in list(G.parameters()) + list(D.parameters()) + list(net.parameters()):
        p.requires_grad_(False)

    inverted = []
    for p in args.photos:
        inv = editor.invert(p)
        if inv.faces:
            inverted.append((Path(p).stem, inv))
    faces = [inv.faces[0] for _, inv in inverted]
    W = torch.cat([f.latent.float() for f in faces])
    crops = [torch.from_numpy(np.array(f.aligned.image)).permute(2, 0, 1)[None].float() / 127.5 - 1
             for f in faces]
    crops = torch.cat([F.interpolate(c, size=(VIEW, VIEW), mode="area") for c in crops])
    offsets = fit_offsets(G, D, net, W, crops, list(parse_layers(args.layers)), args)
    entry = apply_edits(W, "wp", {"age": 3.0}, keep=["gender"], bank=editor.bank,
                        model=editor.model_name) - W

    scorers = {"age": load_scorer("age", scorer_dir=args.scorer_dir),
               "gender": load_scorer("gender", scorer_dir=args.scorer_dir)}
    ident = IdentityDescriptor()
    paste = transfer.strategy(DEFAULT_DETAIL, "alpha")
    table = {"entry": [], "ceiling": []}
    print(f"{'photo':>8s} {'edit':>8s} {'years':>6s} {'P(male)':>8s} {'hair':>6s} {'dlib':>5s}")
    for i, (stem, inv) in enumerate(inverted):
        f, rgb = faces[i], inv.photo.rgb
        with torch.no_grad():
            before = synthesize(G, W[i:i + 1], "wp")[0]
        shots = [rgb]
        for label, d in (("entry", entry), ("ceiling", offsets)):
            with torch.no_grad():
                after = synthesize(G, W[i:i + 1] + d[i:i + 1], "wp")[0]
            new, _, _ = paste(rgb, f.aligned, before, after, mask="landmarks", edits={"age": 3})
            shots.append(new)
            j = judge_crops(align_face(rgb, f.face, CROP).image,
                            align_face(new, f.face, CROP).image, scorers)
            (a0, a1), (m0, m1), (h0, h1) = j["scores"]["age"], j["scores"]["gender"], j["hair"]
            lms = f.face.landmarks
            same = float(np.linalg.norm(ident(rgb, lms) - ident(new, lms)))
            row = [a1 - a0, m1 - m0, h1 - h0, same]
            table[label].append(row)
            print(f"{stem:>8s} {label:>8s} {row[0]:+6.2f} {row[1]:+8.3f} {row[2]:+6.2f} "
                  f"{row[3]:5.3f}", flush=True)
        lm = np.asarray(f.face.landmarks)
        c, s = lm.mean(0), (lm.max(0) - lm.min(0)).max() * 0.95
        box = tuple(int(v) for v in (c[0] - s, c[1] - 1.15 * s, c[0] + s, c[1] + 0.85 * s))
        tiles = [Image.fromarray(x).crop(box).resize((512, 512), Image.LANCZOS) for x in shots]
        strip = Image.new("RGB", (512 * len(tiles), 512))
        for k, t in enumerate(tiles):
            strip.paste(t, (512 * k, 0))
        strip.save(out / f"{stem}_before_entry_ceiling.png")
    for label, rows in table.items():
        r = np.array(rows)
        n = len(r)
        print(f"{label}: years {r[:, 0].mean():+.2f} (median {np.median(r[:, 0]):+.2f}), "
              f"P(male) within 0.1 {int((np.abs(r[:, 1]) < 0.1).sum())}/{n}, "
              f"hair {r[:, 2].mean():+.2f}, "
              f"dlib {r[:, 3].mean():.3f} (< 0.45: {int((r[:, 3] < 0.45).sum())}/{n})")


if __name__ == "__main__":
    main()
