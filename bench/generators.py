"""Generator speed and memory on the CPU: seconds per image and peak memory per family.

    python bench/generators.py [--families pggan stylegan stylegan2] [--resolutions 256 1024]
                               [--repeat 3] [--threads 2] [--batch 1] [--compile]

Each (family, resolution, mode) runs in a fresh subprocess with random weights in the full
official configuration at that resolution (PGGAN / StyleGAN fmap_base 8192, StyleGAN2
config-f channel_base 32768), so that peak memory is not polluted by earlier runs.

What is measured:
- fwd: ``synthesis(ws)`` under ``torch.no_grad()`` (noise="const"), as when rendering an edit.
- fwd+bwd: ``synthesis(ws)`` then ``loss.backward()`` with the generator's parameters frozen
  and gradients flowing to ``ws`` only: one latent-optimisation (inversion) step without the
  loss network.
- times: median wall-clock seconds per image over ``--repeat`` runs after one warm-up run.
  ``cpu`` columns give process CPU seconds per image (all threads): on a shared machine
  wall time is inflated by other jobs, CPU time much less so.
- peak RSS: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the worker process after the
  forward runs, then after the fwd+bwd runs (so the second includes the first). It counts
  everything resident: the Python interpreter and torch libraries, the weights and the
  activations. ``base`` is the RSS right after building the model (before any forward), so
  ``peak - base`` approximates the activation/workspace memory.
- ``--compile`` adds rows with ``torch.compile(G.synthesis)`` (inductor, CPU); the one-off
  compile time (first fwd and first fwd+bwd call) is reported separately.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("pggan", "stylegan", "stylegan2")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build(family: str, resolution: int):
    sys.path.insert(0, str(ROOT))
    if family == "pggan":
        from realedit.models.pggan import PGGANGenerator
        return PGGANGenerator(resolution=resolution)
    if family == "stylegan":
        from realedit.models.stylegan import StyleGANGenerator
        return StyleGANGenerator(resolution=resolution)
    if family == "stylegan2":
        from realedit.models.stylegan2 import StyleGAN2Generator
        return StyleGAN2Generator(resolution=resolution)
    raise SystemExit(f"unknown family {family!r}; choose from {FAMILIES}")


def worker(family: str, resolution: int, repeat: int, threads: int, batch: int,
           compiled: bool) -> dict:
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    G = build(family, resolution).eval().requires_grad_(False)
    with torch.no_grad():
        ws = G.mapping(torch.randn(batch, G.z_dim))
    synth = torch.compile(G.synthesis) if compiled else G.synthesis
    out = {"family": family, "resolution": resolution, "compiled": compiled,
           "params_m": sum(p.numel() for p in G.parameters()) / 1e6, "base_mb": _rss_mb()}

    def fwd():
        with torch.no_grad():
            return synth(ws, noise="const")

    def fwd_bwd():
        w = ws.clone().requires_grad_(True)
        synth(w, noise="const").square().mean().backward()
        return w.grad

    def timed(fn):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - t0, time.process_time() - c0

    for name, fn in (("fwd", fwd), ("fwdbwd", fwd_bwd)):
        first = timed(fn)  # warm-up; includes compilation when compiled
        runs = [timed(fn) for _ in range(repeat)]
        out[f"{name}_s"] = statistics.median(r[0] for r in runs) / batch
        out[f"{name}_cpu_s"] = statistics.median(r[1] for r in runs) / batch
        out[f"{name}_first_s"] = first[0]
        out[f"{name}_peak_mb"] = _peak_mb()
    return out


def run_one(args, family, resolution, compiled) -> dict:
    cmd = [sys.executable, __file__, "--_worker", family, str(resolution),
           "--repeat", str(args.repeat), "--threads", str(args.threads),
           "--batch", str(args.batch)] + (["--compile"] if compiled else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return {"family": family, "resolution": resolution, "compiled": compiled,
                "error": tail[0][:120]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_table(rows, args) -> None:
    print(f"\nbatch {args.batch}, {args.threads} threads, median of {args.repeat}; "
          "s = wall seconds per image, cpu = process CPU seconds per image (all threads)")
    head = (f"{'family':<10}{'res':>5} {'mode':<8}{'fwd s':>8}{'cpu':>7}{'fwd+bwd s':>11}"
            f"{'cpu':>7}{'base MB':>9}{'peak fwd':>9}{'peak f+b':>9}{'params M':>9}"
            f"{'compile s':>10}")
    print(head)
    print("-" * len(head))
    for r in rows:
        mode = "compile" if r["compiled"] else "eager"
        if "error" in r:
            print(f"{r['family']:<10}{r['resolution']:>5} {mode:<8}FAILED: {r['error']}")
            continue
        comp = (f"{r['fwd_first_s'] - r['fwd_s'] * args.batch:.0f}+"
                f"{r['fwdbwd_first_s'] - r['fwdbwd_s'] * args.batch:.0f}") if r["compiled"] else "-"
        print(f"{r['family']:<10}{r['resolution']:>5} {mode:<8}{r['fwd_s']:>8.2f}"
              f"{r['fwd_cpu_s']:>7.2f}{r['fwdbwd_s']:>11.2f}{r['fwdbwd_cpu_s']:>7.2f}"
              f"{r['base_mb']:>9.0f}{r['fwd_peak_mb']:>9.0f}{r['fwdbwd_peak_mb']:>9.0f}"
              f"{r['params_m']:>9.1f}{comp:>10}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--resolutions", nargs="+", type=int, default=[256, 1024])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="also time torch.compile(G.synthesis)")
    p.add_argument("--_worker", nargs=2, metavar=("FAMILY", "RES"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._worker:
        fam, res = args._worker[0], int(args._worker[1])
        print(json.dumps(worker(fam, res, args.repeat, args.threads, args.batch, args.compile)))
        return
    load0 = os.getloadavg()
    rows = []
    for res in args.resolutions:
        for fam in args.families:
            for compiled in ([False, True] if args.compile else [False]):
                r = run_one(args, fam, res, compiled)
                rows.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
    print_table(rows, args)
    load1 = os.getloadavg()
    print(f"load average (1 min) at start {load0[0]:.1f}, at end {load1[0]:.1f} on "
          f"{os.cpu_count()} cores: above ~{args.threads} the machine is shared and wall times "
          "are inflated")


if __name__ == "__main__":
    main()
