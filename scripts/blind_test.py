"""Blind test for issue 21: unlabeled before|after face crops of held-out photos.

    python scripts/blind_test.py OUTDIR
Writes OUTDIR/images/NN.png (before | after, aligned 256 px crops, random order) and
OUTDIR/key.json (which edit each image is): the judge is shown only images/ and told to name
the one change (smile, age, pose or none); OUTDIR/full/ holds the whole photos, before beside
after. The six photos are ones no direction or transfer setting was tuned on (issue 21).
"""
import json, random, sys
from pathlib import Path
import numpy as np
from PIL import Image
from realedit import Editor
from realedit.align import align_face

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "celebahq"
PHOTOS = ["000890", "000940", "001182", "001418", "001792", "002006"]
EDITS = {"smile": ({"smile": 3.0}, ["gender"]), "age": ({"age": 3.0}, ["gender"]),
         "pose": ({"pose": 3.0}, [])}
out = Path(sys.argv[1]); (out / "images").mkdir(parents=True, exist_ok=True)
(out / "full").mkdir(exist_ok=True)
ed = Editor.from_pretrained()
items = []
for i, name in enumerate(PHOTOS):
    inv = ed.invert(str(SHARED / f"{name}.jpg"))
    todo = list(EDITS.items())
    if i == 0:
        todo.append(("none", ({"smile": 0.0}, [])))
    for label, (amounts, keep) in todo:
        res = ed.apply(inv, amounts, keep)
        f = res.faces[0]
        a, b = (align_face(x, f.face, 256).image for x in (res.source.rgb, res.photo.rgb))
        pair = np.full((256, 516, 3), 255, np.uint8); pair[:, :256] = a; pair[:, 260:] = b
        items.append((label, name, pair))
        Image.fromarray(np.concatenate([res.source.rgb, res.photo.rgb], 1)).save(
            out / "full" / f"{name}_{label}.jpg", quality=92)
random.Random(21).shuffle(items)
key = {}
for k, (label, name, pair) in enumerate(items, 1):
    Image.fromarray(pair).save(out / "images" / f"{k:02d}.png")
    key[f"{k:02d}"] = {"edit": label, "photo": name}
(out / "key.json").write_text(json.dumps(key, indent=1))
print(len(items), "images")
