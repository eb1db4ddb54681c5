"""realedit.threads: OpenMP's waiting set before torch loads, thread counts chosen from the
CPUs other programs leave free, and every explicit choice winning. Timings beside a CPU hog
are in bench/busy.py (README "Performance"), not here."""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from realedit import threads

REPO = Path(__file__).resolve().parents[1]


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "KMP_"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _child(code: str, **extra) -> str:
    p = subprocess.run([sys.executable, "-c", code], env=_clean_env(**extra), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_importing_realedit_sets_a_short_spin_before_torch_loads():
    code = "import os, realedit; print(os.environ.get('GOMP_SPINCOUNT'))"
    assert _child(code) == threads.SPINCOUNT
    # the CLI module imports realedit first, so `realedit ...` gets it too
    assert _child("import os, realedit.cli; print(os.environ.get('GOMP_SPINCOUNT'))") == threads.SPINCOUNT


@pytest.mark.parametrize("var,value", [("GOMP_SPINCOUNT", "300000"),
                                       ("OMP_WAIT_POLICY", "PASSIVE")])
def test_a_users_wait_setting_wins(var, value):
    code = "import os, realedit; print(os.environ.get('GOMP_SPINCOUNT'))"
    assert _child(code, **{var: value}) == (value if var == "GOMP_SPINCOUNT" else "None")


def test_nothing_is_set_once_torch_is_loaded():
    # too late for this process's OpenMP: setting it would only reach child processes
    code = ("import os, sys; sys.modules.setdefault('torch', sys); import realedit; "
            "print(os.environ.get('GOMP_SPINCOUNT'))")
    assert _child(code) == "None"


def test_torch_wheel_uses_gnu_openmp():
    """GOMP_SPINCOUNT is libgomp's variable: the torch wheel must load libgomp (Intel's or
    LLVM's runtime would want KMP_BLOCKTIME instead)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/maps")
    maps = open("/proc/self/maps").read()
    assert "libgomp" in maps and "libiomp" not in maps and "libomp.so" not in maps


def test_free_threads():
    assert threads.free_threads(2, None) == 2          # unknown load: all
    assert threads.free_threads(2, 0.1) == 2           # a little noise: all
    assert threads.free_threads(2, 0.6) == 1           # something else running: one fewer
    assert threads.free_threads(2, 5.0) == 1           # never below one
    assert threads.free_threads(16, 3.1) == 13
    assert threads.free_threads(16, 0.0, sharing=2) == 8  # two stages of this process at once
    assert threads.free_threads(2, 0.0, sharing=3) == 1


def test_monitor_subtracts_this_process(monkeypatch):
    """others = the CPUs' busy time less this process's own CPU time."""
    clock = {"t": 100.0, "own": 5.0, "busy": 50.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(threads.time, "process_time", lambda: clock["own"])
    monkeypatch.setattr(threads, "_read_stat", lambda cpus: (clock["busy"] * 100, 1e9))
    m = threads.CpuMonitor.__new__(threads.CpuMonitor)
    m.period, m.window, m.cpus, m.hz = 0.25, 1.0, {0, 1}, 100.0
    m._samples, m._lock = [], threading.Lock()
    m._sample()
    assert m.others() is None                           # one sample: nothing known yet
    # 1 s later: this process used 0.9 s of CPU, the CPUs were busy 1.6 s in all
    clock.update(t=101.0, own=5.9, busy=51.6)
    m._sample()
    assert m.others() == pytest.approx(0.7)
    # our own work alone is not "others"
    clock.update(t=102.0, own=7.9, busy=53.6)
    m._sample()
    assert m.others() == pytest.approx(0.0, abs=1e-9)


def test_stat_parsing_counts_only_this_process_cpus(tmp_path, monkeypatch):
    text = ("cpu  10 0 10 100 0 0 0 0 0 0\n"
            "cpu0 1 2 3 100 4 5 6 7 0 0\n"
            "cpu1 1000 0 0 0 0 0 0 0 0 0\n"
            "intr 1 2 3\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: (
        real_open(tmp_path / "stat", *a, **k) if p == "/proc/stat" else real_open(p, *a, **k)))
    (tmp_path / "stat").write_text(text)
    busy, total = threads._read_stat({0})
    assert busy == 1 + 2 + 3 + 5 + 6 + 7 and total == busy + 100 + 4


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs /proc/stat")
def test_monitor_sees_a_cpu_hog():
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        m = threads.CpuMonitor(period=0.1, window=0.5)
        time.sleep(1.0)
        seen = m.others()
        m.stop()
    finally:
        hog.kill()
        hog.wait()
    # the hog keeps a CPU busy (on a machine shared with other jobs, more is busy still)
    assert seen is not None and seen > 0.5


@pytest.fixture
def default_threads(monkeypatch):
    """This thread as a program that never chose a count: torch at its start-up default."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    n = torch.get_num_threads()
    torch.set_num_threads(threads._torch_default())
    monkeypatch.setattr(threads._state, "last", None, raising=False)
    yield
    torch.set_num_threads(n)


class _FakeMonitor:
    def __init__(self, others):
        self.value = others

    def others(self):
        return self.value


def test_stage_follows_the_free_cpus_and_restores(default_threads, monkeypatch):
    fake = _FakeMonitor(0.0)
    monkeypatch.setattr(threads, "monitor", lambda: fake)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    monkeypatch.setattr(threads, "RECHECK", 0.0)
    start = torch.get_num_threads()
    gov = threads.Governor()
    seen = []
    with gov.stage() as tick:
        seen.append(torch.get_num_threads())
        fake.value = 2.0            # another program starts
        tick()
        seen.append(torch.get_num_threads())
        fake.value = 0.0            # and ends
        tick()
        seen.append(torch.get_num_threads())
    assert seen == [4, 2, 4]
    assert torch.get_num_threads() == start


def test_concurrent_stages_share_the_cpus(default_threads, monkeypatch):
    monkeypatch.setattr(threads, "monitor", lambda: _FakeMonitor(0.0))
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    gov = threads.Governor()
    with gov.stage():
        assert torch.get_num_threads() == 4
        got = []

        def other():
            with gov.stage():
                got.append(torch.get_num_threads())

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert got == [2]


def test_explicit_choices_win(default_threads, monkeypatch):
    monkeypatch.setattr(threads, "monitor", lambda: _FakeMonitor(9.0))  # a very busy machine
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    with threads.Governor(3).stage():                  # threads=3 / --threads 3
        assert torch.get_num_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")         # the user's variable
    assert threads.Governor().choose() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    with threads.Governor().stage():                   # adaptive: the busy machine gets 1
        assert torch.get_num_threads() == 1
    torch.set_num_threads(3)                           # the program's own torch.set_num_threads
    with threads.Governor().stage():
        assert torch.get_num_threads() == 3
    # a launcher's ceiling (Ray's OMP_NUM_THREADS) is a limit, not a fixed count
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(threads._state, "last", None)
    torch.set_num_threads(2)
    monkeypatch.setattr(threads, "monitor", lambda: _FakeMonitor(0.0))
    assert threads.Governor(limit=2).choose() == 2
    monkeypatch.setattr(threads, "monitor", lambda: _FakeMonitor(1.0))
    assert threads.Governor(limit=2).choose() == 1


def test_threads_argument_is_checked():
    from realedit.errors import UsageError

    with pytest.raises(UsageError):
        threads.Governor(0)
