"""`realedit directions ...` on a tiny saved generator and the released boundaries."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from realedit.commands.directions import cli
from realedit.edit import load_bank
from realedit.models import save
from realedit.models.stylegan2 import StyleGAN2Generator

from datapaths import SHARED  # noqa: E402  (honours REALEDIT_SHARED)
BOUNDARIES = SHARED / "data" / "interfacegan_boundaries"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    G = StyleGAN2Generator(resolution=16, z_dim=16, w_dim=16, channel_base=16 * 16,
                           channel_max=16, mapping_layers=2)
    path = tmp_path_factory.mktemp("m") / "tiny16.pt"
    save(G, path)
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_fit_writes_a_bank_then_refuses_to_clobber(tiny_model, tmp_path):
    out = tmp_path / "bank"
    r = run("fit", "--model", tiny_model, "--scorer", "brightness", "--samples", 300,
            "--ratio", 0.05, "--batch", 100, "-o", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "val accuracy" in r.output
    d = load_bank(out).get("brightness")
    assert d.model == "tiny16" and d.space == "w" and d.stats["samples"] == 300
    before = (tmp_path / "bank.json").read_text()
    r2 = run("fit", "--model", tiny_model, "--scorer", "brightness", "--samples", 300, "-o", out)
    assert r2.exit_code == 7 and "--replace" in r2.output and "Traceback" not in r2.output
    assert (tmp_path / "bank.json").read_text() == before
    # a second attribute extends the same bank
    r3 = run("fit", "--model", tiny_model, "--scorer", "brightness", "--name", "light03",
             "--layers", "0-3", "--samples", 300, "--ratio", 0.05, "--batch", 100, "-o", out)
    assert r3.exit_code == 0, r3.output
    assert load_bank(out).get("light03").layers == (0, 1, 2, 3)
    listing = run("list", tmp_path / "bank.json")
    assert listing.exit_code == 0
    assert "brightness" in listing.output and "light03" in listing.output and "0-3" in listing.output


def test_sefa_lists_eigenvalues_and_saves(tiny_model, tmp_path):
    r = run("sefa", "--model", tiny_model, "--num", 3, "--layers", "0-1", "-o", tmp_path / "s")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("sefa")]
    vals = [float(ln.split()[2]) for ln in lines]
    assert len(vals) == 3 and vals == sorted(vals, reverse=True)
    meta = json.loads((tmp_path / "s.json").read_text())
    assert [e["name"] for e in meta["directions"]] == ["sefa0", "sefa1", "sefa2"]


@pytest.mark.skipif(not BOUNDARIES.is_dir(), reason=f"released boundaries not at {BOUNDARIES}")
def test_list_and_cosine_released():
    r = run("list", BOUNDARIES, "--model", "pggan_celebahq")
    assert r.exit_code == 0
    assert sum(ln.startswith("pggan_celebahq ") for ln in r.output.splitlines()) == 15
    c = run("cosine", BOUNDARIES, "age", "gender", "eyeglasses", "--model", "pggan_celebahq")
    assert c.exit_code == 0, c.output
    row = next(ln for ln in c.output.splitlines() if ln.startswith("age"))
    assert row.split()[1:] == ["1.000", "0.486", "0.378"]


def test_errors_are_one_line(tiny_model, tmp_path):
    r = run("list", tmp_path / "nothing.json")
    assert r.exit_code == 6 and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    r = run("fit", "--model", tiny_model, "--scorer", "male", "--samples", 20, "-o", tmp_path / "x")
    assert r.exit_code == 2 and "--scorer-dir" in r.output
    r = run("fit", "--model", tmp_path / "missing.pt", "--scorer", "brightness", "-o", tmp_path / "x")
    assert r.exit_code == 5
    (tmp_path / "junk.json").write_text("{}")
    r = run("fit", "--model", tiny_model, "--scorer", "brightness", "-o", tmp_path / "junk")
    assert r.exit_code == 7 and "not a readable direction bank" in r.output
    r = run("cosine", tmp_path / "nothing")
    assert r.exit_code == 6


def test_list_shows_learned_entries(tmp_path):
    import numpy as np

    from realedit.edit import Direction, DirectionBank, save_bank
    bank = DirectionBank([
        Direction("age", np.eye(4)[0], "m", "w"),
        Direction("age", np.ones((3, 4)), "m", "wp", (1, 2), ("gender",), "learned",
                  {"init_success": 0.5, "success": 0.875, "photos_train": 80, "photos_val": 20})])
    save_bank(bank, tmp_path / "b")
    r = run("list", tmp_path / "b.json")
    assert r.exit_code == 0, r.output
    row = next(ln for ln in r.output.splitlines() if "age|gender" in ln)
    assert "W+" in row and "1-2" in row and "0.500 -> 0.875" in row and "photos=80+20" in row
