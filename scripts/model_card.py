"""Write the embedded model's card, weights/README.md, from measurements made by this script.

    python scripts/model_card.py [--name realedit-celeba64] [--photos 50]

Every number in the card comes from this run (or from metadata the training and fitting
commands stored in the model and bank files): the sample grid, inversion quality on CelebA
photos that the encoder and generator saw during training (honest caveat stated in the card),
boundary accuracies, the cosine matrix and the training compute.
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import torch

from realedit import invert, models
from realedit.edit import bank_for_model, format_layers
from realedit.training.encoder import default_encoder_path
from realedit.training.gan import save_grid

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"


def inversion_quality(G, D, encoder, crops: torch.Tensor, steps: int) -> list[tuple]:
    rows = []
    for method, opts in (("encoder", {"encoder": encoder}),
                         ("hybrid", {"encoder": encoder, "discriminator": D, "steps": steps}),
                         ("optimize", {"discriminator": D, "steps": 4 * steps})):
        inv = invert.get(method, G, **opts)
        t0 = time.perf_counter()
        r = inv.invert(crops, "wp")
        sec = (time.perf_counter() - t0) / len(crops)
        mse = float((r.reconstruction - crops).square().mean())
        rows.append((method, r.steps, f"{mse:.4f}", r.loss or "mse", f"{sec:.2f}"))
    return rows


def layer_gain(d) -> str:
    """'0.565 / 0.775' from the layer search the bank fit recorded, '-' without one."""
    table = d.stats.get("layer_search")
    if not table:
        return "-"
    chosen = next(r for r in table if r["layers"] == format_layers(d.layers))
    return f"{table[0]['success']:.3f} / {chosen['success']:.3f}"


def augment_phases(cfg: dict, changes: list, kimg: float) -> str:
    """'color,translation,cutout' to 88.6k images, then 'translation' to 200.0k', from the
    recipe changes the trainer logged when a run resumed with another policy."""
    steps = [(c["kimg"], c["change"]["augment"]) for c in changes if "augment" in c.get("change", {})]
    if not steps:
        return f"{cfg.get('augment') or 'none'}"
    parts = [f"{steps[0][1][0] or 'none'} to {steps[0][0]:.1f}k images"]
    for i, (_, (_, new)) in enumerate(steps):
        until = steps[i + 1][0] if i + 1 < len(steps) else kimg
        parts.append(f"then {new or 'none'} to {until:.1f}k")
    return ", ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="realedit-celeba64")
    ap.add_argument("--photos", type=int, default=50)
    ap.add_argument("--data", default=str(ROOT / "data" / "celeba64.npy"),
                    help="aligned crops (scripts/prepare_celeba.py); the last --photos are used")
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    G = models.load(args.name)
    D = models.load_discriminator(args.name)
    ck = torch.load(WEIGHTS / f"{args.name}.pt", map_location="cpu", weights_only=True)
    meta = ck.get("meta", {})
    cfg = meta.get("config", {})

    grid_path = WEIGHTS / f"{args.name}.samples.png"
    z = torch.randn(32, G.z_dim, generator=torch.Generator().manual_seed(2024))
    with torch.no_grad():
        save_grid(G(z), grid_path)

    crops = np.load(args.data)[-args.photos:]
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
    enc = default_encoder_path(args.name)
    inv_rows = inversion_quality(G, D, enc, x, args.steps)

    bank = bank_for_model(args.name)
    fitted = [d for d in bank if d.source == "fit"]
    acc_rows = [(d.name, d.stats.get("scorer", "?"), d.stats.get("samples", "?"),
                 f"{d.stats.get('val_accuracy', float('nan')):.3f}",
                 f"{d.stats.get('all_accuracy', float('nan')):.3f}",
                 f"{d.stats.get('latent_std', float('nan')):.2f}", format_layers(d.layers),
                 layer_gain(d)) for d in fitted]
    names = [d.name for d in fitted]
    cos = np.array([[float(a.vector @ b.vector) for b in fitted] for a in fitted])
    sefa_rows = [(d.name, f"{d.stats.get('eigenvalue', float('nan')):.3f}") for d in bank if d.source == "sefa"]
    learned_rows = [(d.label.replace("|", r"\|"), format_layers(d.layers), d.stats.get("photos_train", "?"),
                     d.stats.get("photos_val", "?"), d.stats.get("inversion_steps", "?"),
                     f"±{d.stats.get('amount', 3):g}",
                     f"{d.stats.get('init_success', float('nan')):.3f}",
                     f"{d.stats.get('success', float('nan')):.3f}", d.stats.get("best_step", "?"))
                    for d in bank if d.source == "learned"]

    cal_rows = [(d.label.replace("|", r"\|") + ("" if d.stats["calibration"].get("measured_as", d.label) == d.label
                 else " (measured with gender kept by projection)"), f"{d.scale:.3g}", f"±{d.sensible_range:.3g}",
                 f"{d.stats['calibration']['per_unit']:+.2f} {d.stats['calibration']['unit']}",
                 f"{3 * d.stats['calibration']['per_unit']:+.2f} "
                 + ("(target reached)" if d.stats['calibration']['reached'] else
                    f"(target {d.stats['calibration']['target_at_3']:g} not reached: identity first)"))
                for d in bank if "calibration" in d.stats]

    def table(header, rows):
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
        return "\n".join(out)

    hours = meta.get("train_seconds", 0) / 3600
    kimg = meta.get("kimg", 0)
    status = "early snapshot, faces still rough" if kimg < 200 else "small and blurry, but trained to the planned length"
    augment_text = augment_phases(cfg, meta.get("recipe_changes", []), kimg)
    card = f"""# Model card: {args.name}

