"""`realedit serve`: time of one slider move as the API answers it (GET .../image, preview and
full size), by photo size, embedded model. The browser's own number (input event -> preview on
screen) comes from tests/test_serve_browser.py.

    python bench/serve.py [--sizes 512 1024 2048 4000] [--moves 7] [--threads 1]
"""
from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4000])
    ap.add_argument("--moves", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from fastapi.testclient import TestClient
    from PIL import Image

    from realedit import Editor
    from realedit.serve import create_app

    torch.set_num_threads(args.threads)
    editor = Editor.from_pretrained(inverter="encoder")
    src = Image.open(ROOT / "demo" / "photos" / "astronaut.jpg").convert("RGB")
    amounts = [(-1) ** i * (1 + i % 3) for i in range(args.moves)]
    rows = []
    with TestClient(create_app(editor)) as c:
        for side in args.sizes:
            buf = io.BytesIO()
            src.resize((side, side), Image.LANCZOS).save(buf, "JPEG", quality=92)
            sid = c.post("/api/sessions", files={"file": ("a.jpg", buf.getvalue())},
                         data={"faces": "largest"}).json()["id"]
            assert c.get(f"/api/sessions/{sid}", params={"wait": 120}).json()["state"] == "ready"
            times = {}
            for size in ("preview", "full"):
                ts = []
                for a in amounts:
                    t0 = time.perf_counter()
                    r = c.get(f"/api/sessions/{sid}/image",
                              params={"edit": f"smile={a}", "size": size})
                    ts.append(time.perf_counter() - t0)
                    assert r.status_code == 200, r.text
                times[size] = ts
            c.delete(f"/api/sessions/{sid}")
            rows.append((f"{side}x{side}", statistics.median(times["preview"]),
                         max(times["preview"]), statistics.median(times["full"])))
    print(f"| photo | preview median s | preview max s | full-size median s |  "
          f"({args.moves} moves, {args.threads} thread(s))")
    print("|---|---|---|---|")
    for name, med, mx, full in rows:
        print(f"| {name} | {med:.3f} | {mx:.3f} | {full:.3f} |")


if __name__ == "__main__":
    main()
