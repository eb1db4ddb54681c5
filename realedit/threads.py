"""How many CPU threads torch may use, on a machine that other programs share.

torch's CPU kernels run on OpenMP (this wheel: GNU libgomp). A libgomp thread that reaches a
barrier before its sibling spins for GOMP_SPINCOUNT rounds (300 000 by default, ~8 ms on this
project's CPU) before it sleeps. On an idle machine that is what makes two threads fast (a
sleeping sibling takes tens of microseconds to wake, and a small network runs thousands of
short parallel regions per second); on a busy one the sibling is often descheduled, and its
partner burns whole time slices spinning: README's main job took 254 s beside a CPU hog with
two threads, against 6.4 s idle (bench/busy.py).

So realedit, unless told otherwise:
- sets ``GOMP_SPINCOUNT`` to `SPINCOUNT` before torch loads (`configure_env`, called when
  realedit is imported; child processes inherit it): a short spin still covers the gaps
  between kernels on an idle machine and bounds the loss when a sibling is descheduled;
- runs each torch stage (an inversion, an edit) with as many threads as CPUs are free *now*
  (`Governor`): a `CpuMonitor` thread reads /proc/stat twice a second and subtracts this
  process's own CPU time, so other programs' demand is known at any moment, and an inversion
  re-decides between its steps. Several stages of one process running at once (a server's
  preview beside an inversion) share the free CPUs.

An explicit choice always wins: ``OMP_NUM_THREADS`` (a fixed count), ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT`` (the runtime's own waiting), ``torch.set_num_threads`` called by the
program, or ``threads=N`` (``--threads N``) given to realedit.

This module imports nothing heavy: the CLI calls it before torch is imported.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time

# libgomp spin rounds before a waiting thread sleeps. ~28 ns per round here (a `pause`), so
# 10 000 is ~0.3 ms: longer than the gap between two kernels of the embedded model (tens of
# microseconds), far shorter than a scheduler time slice. bench/busy.py compares values.
SPINCOUNT = "10000"
# Variables with which a user (or a launcher) states how OpenMP should wait: any of them set,
# realedit sets nothing.
WAIT_VARIABLES = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
# Other programs' CPU use (cores) tolerated beside a full team: above it, one thread fewer.
# Two threads that share a core with a busy program collapse (bench/busy.py); one thread fewer
# costs ~10 % on an idle 2-core machine.
TOLERATED = 0.25
# The monitor's sampling period, and the window its estimate averages (seconds).
PERIOD = 0.25
WINDOW = 1.0
# How often a running stage re-decides its thread count (seconds).
RECHECK = 0.5


def configure_env(environ=None) -> dict:
    """Set realedit's OpenMP defaults in ``environ`` (os.environ) where the user set nothing.
    Only effective before the OpenMP runtime loads (before torch is imported); processes
    started later inherit it. Returns what it set."""
    environ = os.environ if environ is None else environ
    if any(environ.get(k, "").strip() for k in WAIT_VARIABLES):
        return {}
    environ["GOMP_SPINCOUNT"] = SPINCOUNT
    return {"GOMP_SPINCOUNT": SPINCOUNT}


def env_threads(environ=None) -> int | None:
    """The thread count fixed by ``OMP_NUM_THREADS`` (its first value), or None."""
    environ = os.environ if environ is None else environ
    text = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def affinity_cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def quota_cpus() -> float | None:
    """CPUs the process's cgroup may use (a container's ``--cpus``), or None when unlimited."""
    try:
        text = open("/sys/fs/cgroup/cpu.max").read().split()  # cgroup v2
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v1
        quota = int(open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read())
        period = int(open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, capped by its cgroup's quota."""
    n = len(affinity_cpus())
    q = quota_cpus()
    if q is not None:
        n = min(n, max(1, math.ceil(q - 0.01)))
    return max(1, n)


def _read_stat(cpus: set[int]) -> tuple[float, float] | None:
    """(busy, total) jiffies of ``cpus`` from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    busy = total = 0.0
    for line in lines:
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *vals = line.split()
        try:
            cpu = int(name[3:])
        except ValueError:
            continue
        if cpu not in cpus:
            continue
        v = [float(x) for x in vals[:8]] + [0.0] * max(0, 8 - len(vals))
        user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
        b = user + nice + system + irq + softirq + steal  # guest time is inside user
        busy += b
        total += b + idle + iowait
    return (busy, total) if total > 0 else None


class CpuMonitor:
    """Other programs' CPU use on this process's CPUs, kept fresh by a daemon thread.

    others(): cores busy with other processes over the last `WINDOW` seconds: the CPUs' busy
    time (/proc/stat) less this process's own CPU time. None until a first period has passed,
    or where /proc/stat does not exist (then `os.getloadavg` stands in, less this process).
    """

    def __init__(self, period: float = PERIOD, window: float = WINDOW):
        self.period, self.window = float(period), float(window)
        self.cpus = set(affinity_cpus())
        self.hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._samples: list[tuple[float, float, float]] = []  # (wall, busy s, own cpu s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="realedit-cpu-monitor",
                                        daemon=True)
        self._sample()
        self._thread.start()

    def _sample(self) -> None:
        stat = _read_stat(self.cpus)
        now, own = time.monotonic(), time.process_time()
        if stat is None:
            busy = float("nan")
        else:
            busy = stat[0] / self.hz
        with self._lock:
            self._samples.append((now, busy, own))
            keep = now - self.window - 2 * self.period
            while len(self._samples) > 2 and self._samples[1][0] < keep:
                self._samples.pop(0)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def stop(self) -> None:
        self._stop.set()

    def others(self) -> float | None:
        with self._lock:
            samples = list(self._samples)
        if len(samples) < 2:
            return None
        t1, b1, o1 = samples[-1]
        # the oldest sample within the window (at least one period back)
        t0, b0, o0 = next((s for s in samples if t1 - s[0] <= self.window + 1e-6), samples[0])
        if t1 - t0 < 0.5 * self.period:
            t0, b0, o0 = samples[-2]
        dt = t1 - t0
        if dt <= 0:
            return None
        if math.isnan(b1) or math.isnan(b0):
            return _loadavg_others(o1 - o0, dt)
        # tick accounting (1/hz s) makes a few hundredths of noise: never below zero
        return max(0.0, ((b1 - b0) - (o1 - o0)) / dt)


def _loadavg_others(own_cpu: float, dt: float) -> float | None:
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return None
    return max(0.0, load - own_cpu / dt)


_monitor: CpuMonitor | None = None
_monitor_lock = threading.Lock()


def monitor() -> CpuMonitor:
    """The process's CpuMonitor, started on first use (and again in a forked child)."""
    global _monitor
    with _monitor_lock:
        if _monitor is None:
            _monitor = CpuMonitor()
        return _monitor


