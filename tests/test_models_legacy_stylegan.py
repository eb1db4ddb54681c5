"""StyleGAN (v1) official formats: NVIDIA TF1 pickle (karras2019stylegan-*.pkl) and the
genforce/interfacegan converted .pth (stylegan_{ffhq,celebahq}.pth)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import fixtures_models as fx
from realedit import models
from realedit.errors import FormatError, WeightsError
from realedit.models.unpickle import restricted_load

TOL = 1e-5


@pytest.fixture(scope="module")
def G():
    return fx.tiny_stylegan(seed=0, resolution=16)


@pytest.fixture(scope="module")
def z():
    return torch.randn(3, 16, generator=torch.Generator().manual_seed(11))


def out(G, z, psi=1.0, noise="const"):
    with torch.no_grad():
        return G(z, psi=psi, noise=noise)


def load_tf(tmp_path, G, mutate=None):
    p = tmp_path / "karras2019stylegan-tiny.pkl"
    p.write_bytes(fx.export_tf_stylegan(G, mutate))
    return models.load(p)


@pytest.mark.parametrize("kw", [{}, {"fused_scale": True}, {"blur_taps": None}])
def test_tf_round_trip(tmp_path, z, kw):
    G = fx.tiny_stylegan(seed=1, resolution=16, **kw)
    G2 = load_tf(tmp_path, G)
    assert G2.kind == "stylegan" and G2.num_ws == G.num_ws == 6
    for psi in (1.0, 0.7):
        assert (out(G, z, psi) - out(G2, z, psi)).abs().max() <= TOL


def test_tf_conversion_agrees_with_the_module_table(G):
    """Two independent codings of the official table: realedit.models.legacy and StyleGANGenerator.from_tf."""
    nets = restricted_load(io.BytesIO(fx.export_tf_stylegan(G)))
    tf_vars = nets[2].all_variables()
    from realedit.models.legacy.nvidia_tf import _from_tf_stylegan
    ck = _from_tf_stylegan(nets[2], "x.pkl")
    names = G.tf_variable_names()
    assert set(names) == set(ck.G)
    for ours, tf_name in names.items():
        assert torch.equal(ck.G[ours], G.from_tf(ours, tf_vars[tf_name])), ours


@pytest.mark.parametrize("torch_zip", [True, False])
def test_genforce_round_trip(tmp_path, G, z, torch_zip):
    p = tmp_path / "stylegan_tiny.pth"
    torch.save(fx.export_genforce_stylegan(G), p, _use_new_zipfile_serialization=torch_zip)
    G2 = models.load(p)
    assert G2.meta["source_format"] == "genforce-stylegan"
    assert (out(G, z, 0.7) - out(G2, z, 0.7)).abs().max() <= TOL


def test_genforce_fused_layers_are_detected(tmp_path):
    # genforce keeps the fused up-convs (from 128 up with fused_scale='auto') under another
    # name and in TF layout; the loader must recover the setting, or the image is wrong.
    G = fx.tiny_stylegan(seed=2, resolution=128, fmap_base=128, fmap_max=8)
    sd = fx.export_genforce_stylegan(G)
    assert "synthesis.layer10.weight" in sd and "synthesis.layer8.conv.weight" in sd
    p = tmp_path / "g.pth"
    torch.save(sd, p)
    G2 = models.load(p)
    assert G2.config["fused_scale"] == "auto"
    z = torch.randn(2, 16)
    assert (out(G, z) - out(G2, z)).abs().max() <= TOL


def test_tf_torgb_bias_shifts_one_colour_uniformly(tmp_path, G, z):
    def mutate(m, s, top):
        s["ToRGB_lod0/bias"][2] -= 0.3
    diff = out(load_tf(tmp_path, G, mutate), z) - out(G, z)
    assert torch.allclose(diff[:, 2], torch.full_like(diff[:, 2], -0.3), atol=1e-5)
    assert diff[:, :2].abs().max() <= TOL


def test_tf_stylemod_of_a_scope_reads_its_own_ws_index(tmp_path, G):
    # Zeroing StyleMod/weight of 8x8/Conv1 (layer 3) must make the image independent of ws[:, 3].
    def mutate(m, s, top):
        s["8x8/Conv1/StyleMod/weight"][:] = 0
    G2 = load_tf(tmp_path, G, mutate)
    ws = torch.randn(2, G.num_ws, G.w_dim)
    ws2 = ws.clone()
    ws2[:, 3] += 1.0
    with torch.no_grad():
        assert (G2.synthesis(ws) - G2.synthesis(ws2)).abs().max() <= TOL
        assert (G.synthesis(ws) - G.synthesis(ws2)).abs().max() > 1e-3
        ws3 = ws.clone()
        ws3[:, 2] += 1.0
        assert (G2.synthesis(ws) - G2.synthesis(ws3)).abs().max() > 1e-3


def test_tf_stylemod_first_half_is_scale_second_half_is_shift(tmp_path, G, z):
    # Last layer: StyleMod weight 0, bias = [-1 (scale: 1 + s = 0), b (shift)] -> every
    # channel becomes the constant b, so the image is spatially constant.
    C = G.synthesis.layer5.bias.shape[0]

    def mutate(m, s, top):
        s["16x16/Conv1/StyleMod/weight"][:] = 0
        s["16x16/Conv1/StyleMod/bias"][:C] = -1
        s["16x16/Conv1/StyleMod/bias"][C:] = np.linspace(-1, 1, C)
    img = out(load_tf(tmp_path, G, mutate), z)
    assert (img - img[:, :, :1, :1]).abs().max() <= TOL
    assert (img[:, :, 0, 0] - img[:1, :, 0, 0]).abs().max() <= TOL  # and independent of z


def test_tf_noise_weight_and_buffer(tmp_path, G, z):
    def mutate(m, s, top):
        s["8x8/Conv0_up/Noise/weight"] += 1.0
        s["noise3"][:] = 0  # layer 3 = 8x8/Conv1
    G2 = load_tf(tmp_path, G, mutate)
    assert (out(G2, z, noise="none") - out(G, z, noise="none")).abs().max() <= TOL
    assert (out(G2, z) - out(G, z)).abs().max() > 1e-3
    assert G2.synthesis.layer3.noise_const.abs().max() == 0
    assert torch.equal(G2.synthesis.layer2.noise_const, G.synthesis.layer2.noise_const)


def test_tf_dlatent_avg_and_truncation_cutoff(tmp_path, G, z):
    target = np.linspace(-2, 2, G.w_dim).astype(np.float32)

    def mutate(m, s, top):
        top["dlatent_avg"] = target
    G2 = load_tf(tmp_path, G, mutate)
    with torch.no_grad():
        ws = G2.mapping(z, psi=0.0, truncation_cutoff=4)
        w = G2.mapping(z)
    assert torch.allclose(ws[:, :4], torch.from_numpy(target).expand(3, 4, -1))
    assert torch.allclose(ws[:, 4:], w[:, 4:])


def test_tf_mapping_dense_changes_ws_only(tmp_path, G, z):
    def mutate(m, s, top):
        m["Dense1/bias"] += 1.0
    G2 = load_tf(tmp_path, G, mutate)
    with torch.no_grad():
        assert (G2.mapping(z) - G.mapping(z)).abs().max() > 1e-3
        ws = torch.randn(2, G.num_ws, G.w_dim)
        assert (G2.synthesis(ws) - G.synthesis(ws)).abs().max() <= TOL


def test_growing_network_is_refused(tmp_path, G):
    def mutate(m, s, top):
        s["lod"] = np.float32(1.0)
    with pytest.raises(FormatError, match="still growing"):
        load_tf(tmp_path, G, mutate)


def test_missing_variable_and_wrong_family(tmp_path, G):
    def mutate(m, s, top):
        del s["16x16/Conv0_up/StyleMod/bias"]
    with pytest.raises(WeightsError, match="16x16/Conv0_up/StyleMod/bias"):
        load_tf(tmp_path, G, mutate)
    p = tmp_path / "ok.pkl"
    p.write_bytes(fx.export_tf_stylegan(G))
    with pytest.raises(FormatError, match="holds a stylegan generator, expected stylegan2"):
        models.load(p, kind="stylegan2")
    sd = fx.export_genforce_stylegan(G)
    del sd["synthesis.layer4.epilogue.apply_noise.weight"]
    p = tmp_path / "g.pth"
    torch.save(sd, p)
    with pytest.raises(WeightsError, match="layer4.epilogue.apply_noise.weight"):
        models.load(p)
