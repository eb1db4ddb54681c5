"""Pivotal tuning (``pti``) on tiny random generators: the tuned copy fits its target better,
the caller's generator is never modified, the tuning stays local, and the Editor and the CLI
edit with the tuned copy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from realedit import invert
from realedit.errors import UsageError
from realedit.invert.pti import PTIInverter, locality_codes
from realedit.models.stylegan2 import StyleGAN2Generator


def tiny_g(seed=0):
    torch.manual_seed(seed)
    G = StyleGAN2Generator(resolution=32, z_dim=32, w_dim=32, channel_base=32 * 32,
                           channel_max=32, mapping_layers=2).eval()
    with torch.no_grad():
        G.mapping.w_avg.copy_(G.mapping(torch.randn(2000, 32))[:, 0].mean(0))
    return G


@pytest.fixture(scope="module")
def G():
    return tiny_g(0)


@pytest.fixture(scope="module")
def targets():
    # Faces of *another* generator: out of G's range, like a real photo is for a real model.
    other = tiny_g(7)
    with torch.no_grad():
        return other.synthesis(other.mapping(torch.randn(2, 32, generator=torch.Generator().manual_seed(3))))


def snapshot(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


@pytest.fixture(scope="module")
def run(G, targets):
    before = snapshot(G)
    flags = [p.requires_grad for p in G.parameters()]
    pti = invert.get("pti", G, loss="mse", steps=30, tune_steps=60, tune_lr=3e-3,
                     locality_weight=1.0, locality_every=1, locality_samples=4)
    return pti, pti.invert(targets, "wp"), before, flags


def mse(a, b):
    return float((a - b).square().mean())


def test_tuned_generator_fits_its_target_better(G, targets, run):
    _, inv, _, _ = run
    assert inv.method == "pti" and inv.generators is not None and len(inv.generators) == 2
    assert inv.generators[0] is not inv.generators[1] and inv.generators[0] is not G
    with torch.no_grad():
        for i in range(2):
            ws = inv.ws(G)[i:i + 1]
            untuned = mse(G.synthesis(ws, noise="const"), targets[i:i + 1])
            tuned_img = inv.generators[i].synthesis(ws, noise="const")
            tuned = mse(tuned_img, targets[i:i + 1])
            assert tuned < 0.7 * untuned, (i, tuned, untuned)
            # reconstruction is the tuned generator's image, and final_loss its loss
            assert torch.allclose(inv.reconstruction[i:i + 1], tuned_img, atol=1e-6)
            assert inv.final_loss[i] == pytest.approx(tuned, rel=1e-4)


def test_original_generator_is_untouched(G, run):
    _, _, before, flags = run
    after = G.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k  # bit-identical: a promise
    assert [p.requires_grad for p in G.parameters()] == flags


def test_tuning_stays_local(G, run):
    """At the regulariser's distance from the pivot (fresh directions, not the ones it saw) and
    at random codes the tuned generator's images move far less than at the pivot itself."""
    pti, inv, _, _ = run
    with torch.no_grad():
        rand = G.mapping(torch.randn(16, 32, generator=torch.Generator().manual_seed(9)))
        for i, Gt in enumerate(inv.generators):
            ws = inv.ws(G)[i:i + 1]
            at_pivot = mse(Gt.synthesis(ws, noise="const"), G.synthesis(ws, noise="const"))
            far = locality_codes(G, ws, 16, pti.w_spread, torch.Generator().manual_seed(99))
            for codes in (far, rand):
                at_far = mse(Gt.synthesis(codes, noise="const"), G.synthesis(codes, noise="const"))
                assert at_far < 0.5 * at_pivot, (i, at_far, at_pivot)


