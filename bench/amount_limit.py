"""Where the embedded model's edits break, against the amount limit the command line refuses
before loading anything (realedit.args.AMOUNT_LIMIT x each direction's sensible range).

    python bench/amount_limit.py [--photos 8]

For each direction of the bank (alone and with --keep gender), each photo (astronaut + CelebA-HQ
from ../shared, encoder inversion) and each amount in a ladder on both signs, the generated
face is judged by realedit.blend.guard (the check that refuses a broken face with exit 6). The
table gives the smallest |amount| that broke on any photo, the share of photos broken at the
limit and just below it, and whether anything broke within the sensible range.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import photos, print_table  # noqa: E402

LADDER = [1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 45, 60, 100]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=8)
    args = ap.parse_args()

    import torch

    from realedit import Editor
    from realedit.args import AMOUNT_LIMIT
    from realedit.blend.guard import broken_reason
    from realedit.edit import apply_edits
    from realedit.edit.apply import sensible_ranges_of
    from realedit.invert import synthesize

    torch.set_num_threads(1)
    ed = Editor.from_pretrained("realedit-celeba64", inverter="encoder")
    faces = []
    for p in photos(args.photos):
        inv = ed.invert(p)
        fi = inv.faces[0]
        faces.append((fi.latent, fi.before_image(ed.G, inv.space, ed.device)))
    names = sorted(set(ed.bank.names(model=ed.model_name)))
    rows = []
    for name in names:
        for keep in ([], ["gender"]):
            if name in keep:
                continue
            span = sensible_ranges_of({name: 1}, keep, ed.bank, ed.space, model=ed.model_name)[name]
            limit = AMOUNT_LIMIT * span
            amounts = sorted(set(LADDER + [span, limit]))
            first = {}           # photo -> smallest |amount| that broke
            with torch.no_grad():
                for k, (lat, before) in enumerate(faces):
                    for a in amounts:
                        broke = any(
                            broken_reason(synthesize(ed.G, apply_edits(
                                lat, ed.space, {name: s * a}, keep=keep, bank=ed.bank,
                                model=ed.model_name), ed.space), before)
                            for s in (1, -1))
                        if broke:
                            first[k] = a
                            break
            n = len(faces)
            at = sum(1 for a in first.values() if a <= limit)
            below = sum(1 for a in first.values() if a < limit)
            inside = sum(1 for a in first.values() if a <= span)
            rows.append([name + (" | keep gender" if keep else ""), f"±{span:g}", f"±{limit:g}",
                         f"{min(first.values()):g}" if first else f"> {amounts[-1]:g}",
                         f"{at}/{n}", f"{below}/{n}", f"{inside}/{n}"])
    print(f"\nembedded model, {len(faces)} photos, encoder inversion; limit = {AMOUNT_LIMIT:g} x range; "
          "broken = realedit.blend.guard refuses the generated face (either sign)")
    print_table(["direction", "range", "limit", "smallest broken |amount|",
                 "photos broken at the limit", "below it", "within the range"], rows)


if __name__ == "__main__":
    main()