realedit's embedded face model: a small StyleGAN2 trained by this project so that every command
runs offline on real photos. Generated by `python scripts/model_card.py` on {dt.date.today()}.

**Status: {status}.** {meta.get('kimg', 0):.0f}k images shown (the goal was ≥ 200k). Training
resumes from its checkpoint (`training/README.md`), and the files here are refreshed as it goes.

## Files (all in `weights/`, sizes and sha256 in `registry.toml`)
- `{args.name}.pt`: EMA generator + discriminator (its features are the default perceptual
  loss, since no ImageNet backbone can be shipped), realedit model format.
- `{args.name}.encoder.pt`: W+ encoder (fp16 weights, no optimizer state).
- `{args.name}.directions.npz/.json`: direction bank (fitted attributes + SeFa).
- `{args.name}.samples.png`: the sample grid below.

## Data and licence
5400 CelebA photos (`../shared/data/celeba`, 180 identities), FFHQ-aligned at 64 px by
realedit's own aligner (`scripts/prepare_celeba.py`; 108 photos where no face was accepted
fall back to the given CelebA crop), horizontal flips at training time. CelebA is licensed for
**non-commercial research only**, so this model is too.

## Recipe and compute
`realedit train-gan` (realedit/training/gan.py): StyleGAN2 skip generator, residual
discriminator, {cfg.get('resolution')} px, z/w {cfg.get('z_dim')}/{cfg.get('w_dim')}, mapping {cfg.get('mapping_layers')} layers,
width min({cfg.get('channel_base')}/res, {cfg.get('channels')}), batch {cfg.get('batch')}, lr {cfg.get('lr')}, non-saturating loss, lazy R1
(γ = {cfg.get('r1_gamma')}, every {cfg.get('r1_interval')}), EMA ({cfg.get('ema_kimg')} kimg, ramp-up), style mixing {cfg.get('style_mixing')},
DiffAugment: {augment_text}; no path-length regularisation.
Compute so far: {meta.get('kimg', 0):.1f}k images, {meta.get('iterations', 0)} iterations,
{hours:.2f} h on 2 shared CPU cores (one torch thread), i.e. about
{meta.get('kimg', 0) * 1000 / max(meta.get('train_seconds', 1), 1):.1f} images/s.