@pytest.mark.slow
def test_locality_term_is_what_keeps_it_local(G, targets):
    with torch.no_grad():
        rand = G.mapping(torch.randn(16, 32, generator=torch.Generator().manual_seed(9)))
    changes = {}
    for weight in (0.0, 1.0):
        pti = invert.get("pti", G, loss="mse", steps=10, tune_steps=40, tune_lr=3e-3,
                         locality_weight=weight, locality_every=1, locality_samples=4)
        inv = pti.invert(targets[:1], "wp")
        with torch.no_grad():
            changes[weight] = mse(inv.generators[0].synthesis(rand, noise="const"),
                                  G.synthesis(rand, noise="const"))
    assert changes[1.0] < 0.5 * changes[0.0], changes


def test_locality_codes_sit_at_the_asked_distance(G):
    ws = invert.latent_to_ws(G, G.w_avg[None], "w")
    codes = locality_codes(G, ws, 5, 2.5, torch.Generator().manual_seed(0))
    assert codes.shape == (5, G.num_ws, G.w_dim)
    assert torch.allclose((codes - ws).norm(dim=-1), torch.full((5, G.num_ws), 2.5), atol=1e-4)


def test_bad_options(G):
    with pytest.raises(UsageError, match="tune_steps"):
        invert.get("pti", G, loss="mse", tune_steps=0)
    with pytest.raises(UsageError):
        invert.get("pti", G, loss="mse", tune_lr=-1.0)
    with pytest.raises(UsageError, match="unknown option"):
        invert.get("pti", G, loss="mse", tune_stpes=3)
    with pytest.raises(UsageError, match="pti"):
        invert.get("ptx", G)
    assert isinstance(invert.get("pti", G, loss="mse"), PTIInverter)


# ----------------------------------------------------------------------------- Editor and CLI

from bad_inputs import make  # noqa: E402
needs_celeba = pytest.mark.skipif(not make.celeba_files(), reason="CelebA crops not found")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make.make_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    p = tmp_path_factory.mktemp("photo") / "face.png"
    make.face_photo(0).save(p)
    return p


@pytest.mark.slow
@needs_celeba
def test_editor_edits_with_the_tuned_generator(model, photo):
    from realedit.pipeline import Editor

    editor = Editor.from_pretrained(str(model), inverter="pti", steps=2)
    assert editor.inverter.name == "pti"
    G0 = snapshot(editor.G)
    inverted = editor.invert(photo)
    fi = inverted.faces[0]
    assert inverted.inverter == "pti" and fi.generator is not None and fi.generator is not editor.G
    src = np.asarray(Image.open(photo).convert("RGB"))
    assert np.array_equal(np.asarray(editor.apply(inverted, {"age": 0.0}).image), src)
    tuned = np.asarray(editor.apply(inverted, {"age": 1.0}).image)
    fi.generator = None  # the same code through the untuned generator gives another picture
    plain = np.asarray(editor.apply(inverted, {"age": 1.0}).image)
    assert not np.array_equal(tuned, plain)
    assert all(torch.equal(v, editor.G.state_dict()[k]) for k, v in G0.items())


@pytest.mark.slow
@needs_celeba
def test_cli_edit_with_pti(model, photo, tmp_path):
    from realedit.cli import cli

    out = tmp_path / "out"
    res = CliRunner().invoke(cli, [str(photo), "--attr", "age=+2", "--model", str(model),
                                   "--inverter", "pti", "--steps", "2", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "inverter: pti" in res.output
    written = Image.open(out / "face_edited.png")
    assert written.size == Image.open(photo).size
    assert not np.array_equal(np.asarray(written.convert("RGB")),
                              np.asarray(Image.open(photo).convert("RGB")))


@needs_celeba
def test_cli_bad_inverter_and_steps(model, photo, tmp_path):
    from realedit.cli import cli

    res = CliRunner().invoke(cli, [str(photo), "--attr", "age=+2", "--model", str(model),
                                   "--inverter", "ptii", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "Traceback" not in res.output and "pti" in res.output
    bare = make.make_model(tmp_path / "bare", encoder=False)
    res = CliRunner().invoke(cli, [str(photo), "--attr", "age=+2", "--model", str(bare),
                                   "--inverter", "pti", "--steps", "0", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert "no encoder" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