def _forget_monitor() -> None:  # a forked child has the object but not its thread
    global _monitor
    _monitor = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_monitor)


def free_threads(limit: int, others: float | None, sharing: int = 1) -> int:
    """Threads for one of ``sharing`` concurrent stages when other programs keep ``others``
    cores busy (None: unknown, taken as none) and at most ``limit`` threads are wanted."""
    busy = 0 if others is None or others <= TOLERATED else math.ceil(others - TOLERATED)
    return max(1, (max(1, limit - busy)) // max(1, sharing))


# Stages of torch work running now in this process (all Governors): they share the free CPUs.
_active: list = []
_active_lock = threading.Lock()


class Governor:
    """Chooses torch's thread count for each stage of work (see the module's docstring).

    threads: None = adapt to the free CPUs (unless OMP_NUM_THREADS or the program's own
    torch.set_num_threads fixed a count); an int = exactly that many.
    """

    def __init__(self, threads: int | None = None, *, limit: int | None = None):
        if threads is not None and not int(threads) >= 1:
            from .errors import UsageError
            raise UsageError(f"threads must be at least 1, got {threads}")
        self.threads = None if threads is None else int(threads)
        # A launcher's ceiling (Ray sets OMP_NUM_THREADS to an actor's CPUs): adapt below it.
        self.limit = None if limit is None else max(1, int(limit))

    def fixed(self) -> int | None:
        """The count stated by the caller, OMP_NUM_THREADS or the program, else None."""
        if self.threads is not None:
            return self.threads
        if self.limit is None and env_threads() is not None:
            return env_threads()
        return _user_threads()

    def choose(self) -> int:
        """Threads for a stage starting (or going on) now."""
        fixed = self.fixed()
        if fixed is not None:
            return fixed
        with _active_lock:
            sharing = max(1, len(_active))
        cpus = usable_cpus() if self.limit is None else min(usable_cpus(), self.limit)
        return free_threads(cpus, monitor().others(), sharing)

    @contextlib.contextmanager
    def stage(self):
        """Run a stage of torch work in this thread: torch's thread count is set for it (and
        restored after); yields a ``tick()`` to call between steps, which re-decides at most
        every `RECHECK` seconds."""
        import torch

        token = object()
        with _active_lock:
            _active.append(token)
        before = torch.get_num_threads()
        last = [0.0]

        def apply() -> None:
            n = self.choose()
            if n != torch.get_num_threads():
                _set_threads(n)
            last[0] = time.monotonic()

        def tick(*_) -> None:
            if time.monotonic() - last[0] >= RECHECK:
                apply()

        try:
            apply()
            yield tick
        finally:
            with _active_lock:
                _active.remove(token)
            if torch.get_num_threads() != before:
                _set_threads(before)


def ticking(tick, callback=None):
    """A progress callback (step, total, loss) that ticks ``tick`` first."""
    def cb(*args):
        tick()
        if callback is not None:
            callback(*args)
    return cb


# torch keeps the thread count per thread (OpenMP's nthreads ICV); a thread that has not run a
# parallel region yet takes the value set last by any thread. realedit remembers what it set,
# so a count that differs from both that and torch's start-up default is the program's own.
_ours: set[int] = set()
_state = threading.local()


def _torch_default() -> int:
    return env_threads() or len(affinity_cpus())


def _set_threads(n: int) -> None:
    import torch

    _ours.add(int(n))
    torch.set_num_threads(int(n))
    _state.last = int(n)


def _user_threads() -> int | None:
    """The count the program fixed with torch.set_num_threads in this thread, or None."""
    import torch

    cur = torch.get_num_threads()
    last = getattr(_state, "last", None)
    if last is not None:
        return None if cur == last else cur
    return None if cur == _torch_default() or cur in _ours else cur


def start_monitor() -> None:
    """Start sampling now (the CLI does at start, so the first stage has a fresh estimate)."""
    monitor()
