"""`realedit serve` under load, over real sockets on 127.0.0.1 (the server is its own process):

1. long polls: N clients wait on GET /api/sessions/{id}?wait= for a photo whose inversion is
   held (the server of this part holds it while a flag file exists); meanwhile /api/health and
   a preview edit of another photo are timed.
2. soak: C clients x R rounds of upload -> invert -> P previews -> full-size render -> delete,
   the rounds in step; every request must be answered, and the server's RSS after the last
   round is compared with after the first.

    python bench/serve_soak.py [--polls 40] [--clients 6] [--rounds 10] [--previews 5]
                               [--inverter encoder] [--threads 1] [--skip-polls] [--skip-soak]

Photos: CelebA-HQ from ../shared when present (1024 px), else the astronaut. Exits 1 when a
request went unanswered or the RSS grew by more than 20 %.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from common import photos, print_table  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start(cmd: list[str], port: int, threads: int):
    import httpx2 as httpx

    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not start: " + (proc.communicate()[1] or "")[-2000:])


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


# ------------------------------------------------------------------------------ held server

def held_server(port: int, flag: str, threads: int) -> None:
    """The app with the embedded model (encoder inverter) whose inversions wait while ``flag``
    exists: a photo stays 'inverting' as long as the bench needs."""
    import torch
    import uvicorn

    from realedit import Editor
    from realedit.serve import create_app, warm_up

    torch.set_num_threads(threads)
    editor = Editor.from_pretrained(inverter="encoder")
    inner = editor.inverter

    class Held:
        name = inner.name

        def invert(self, images, space=None, callback=None):
            while os.path.exists(flag):
                time.sleep(0.05)
            return inner.invert(images, space, callback=callback)

    editor.inverter = Held()
    warm_up(editor)
    uvicorn.run(create_app(editor), host="127.0.0.1", port=port, log_level="warning")


def long_polls(args) -> list:
    import httpx2 as httpx

    port = free_port()
    flag = tempfile.mktemp(prefix="realedit-hold-")
    proc, base = start([sys.executable, __file__, "--held-server", str(port), flag,
                        str(args.threads)], port, args.threads)
    rows = []
    try:
        pick = photos(3)  # a 1024 px CelebA-HQ photo when ../shared is there
        photo = (pick[1] if len(pick) > 1 else pick[0]).read_bytes()
        with httpx.Client(base_url=base, timeout=120) as c:
            first = c.post("/api/sessions", files={"file": ("a.jpg", photo)},
                           data={"faces": "largest"}).json()
            ready, size = first["id"], f"{first['width']}x{first['height']}"
            assert c.get(f"/api/sessions/{ready}", params={"wait": 120}).json()["state"] == "ready"
            c.get(f"/api/sessions/{ready}/image", params={"edit": "smile=1"})  # preview made
            for n in sorted({0, args.polls}):
                Path(flag).touch()
                held = c.post("/api/sessions", files={"file": ("b.jpg", photo)},
                              data={"faces": "largest"}).json()["id"]
                answers, threads = [], []
                for _ in range(n):
                    t = threading.Thread(target=lambda: answers.append(httpx.get(
                        f"{base}/api/sessions/{held}", params={"wait": 240},
                        timeout=300).status_code))
                    t.start()
                    threads.append(t)
                deadline = time.monotonic() + 60
                while (c.get("/api/health").json()["long_polls"] < n
                       and time.monotonic() < deadline):
                    time.sleep(0.1)
                waiting = c.get("/api/health").json()["long_polls"]
                t_health, t_preview = [], []
                for i in range(args.samples):
                    t0 = time.perf_counter()
                    assert c.get("/api/health").status_code == 200
                    t_health.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    r = c.get(f"/api/sessions/{ready}/image",
                              params={"edit": f"smile={(-1) ** i * (1 + i % 3)}"})
                    assert r.status_code == 200
                    t_preview.append(time.perf_counter() - t0)
                os.unlink(flag)
                for t in threads:
                    t.join(300)
                c.delete(f"/api/sessions/{held}")
                rows.append([waiting, f"{statistics.median(t_health):.3f}",
                             f"{max(t_health):.3f}", f"{statistics.median(t_preview):.3f}",
                             f"{max(t_preview):.3f}",
                             f"{sum(a == 200 for a in answers)}/{n}"])
    finally:
        if os.path.exists(flag):
            os.unlink(flag)
        stop(proc)
    print(f"\nlong polls: /api/health and a preview (768 px, of a {size} photo) while clients "
          f"wait on a held inversion; {args.samples} samples each, {args.threads} thread(s)")
    print_table(["polls waiting", "health p50 s", "health max s", "preview p50 s",
                 "preview max s", "polls answered"], rows)
    return rows


# ------------------------------------------------------------------------------ soak

def soak(args) -> bool:
    import httpx2 as httpx

    port = free_port()
    proc, base = start([sys.executable, "-m", "realedit.cli", "serve", "--port", str(port),
                        "--inverter", args.inverter], port, args.threads)
    pool = [p.read_bytes() for p in photos(args.clients)]
    rows, failures, rss = [], [], []
    barrier = threading.Barrier(args.clients + 1)
    times: dict[str, list] = {}
    lock = threading.Lock()

    def timed(kind, fn):
        t0 = time.perf_counter()
        try:
            r = fn()
        except httpx.HTTPError as exc:
            with lock:
                failures.append(f"{kind}: {type(exc).__name__}: {exc}")
            return None
        with lock:
            times.setdefault(kind, []).append(time.perf_counter() - t0)
            if r.status_code >= 400:
                failures.append(f"{kind}: HTTP {r.status_code} {r.text[:200]}")
        return r

    def client(k: int):
        photo = pool[k % len(pool)]
        with httpx.Client(base_url=base, timeout=600) as c:
            for rnd in range(args.rounds):
                t0 = time.perf_counter()
                r = timed("upload", lambda: c.post(
                    "/api/sessions", files={"file": (f"c{k}.jpg", photo)},
                    data={"faces": "largest"}))
                sid = r.json()["id"] if r is not None and r.status_code == 201 else None
                if sid is not None:
                    r = timed("wait", lambda: c.get(f"/api/sessions/{sid}",
                                                    params={"wait": 300}))
                    if r is not None and r.json().get("state") != "ready":
                        with lock:
                            failures.append(f"not ready: {r.text[:200]}")
                    with lock:
                        times.setdefault("inverted", []).append(time.perf_counter() - t0)
                    for i in range(args.previews):
                        timed("preview", lambda: c.get(
                            f"/api/sessions/{sid}/image",
                            params={"edit": [f"smile={(-1) ** i * (1 + i % 3)}",
                                             f"age={i % 2}"], "keep": "gender"}))
                    timed("full", lambda: c.get(f"/api/sessions/{sid}/image",
                                                params={"edit": "smile=2", "size": "full"}))
                    timed("delete", lambda: c.delete(f"/api/sessions/{sid}"))
                barrier.wait(timeout=3600)  # round done
                barrier.wait(timeout=3600)  # RSS sampled

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    t_start = time.perf_counter()
    try:
        for t in threads:
            t.start()
        for rnd in range(args.rounds):
            barrier.wait(timeout=3600)
            rss.append(rss_mb(proc.pid))
            with lock:
                snap = {k: list(v) for k, v in times.items()}
                times.clear()
                n_fail = len(failures)
            barrier.wait(timeout=3600)
            n_req = sum(len(v) for k, v in snap.items() if k != "inverted")
            rows.append([rnd + 1, n_req, n_fail, f"{pct(snap.get('upload', []), .5):.2f}",
                         f"{pct(snap.get('inverted', []), .5):.1f}",
                         f"{pct(snap.get('inverted', []), .95):.1f}",
                         f"{pct(snap.get('preview', []), .5):.3f}",
                         f"{pct(snap.get('preview', []), .95):.3f}",
                         f"{pct(snap.get('full', []), .5):.2f}", f"{rss[-1]:.0f}"])
        for t in threads:
            t.join(600)
    finally:
        stop(proc)
    growth = rss[-1] / rss[0] - 1 if len(rss) >= 2 else float("nan")
    print(f"\nsoak: {args.clients} clients x {args.rounds} rounds of upload -> invert -> "
          f"{args.previews} previews -> full render -> delete; inverter {args.inverter}, "
          f"{args.threads} thread(s); {time.perf_counter() - t_start:.0f} s in all")
    print_table(["round", "requests", "failed (total)", "upload p50 s",
                 "upload->ready p50 s", "p95 s", "preview p50 s", "p95 s", "full p50 s",
                 "server RSS MB"], rows)
    print(f"server RSS after round 1: {rss[0]:.0f} MB, after round {len(rss)}: {rss[-1]:.0f} MB "
          f"({growth:+.1%}); unanswered or failed requests: {len(failures)}")
    for f in failures[:10]:
        print("  ", f)
    return not failures and abs(growth) <= 0.20


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--held-server":
        held_server(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--polls", type=int, default=40)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--previews", type=int, default=5)
    ap.add_argument("--inverter", default="encoder")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-polls", action="store_true")
    ap.add_argument("--skip-soak", action="store_true")
    args = ap.parse_args()
    ok = True
    if not args.skip_polls:
        long_polls(args)
    if not args.skip_soak:
        ok = soak(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
