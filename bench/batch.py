"""Throughput of `realedit batch`: the local engine vs Ray on the same photos, and Ray with 1
vs 2 network workers. Photos are made from demo/photos/astronaut.jpg (as in tests/test_batch_jobs.py:
scaled, flipped, recoloured copies plus broken files), so anyone can re-run it.

    python bench/batch.py [--photos 60] [--inverter encoder] [--ray-workers 1 2]

Prints one table; the Ray rows include starting the job's workers (actors, model loads) but
not the local Ray cluster itself, started once (its start-up time is printed).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--bad-share", type=float, default=0.2)
    ap.add_argument("--inverter", default="encoder")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ray-workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads per network worker")
    args = ap.parse_args()

    import torch

    from realedit.batch import JobSpec, run_job
    from test_batch_jobs import make_photos

    torch.set_num_threads(args.threads)
    spec = JobSpec(edits={"smile": 2.0}, keep=("gender",), inverter=args.inverter, steps=args.steps,
                   threads=args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        bad = int(round(args.photos * args.bad_share))
        make_photos(src, args.photos - bad, bad)

        def one(label, **kw):
            out = Path(tmp) / label.replace(" ", "_")
            t0 = time.perf_counter()
            s = run_job([str(src)], out, spec, batch=args.batch, **kw)
            dt = time.perf_counter() - t0
            rows.append((label, s.done, s.failed, dt, (s.done + s.failed) / dt))

        one("local, 1 cpu thread", cpu_workers=1)
        one("local, 2 cpu threads", cpu_workers=2)
        if args.ray_workers:
            import os
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # 127.0.0.1 only
            import ray
            t0 = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            ray_start = time.perf_counter() - t0
            try:
                for n in args.ray_workers:
                    # 2 cores: the workers share one, the CPU stage gets the other
                    one(f"ray, {n} workers", engine="ray", workers=n, cpus_per_worker=1 / n)
            finally:
                ray.shutdown()
    base = rows[0][3]
    print(f"\n{args.photos} photos ({bad} bad), inverter {args.inverter}, batch {args.batch}, "
          f"{args.threads} torch thread(s) per worker, {torch.get_num_threads()} here")
    print(f"{'engine':<24}{'edited':>8}{'failed':>8}{'seconds':>10}{'photos/s':>10}{'vs local':>10}")
    for label, done, failed, dt, rate in rows:
        print(f"{label:<24}{done:>8}{failed:>8}{dt:>10.1f}{rate:>10.2f}{base / dt:>10.2f}")
    if args.ray_workers:
        print(f"(local Ray cluster start-up, once: {ray_start:.1f} s)")


if __name__ == "__main__":
    main()
