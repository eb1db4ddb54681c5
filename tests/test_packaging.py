"""`pip wheel .` gives a package that works without the repository: the embedded model, its
encoder, bank, manifest and the built-in registry ship inside it (realedit/_weights), training
checkpoints and tests do not. (.ci/run installs that wheel into a fresh venv and edits a photo.)"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_embedded_model_and_every_subpackage(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if tuple(int(x) for x in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.skip("building without isolation needs setuptools >= 70.1 in this environment")
    # --no-build-isolation: no index is reached at test time; this venv's setuptools builds it
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "-q", "-w", str(tmp_path), str(REPO)], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = tmp_path.glob("realedit-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    shipped = {n.split("/", 2)[2] for n in names if n.startswith("realedit/_weights/")}
    for f in ("registry.toml", "README.md", "realedit-celeba64.pt", "realedit-celeba64.encoder.pt",
              "realedit-celeba64.directions.npz", "realedit-celeba64.directions.json",
              "realedit-celeba64.model.json"):
        assert f in shipped, f
    assert not any("checkpoint" in f or f.startswith("training/") for f in shipped), shipped
    # every package of the source tree is in the wheel (a new subpackage cannot be forgotten)
    for init in (REPO / "realedit").rglob("__init__.py"):
        rel = init.relative_to(REPO).as_posix()
        assert rel in names, rel
    assert not any(n.startswith("tests/") for n in names)
    # and every file the shipped registry says is bundled did ship
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    reg = tomllib.loads(zipfile.ZipFile(whl).read("realedit/_weights/registry.toml").decode())
    bundled = {e["bundled"] for e in reg["weights"].values() if "bundled" in e}
    assert bundled and bundled <= shipped, bundled - shipped
