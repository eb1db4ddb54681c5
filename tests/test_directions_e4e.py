"""e4e's direction files for StyleGAN2 FFHQ: InterFaceGAN age/smile/pose and the GANSpace PCA with
e4e's named edits; e4e's own formulas reproduced, the set fetched through the registry."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from datapaths import SHARED
from realedit import weights as W
from realedit.edit import apply_edits, bank_for_model
from realedit.edit.formats import (E4E_GANSPACE_EDITS, load_e4e_direction, load_ganspace_file,
                                   read_direction_file)
from realedit.errors import EditError, WeightsNotFound

E4E = SHARED / "data" / "e4e_directions"
needs_e4e = pytest.mark.skipif(not E4E.is_dir(), reason="../shared/data/e4e_directions is absent")


def fake_pca(path, k=80, d=512, seed=0):
    """A GANSpace PCA file in e4e's layout: mean (1, d), unit comp (k, 1, d), std (k,)."""
    g = torch.Generator().manual_seed(seed)
    comp = torch.linalg.qr(torch.randn(d, k, generator=g))[0].T.reshape(k, 1, d)
    torch.save({"mean": torch.randn(1, d, generator=g), "comp": comp.contiguous(),
                "std": torch.rand(k, generator=g) * 2 + 0.3}, path)
    return path


def e4e_ganspace(latent: torch.Tensor, pca: dict, idx, start, end, strength) -> torch.Tensor:
    """e4e's GANSpace edit of one (L, d) W+ code, in float32 as e4e computes it (the formula of
    ../shared/data/e4e_directions/README.md)."""
    centred = latent - pca["mean"]
    coord = torch.sum(centred[0].reshape(-1) * pca["comp"][idx].reshape(-1)) / pca["std"][idx]
    delta = (strength - coord) * pca["comp"][idx] * pca["std"][idx]
    out = latent.clone()
    out[start:end] += delta.repeat(end - start, 1)
    return out


def random_codes(n=4, layers=18, d=512, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, d, generator=g) + 0.3 * torch.randn(n, layers, d, generator=g)


@pytest.mark.parametrize("real", [False, True])
def test_ganspace_edits_reproduce_e4e(tmp_path, real):
    if real and not (E4E / "ffhq_pca.pt").is_file():
        pytest.skip("../shared/data/e4e_directions/ffhq_pca.pt is absent")
    path = E4E / "ffhq_pca.pt" if real else fake_pca(tmp_path / "pca.pt")
    pca = torch.load(path, map_location="cpu", weights_only=True)
    bank = load_ganspace_file(path, model="m")
    assert sorted(bank.names()) == sorted(E4E_GANSPACE_EDITS)
    codes = random_codes()
    for name, (idx, start, end, strength) in E4E_GANSPACE_EDITS.items():
        want = torch.stack([e4e_ganspace(c, pca, idx, start, end, strength) for c in codes])
        got = apply_edits(codes, "wp", {name: 1.0}, bank=bank, model="m")
        assert (got - want).abs().max() <= 1e-5, name
        assert torch.equal(got[:, :start], codes[:, :start]) and torch.equal(got[:, end:], codes[:, end:])
        # the amount is the fraction of e4e's move: half of it, and the same move the other way
        half = apply_edits(codes, "wp", {name: 0.5}, bank=bank, model="m")
        back = apply_edits(codes, "wp", {name: -1.0}, bank=bank, model="m")
        assert (half - (codes + want) / 2).abs().max() <= 1e-5
        assert (back - (2 * codes - want)).abs().max() <= 1e-5
    with pytest.raises(EditError, match="GANSpace"):
        apply_edits(codes, "wp", {"lipstick": 1.0}, bank=bank, model="m", mode="distance")
    with pytest.raises(EditError):  # a W+ direction on layers: a W code cannot take it
        apply_edits(codes[:, 0], "w", {"lipstick": 1.0}, bank=bank, model="m")


