"""What a shorter OpenMP spin costs on an idle machine: the gaps between torch's kernels in
README's main job, and how many of them each GOMP_SPINCOUNT would sleep through.

    python bench/omp_gaps.py [--steps 100]

A libgomp thread that finishes its share of a kernel spins GOMP_SPINCOUNT rounds for the next
one before it sleeps; waking it costs a futex call (tens of microseconds, more in a VM). On an
idle machine a spin shorter than a gap between two kernels is such a wake-up per gap, which is
what made OMP_WAIT_POLICY=PASSIVE (no spin) 1.6x slower there. This profiles the main job's
inversion (one thread: the gaps are Python's dispatch between kernels, the same for any thread
count) and prints, per spin count, the share of gaps longer than the spin (one spin round is a
`pause` instruction: 28 ns on this project's CPU, timed with a C loop of 10^7; --pause-ns for
another CPU). Measured on a loaded machine the gaps are longer than idle ones (preemption), so the
shares are upper bounds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, print_table  # noqa: E402

# One `pause` (libgomp's cpu_relax) measured on this project's AMD EPYC (a C loop of 1e7).
PAUSE_NS = 28.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="inversion steps profiled")
    ap.add_argument("--pause-ns", type=float, default=PAUSE_NS,
                    help="ns per spin round on this CPU (default: measured here)")
    args = ap.parse_args()

    import numpy as np
    from torch.profiler import ProfilerActivity, profile

    from realedit import Editor

    ed = Editor.from_pretrained("realedit-celeba64", steps=args.steps, threads=1)
    prepared = [ed.prepare(ROOT / "demo" / "photos" / "astronaut.jpg")]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        ed.invert_prepared(prepared)
    events = [e for e in prof.events() if e.device_type.name == "CPU"]
    main_tid = max({e.thread for e in events}, key=lambda t: sum(e.thread == t for e in events))
    spans, end = [], -1.0
    for e in sorted((e for e in events if e.thread == main_tid), key=lambda e: e.time_range.start):
        if e.time_range.start >= end:       # a top-level kernel call (not nested in another)
            spans.append((e.time_range.start, e.time_range.end))
            end = e.time_range.end
        else:
            end = max(end, e.time_range.end)
    s = np.array(spans)
    gaps = s[1:, 0] - s[:-1, 1]             # microseconds
    print(f"\n{len(spans)} kernel calls in {(s[-1, 1] - s[0, 0]) / 1e6:.1f} s ({machine()}); gap "
          f"between calls: median {np.median(gaps):.0f} us, 90 % {np.percentile(gaps, 90):.0f} "
          f"us, 99 % {np.percentile(gaps, 99):.0f} us")
    rows = []
    for name, rounds in (("PASSIVE (0)", 0), ("1000", 1000), ("10000 (realedit)", 10000),
                         ("300000 (libgomp's default)", 300000)):
        spin_us = rounds * args.pause_ns / 1000
        n = int((gaps > spin_us).sum())
        rows.append([name, f"{spin_us:.0f}", f"{n}", f"{n / len(gaps):.2%}"])
    print_table(["GOMP_SPINCOUNT", "spin us", "gaps slept through", "share of gaps"], rows)


if __name__ == "__main__":
    main()
