"""A 12000 x 9000 photo goes through read -> detect -> align -> paste -> write in bounded
memory. Runs in a child process so its peak RSS is its own.

Detection looks for faces from 240 px (tiles at 0.37x, as the old 12 MP budget reached): the
default 40 px at 108 MP is ~1 G pixels of HOG (minutes on 2 cores); the tiles bound memory alike."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
from datapaths import SHARED  # noqa: E402

CELEBAHQ = SHARED / "data" / "celebahq"

# The decoded photo alone is 324 MB (plus Pillow's 432 MB RGBX buffer while decoding) and
# the pasted result is a second 324 MB array; anything far above that means a full-size
# float copy or a whole-photo warp crept in.
PEAK_RSS_LIMIT_MB = 2000

CHILD = r"""
import json, resource, sys, time
from realedit.io import read_image, write_image
from realedit.align import Detector, align_face, pick_faces
from realedit.blend import paste_back
t0 = time.perf_counter()
photo = read_image(sys.argv[1])
t1 = time.perf_counter()
kept, skipped = pick_faces(photo, detector=Detector(min_face=240))
t2 = time.perf_counter()
aligned = align_face(photo, kept[0], 256)
t3 = time.perf_counter()
out = paste_back(photo, aligned, 255 - aligned.image)
t4 = time.perf_counter()
write_image(sys.argv[2], out)
t5 = time.perf_counter()
print(json.dumps({"faces": len(kept), "skipped": len(skipped), "size": kept[0].size,
                  "nose": kept[0].landmarks[30].tolist(), "crop": list(aligned.image.shape),
                  "read": t1 - t0, "detect": t2 - t1, "align": t3 - t2, "paste": t4 - t3,
                  "write": t5 - t4,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not CELEBAHQ.is_dir(), reason=f"{CELEBAHQ} is absent")
def test_huge_photo_in_bounded_memory(tmp_path):
    import cv2

    h, w = 9000, 12000
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = np.linspace(60, 200, w).astype(np.uint8)[None, :, None]
    face = np.asarray(Image.open(CELEBAHQ / "000014.jpg").convert("RGB"))
    canvas[3000:6000, 5000:8000] = cv2.resize(face, (3000, 3000), interpolation=cv2.INTER_CUBIC)
    src = tmp_path / "huge.jpg"
    assert cv2.imwrite(str(src), canvas[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    del canvas
    dst = tmp_path / "huge_out.jpg"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dst)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    r = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"\n12000x9000: peak RSS {r['peak_rss_mb']:.0f} MB; read {r['read']:.1f}s detect "
          f"{r['detect']:.1f}s align {r['align']:.1f}s paste {r['paste']:.1f}s write {r['write']:.1f}s")
    assert r["faces"] == 1 and r["crop"] == [256, 256, 3]
    # the face was 3000 px wide at (5000..8000, 3000..6000): nose tip near its middle
    assert 5900 < r["nose"][0] < 7100 and 3900 < r["nose"][1] < 5300
    assert 2000 < r["size"] < 4000
    assert r["peak_rss_mb"] < PEAK_RSS_LIMIT_MB
    with warnings.catch_warnings():  # our own 108 MP output, not a bomb
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(dst) as out:
            assert out.size == (w, h)
