"""Shared test setup.

Data outside the repository: tests/datapaths.py (``REALEDIT_SHARED=/nonexistent`` runs the suite
as a clone without ../shared would; only tests that need the CelebA data or scorers skip).
Numerics: a test compares floats bit for bit only where the product promises it (a zero edit
returns the photo unchanged, pixels outside the paste mask, file round trips); elsewhere it
states its tolerance. Check with OMP_NUM_THREADS=1 and 2 and ATEN_CPU_CAPABILITY=default.
"""
import os

import pytest
import torch

from datapaths import SHARED

# Released InterFaceGAN boundaries are research files in ../shared; realedit finds them through
# $REALEDIT_BOUNDARIES (it has no development-checkout path of its own).
if (SHARED / "data" / "interfacegan_boundaries").is_dir():
    os.environ.setdefault("REALEDIT_BOUNDARIES", str(SHARED / "data" / "interfacegan_boundaries"))


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # The tests use tiny networks on 2 cores that other jobs share; two intra-op threads
    # spinning against each other made small convolutions 10-30x slower here. An explicit
    # OMP_NUM_THREADS wins, so `OMP_NUM_THREADS=2 pytest` really checks that no result
    # depends on the thread count (.ci/run does, together with ATEN_CPU_CAPABILITY=default).
    n = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny self-made model + bank of tests/bad_inputs/make.py, built once per module
    (the CLI, exit-code and bad-input suites edit with it; a module may override it)."""
    from bad_inputs import make

    return make.make_model(tmp_path_factory.mktemp("model"))


# The `slow` marker (setup.cfg) means "more than a few seconds on a 2-core CPU"; the portable
# pass of .ci/run leaves slow tests out. An unmarked test whose call took longer than this is
# named at the end of the run, so the marker stays true as tests grow (not a failure: timings
# on a shared machine vary several-fold).
SLOW_SECONDS = 3.0
_unmarked_slow: list[tuple[float, str]] = []


def pytest_runtest_logreport(report):
    if report.when == "call" and report.duration > SLOW_SECONDS and "slow" not in report.keywords:
        _unmarked_slow.append((report.duration, report.nodeid))


def pytest_terminal_summary(terminalreporter):
    if _unmarked_slow:
        terminalreporter.section(f"tests over {SLOW_SECONDS:g} s without the slow marker")
        for secs, nodeid in sorted(_unmarked_slow, reverse=True):
            terminalreporter.write_line(f"{secs:6.1f} s  {nodeid}")