@needs_e4e
def test_e4e_interfacegan_directions_add_factor_times_direction():
    age = load_e4e_direction(E4E / "age.pt", "age", model="m")
    pose = load_e4e_direction(E4E / "pose.pt", "pose", model="m")  # holds a CUDA tensor
    assert (age.space, pose.space, age.vector.shape, pose.vector.shape) == ("w", "w", (512,), (512,))
    raw = {n: torch.load(E4E / f"{n}.pt", map_location="cpu", weights_only=True)
           for n in ("age", "smile", "pose")}
    bank = read_direction_file(E4E / "smile.pt", "e4e-direction-pt", "m", "smile")
    bank = bank.merge(read_direction_file(E4E / "age.pt", "e4e-direction-pt", "m", "age"))
    bank.add(pose)
    codes = random_codes()
    for name, factor in (("age", 3.0), ("smile", -3.0), ("pose", 5.0)):
        got = apply_edits(codes, "wp", {name: factor}, bank=bank, model="m")
        want = codes + factor * raw[name]  # e4e: latent + factor * direction, every layer
        assert (got - want).abs().max() <= 1e-5, name
    # --keep: the step is orthogonal to the kept direction, and as long as without it
    kept = apply_edits(codes, "wp", {"age": 3.0}, keep=["smile"], bank=bank, model="m")
    step = (kept - codes)[0, 0].double()
    assert abs(float(step @ raw["smile"][0].double())) < 1e-4
    assert abs(float(step.norm()) - 3.0) < 1e-4


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("REALEDIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("REALEDIT_OFFLINE", raising=False)
    monkeypatch.delenv("REALEDIT_REGISTRY", raising=False)
    return tmp_path / "home"


@needs_e4e
def test_stylegan2_ffhq_bank_from_the_registered_files(home, monkeypatch):
    """The files, installed under their registry names (checked against the registry's sha256
    by `weights add`), make stylegan2-ffhq-1024's bank: e4e's three directions + five edits."""
    for name, f in (("e4e-ffhq-age", "age.pt"), ("e4e-ffhq-smile", "smile.pt"),
                    ("e4e-ffhq-pose", "pose.pt"), ("e4e-ffhq-ganspace-pca", "ffhq_pca.pt")):
        W.add(E4E / f, name)
        assert (home / "weights" / W.entry(name).file).is_file()
    monkeypatch.setenv("REALEDIT_OFFLINE", "1")  # nothing is fetched: all is in the cache
    for model in ("stylegan2-ffhq-1024", "e4e-ffhq-encoder"):
        bank = bank_for_model(model)
        assert bank.models() == [model]
        assert sorted(bank.names()) == sorted(["age", "smile", "pose", *E4E_GANSPACE_EDITS])
    from realedit.cli import cli
    out = CliRunner().invoke(cli, ["directions", "list", "stylegan2-ffhq-1024"])
    assert out.exit_code == 0, out.output
    lines = {ln.split()[1]: ln for ln in out.output.splitlines()[1:] if ln.strip() and len(ln.split()) > 2}
    assert "e4e-interfacegan" in lines["age"] and " W " in lines["age"]
    assert "ganspace" in lines["lipstick"] and "10" in lines["lipstick"]
    status = CliRunner().invoke(cli, ["weights", "list"]).output
    assert "e4e_ffhq 4/4" in status and "stylegan2-ffhq-1024" in status


def test_missing_direction_files_name_file_place_and_command(home, monkeypatch):
    monkeypatch.setenv("REALEDIT_OFFLINE", "1")
    monkeypatch.delenv("REALEDIT_BOUNDARIES", raising=False)
    for model, first in (("stylegan2-ffhq-1024", "e4e-ffhq-age"),
                         ("stylegan-ffhq-1024", "interfacegan-stylegan_ffhq_age")):
        with pytest.raises(WeightsNotFound) as ei:
            bank_for_model(model)
        msg = str(ei.value)
        e = W.entry(first)
        assert "\n" not in msg and e.file in msg and str(home / "weights" / e.file) in msg
        assert f"realedit weights download {model} --all" in msg
