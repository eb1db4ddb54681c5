"""What the bench scripts share: the photos they run on and how they print a table."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def photos(n: int) -> list[Path]:
    """Up to n - 1 CelebA-HQ photos from ../shared (when present) plus the astronaut."""
    shared = ROOT.parent / "shared" / "data" / "celebahq"
    files = sorted(shared.glob("*.jpg"))[: max(n - 1, 0)] if shared.is_dir() else []
    return files + [ROOT / "demo" / "photos" / "astronaut.jpg"]


def fmt_row(cells, widths) -> str:
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))


def print_table(header, rows) -> None:
    """Columns padded to their widest cell, a dashed rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print(fmt_row(r, widths))
    sys.stdout.flush()


class CpuHog:
    """``n`` processes that keep a CPU busy each (a pure-Python loop: no memory, no I/O), as
    a browser or another job would; a context manager that stops them on exit."""

    def __init__(self, n: int):
        self.n, self.procs = int(n), []

    def __enter__(self):
        import subprocess

        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(self.n)]
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []


def machine() -> str:
    """'AMD EPYC, 2 CPUs' (the CPU model from /proc/cpuinfo where there is one)."""
    import os
    import platform

    name = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} CPUs"