## Samples (32, seed 2024, no truncation)
![samples]({grid_path.name})

## Inversion quality
{args.photos} aligned CelebA crops (the last ones of the training set: the model has seen them,
so this is reconstruction on the training distribution, not a held-out score). MSE on the
[-1, 1] scale at 64 px; loss = the objective the inverter optimised.

{table(("method", "steps", "MSE", "loss", "s / image"), inv_rows)}

## Directions
Fitted the InterFaceGAN way (`scripts/fit_bank.py`: one sample set scored by every scorer,
extremes kept, 70/30 split, linear SVM). Scorers: the age/gender MobileNet (`age`, `gender` =
P(male)) and the CelebA smile classifier from `../shared/models/attributes` (research-only, not
shipped), pose from dlib landmarks. `latent std` is the spread of sampled w along the unit
normal: an edit of `+1` moves that far.

{table(("direction", "scorer", "samples", "val acc", "all acc", "latent std", "W+ layers",
        "+3 with gender kept: success all layers / chosen"), acc_rows)}

"W+ layers" is the window an edit touches by default, chosen by `scripts/fit_bank.py` on 200
held-out samples (success: the score moved the asked way and P(male) moved < 0.1).

Cosine similarity between fitted directions:

{table(("",) + tuple(names), [(n,) + tuple(f"{v:.2f}" for v in row) for n, row in zip(names, cos)])}

Learned on real photos (`realedit.research.learn`, run by `scripts/fit_bank.py --learn`): CelebA
photos aligned at 256 px and inverted with the hybrid inverter; starting from the conditional
SVM direction, one unit vector per W+ layer of the window is fitted by gradient descent through
the generator and the age/gender net (and, for smile, the smile classifier) so that the photo, edited the way realedit pastes an edit,
changes its score while P(male) stays put. Success is on the held-out photos (both signs of an
edit of the listed size in unit normals; score moved the asked way and P(male) moved < 0.1). These entries serve
`--keep gender` edits of W+ codes (every photo edit); without `--keep` the SVM direction is used.

{table(("direction", "W+ layers", "photos learned on", "held out", "inversion steps", "edit size",
        "held-out success: start", "learned", "step kept"), learned_rows)}

### Calibrated amounts
`--attr NAME=X` moves the code by X × scale unit normals (`realedit.research.calibrate`, measured
by `scripts/calibrate_bank.py` on cached inverted CelebA photos no direction was learned on):
the scale makes ±3 reach a change a person sees (smile logit ±2, ±8 years, 8° of head yaw from
landmarks; aimed 20 % higher, for photos it was not measured on) unless dlib's identity distance reaches 0.45 on more than 5 % of photos first, in
which case ±3 is the strongest step that keeps the person; "range" is the largest amount that
kept identity (realedit warns beyond it). Effects are means over those photos (of the weaker
sign: + and - must both work), pasted the way realedit pastes an edit; gender-kept entries serve `--keep gender`, the projection of a plain
direction keeps the plain direction's scale. Unlisted directions are uncalibrated (scale 1,
range ±3).

{table(("direction", "scale (unit normals per +1)", "range", "+1 on photos", "+3 on photos"), cal_rows)}

SeFa (closed-form, unsupervised) directions and eigenvalues: {", ".join(f"{n} {e}" for n, e in sefa_rows)}.

## Limits
- 64 px and early in training: faces are blurry and the attribute directions are weak and
  entangled (see the cosines). In photos, realedit adds only the generator's *change* to the
  photo's own pixels, so the photo keeps its sharpness, but the edit itself is coarse.
- Trained on 180 mostly young, light-skinned celebrities: other ages and skin tones are
  under-represented, and edits on them are less reliable.
- Pose is fitted only when dlib finds faces in enough samples; early snapshots have none.
"""
    (WEIGHTS / "README.md").write_text(card)
    print(card)


if __name__ == "__main__":
    main()
