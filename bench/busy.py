"""README's main job on an idle machine and beside a CPU hog, under several OpenMP strategies.

    python bench/busy.py [--rounds 3] [--hog 2] [--timeout 300] [--strategies NAME ...]
    python bench/busy.py --job serve ...     # realedit serve's slider preview instead

``--job serve``: a fresh process per run builds the app `realedit serve` builds (embedded
model, default inverter), uploads the astronaut at 512 px, waits for the inversion, and moves
a slider ``--moves`` times through the HTTP API (GET .../image?size=preview, as the page does);
the table gives the median preview time in milliseconds (README: 133 ms in the browser, idle)
and the inversion's seconds in brackets.

Each run is the README's first command as a user runs it (a fresh process: `realedit
demo/photos/astronaut.jpg --attr smile=+3 --keep gender -o TMP --compare`), with only the
strategy's variables set (every OMP_* / GOMP_* variable of the caller is removed). "loaded"
runs have ``--hog`` processes spinning beside it (as a browser or another job would). Runs
are interleaved (round by round, strategies in turn, idle and loaded alternating), so a
shared machine's own load falls on all strategies alike; the 1-minute load average at the
start of each run is printed with the table (it includes the hog). Seconds are the whole
command's wall time ("edited in" inside brackets: what the command reports for the edit).

Strategies: ``before`` is torch's and libgomp's own defaults, i.e. realedit before it chose
threads itself (OMP_NUM_THREADS = the CPUs, GOMP_SPINCOUNT = libgomp's 300000);
``default`` is realedit as shipped (no variable set: threads chosen from the free CPUs per
stage, short spin).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, CpuHog, machine, print_table  # noqa: E402

CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
STRATEGIES = {
    "before": {"OMP_NUM_THREADS": str(CPUS), "GOMP_SPINCOUNT": "300000"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "passive": {"OMP_NUM_THREADS": str(CPUS), "OMP_WAIT_POLICY": "PASSIVE"},
    "spin 10k": {"OMP_NUM_THREADS": str(CPUS), "GOMP_SPINCOUNT": "10000"},
    "spin 1k": {"OMP_NUM_THREADS": str(CPUS), "GOMP_SPINCOUNT": "1000"},
    "adaptive, spin 300k": {"GOMP_SPINCOUNT": "300000"},
    "default": {},
}


SERVE_CHILD = r"""
import io, json, statistics, sys, time
from fastapi.testclient import TestClient
from PIL import Image
from realedit import Editor
from realedit.serve import create_app, warm_up
editor = Editor.from_pretrained()
warm_up(editor)
buf = io.BytesIO()
Image.open(sys.argv[1]).convert("RGB").resize((512, 512), Image.LANCZOS).save(buf, "JPEG", quality=92)
with TestClient(create_app(editor)) as c:
    t0 = time.perf_counter()
    sid = c.post("/api/sessions", files={"file": ("a.jpg", buf.getvalue())},
                 data={"faces": "largest"}).json()["id"]
    state = "queued"
    while state in ("queued", "inverting"):
        state = c.get(f"/api/sessions/{sid}", params={"wait": 60}).json()["state"]
    assert state == "ready", state
    inv = time.perf_counter() - t0
    ts = []
    for i in range(int(sys.argv[2])):
        t = time.perf_counter()
        r = c.get(f"/api/sessions/{sid}/image", params={"edit": f"smile={(-1) ** i * (1 + i % 3)}",
                                                       "size": "preview"})
        assert r.status_code == 200, r.text
        ts.append(time.perf_counter() - t)
print(json.dumps({"median_ms": 1000 * statistics.median(ts[1:]), "invert_s": inv}))
"""


def run_once(env_vars: dict, out: Path, timeout: float, job: str = "main",
             moves: int = 13) -> tuple[float, float | None, float]:
    """main: (wall seconds, the command's own "edited in" seconds, 1-min load average at start);
    serve: (median preview ms, inversion seconds, load)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "KMP_"))}
    env.update(env_vars)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    photo = str(ROOT / "demo" / "photos" / "astronaut.jpg")
    load = os.getloadavg()[0]
    if job == "serve":
        try:
            p = subprocess.run([sys.executable, "-c", SERVE_CHILD, photo, str(moves)], env=env,
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return float("inf"), None, load
        if p.returncode != 0:
            raise SystemExit(f"the serve run failed: {p.stderr.strip()[-800:]}")
        import json

        r = json.loads(p.stdout.strip().splitlines()[-1])
        return r["median_ms"], r["invert_s"], load
    cmd = [sys.executable, "-m", "realedit.cli", photo,
           "--attr", "smile=+3", "--keep", "gender", "-o", str(out), "--compare", "-q"]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return float("inf"), None, load
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"the command failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    m = re.search(r"edited in ([0-9.]+) s", p.stderr)
    return wall, (float(m.group(1)) if m else None), load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hog", type=int, default=2, help="CPU-hog processes of the loaded runs")
    ap.add_argument("--timeout", type=float, default=300, help="seconds before a run is cut")
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    ap.add_argument("--conditions", nargs="+", default=["idle", "loaded"],
                    choices=["idle", "loaded"])
    ap.add_argument("--job", choices=["main", "serve"], default="main")
    ap.add_argument("--moves", type=int, default=13, help="--job serve: slider moves per run")
    args = ap.parse_args()

    runs = {(s, c): [] for s in args.strategies for c in args.conditions}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for ci, cond in enumerate(args.conditions):
                order = args.strategies[r % len(args.strategies):] + args.strategies[:r % len(args.strategies)]
                if (r + ci) % 2:
                    order = order[::-1]
                with CpuHog(args.hog if cond == "loaded" else 0):
                    if cond == "loaded":
                        time.sleep(1.0)  # the hog running before the command starts
                    for s in order:
                        res = run_once(STRATEGIES[s], Path(tmp) / "out", args.timeout, args.job,
                                       args.moves)
                        runs[(s, cond)].append(res)
                        what = "ms preview (inverted in" if args.job == "serve" else "s (edited in"
                        print(f"round {r + 1} {cond:6} {s:20} {res[0]:7.1f} {what} "
                              f"{res[1] if res[1] is not None else '-'} s), load {res[2]:.1f}",
                              file=sys.stderr, flush=True)

    def cell(rs):
        walls = [w for w, _, _ in rs]
        med = statistics.median(walls)
        edits = [e for _, e, _ in rs if e is not None]
        txt = "cut" if med == float("inf") else f"{med:.1f}"
        if edits and med != float("inf"):
            txt += f" ({statistics.median(edits):.1f})"
        return txt, med

    rows = []
    for s in args.strategies:
        row, meds = [s], {}
        for c in args.conditions:
            txt, meds[c] = cell(runs[(s, c)])
            loads = [l for _, _, l in runs[(s, c)]]
            row += [txt, f"{min(loads):.1f}-{max(loads):.1f}"]
        if len(args.conditions) == 2:
            i, l = meds["idle"], meds["loaded"]
            row.append(f"{l / i:.2f}" if l != float("inf") else "-")
        rows.append(row)
    head = ["strategy"]
    unit = "preview ms (invert s)" if args.job == "serve" else "s (edit s)"
    for c in args.conditions:
        head += [f"{c} {unit}", f"load {c}"]
    if len(args.conditions) == 2:
        head.append("loaded/idle")
    what = ("realedit serve's slider preview, 512 px astronaut" if args.job == "serve"
            else "README's main command")
    print(f"\n{what}, median of {args.rounds} interleaved runs; {machine()}; "
          f"loaded = beside {args.hog} CPU-hog processes; load = 1-min load average at the start "
          f"of the runs (min-max)")
    print_table(head, rows)
    if "default" in args.strategies and "before" in args.strategies and "idle" in args.conditions:
        d, b = cell(runs[("default", "idle")])[1], cell(runs[("before", "idle")])[1]
        print(f"default / before, idle: {d / b:.2f}")


if __name__ == "__main__":
    main()
