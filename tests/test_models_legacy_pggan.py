"""PGGAN official formats: the TF1 pickle of tfutil.Network objects
(karras2018iclr-celebahq-1024x1024.pkl) and the genforce/interfacegan pggan_celebahq.pth."""
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
    return fx.tiny_pggan(seed=0, resolution=16)


@pytest.fixture(scope="module")
def z():
    return torch.randn(3, 12, generator=torch.Generator().manual_seed(5))


def out(G, z):
    with torch.no_grad():
        return G(z)


def load_tf(tmp_path, G, mutate=None, protocol=4):
    p = tmp_path / "karras2018iclr-tiny.pkl"
    p.write_bytes(fx.export_tf_pggan(G, mutate, protocol))
    return models.load(p)


@pytest.mark.parametrize("fused,protocol", [(False, 4), (True, 4), (False, 2)])
def test_tf_round_trip(tmp_path, z, fused, protocol):
    G = fx.tiny_pggan(seed=1, resolution=16, fused_scale=fused)
    G2 = load_tf(tmp_path, G, protocol=protocol)
    assert G2.kind == "pggan" and G2.config["fused_scale"] is fused
    assert G2.spaces == ("z",) and G2.num_ws == 1
    assert (out(G, z) - out(G2, z)).abs().max() <= TOL


@pytest.mark.parametrize("fused", [False, True])
def test_tf_conversion_agrees_with_the_module_table(fused):
    G = fx.tiny_pggan(seed=2, resolution=16, fused_scale=fused)
    Gs = restricted_load(io.BytesIO(fx.export_tf_pggan(G)))[2]
    from realedit.models.legacy.nvidia_tf import _from_tf_pggan
    ck = _from_tf_pggan(Gs, "x.pkl")
    tf_vars = Gs.all_variables()
    names = G.tf_variable_names()
    assert set(names) == set(ck.G)
    for ours, tf_name in names.items():
        assert torch.equal(ck.G[ours], G.from_tf(ours, tf_vars[tf_name])), ours


@pytest.mark.parametrize("torch_zip", [True, False])
@pytest.mark.parametrize("fused", [False, True])
def test_genforce_round_trip(tmp_path, z, torch_zip, fused):
    G = fx.tiny_pggan(seed=3, resolution=16, fused_scale=fused)
    p = tmp_path / "pggan_tiny.pth"
    torch.save(fx.export_genforce_pggan(G), p, _use_new_zipfile_serialization=torch_zip)
    G2 = models.load(p)
    assert G2.meta["source_format"] == "genforce-pggan" and G2.config["fused_scale"] is fused
    assert (out(G, z) - out(G2, z)).abs().max() <= TOL


def test_tf_torgb_lod0_bias_shifts_one_colour_uniformly(tmp_path, G, z):
    def mutate(v):
        v["ToRGB_lod0/bias"][0] += 0.4
        v["ToRGB_lod1/bias"][1] += 5.0  # a lower-resolution ToRGB: unused at lod 0
    diff = out(load_tf(tmp_path, G, mutate), z) - out(G, z)
    assert torch.allclose(diff[:, 0], torch.full_like(diff[:, 0], 0.4), atol=1e-5)
    assert diff[:, 1:].abs().max() <= TOL


def test_tf_dense_rows_are_channel_major(tmp_path, G, z):
    # TF reshapes the dense output to [N, C, 4, 4]: the bias is per channel (C entries) and
    # row c*16 + h*4 + w of our weight is TF column c*16 + h*4 + w.
    Gs = restricted_load(io.BytesIO(fx.export_tf_pggan(G)))[2]
    w_tf = dict(Gs.variables)["4x4/Dense/weight"]
    G2 = load_tf(tmp_path, G)
    C = G.channels[4]
    assert G2.layer0.bias.shape == (C,) and w_tf.shape == (12, 16 * C)
    assert torch.equal(G2.layer0.weight[1 * 16 + 2 * 4 + 3], torch.from_numpy(w_tf[:, 1 * 16 + 2 * 4 + 3]))


def test_tf_last_conv1_bias_changes_the_image(tmp_path, G, z):
    def mutate(v):
        v["16x16/Conv1/bias"] += 1.0
    assert (out(load_tf(tmp_path, G, mutate), z) - out(G, z)).abs().max() > 1e-3


def test_growing_network_is_refused(tmp_path, G):
    def mutate(v):
        v["lod"] = np.float32(0.5)
    with pytest.raises(FormatError, match="still growing"):
        load_tf(tmp_path, G, mutate)


def test_missing_variable_and_wrong_family(tmp_path, G):
    def mutate(v):
        del v["8x8/Conv1/weight"]
    with pytest.raises(WeightsError, match="8x8/Conv1/weight"):
        load_tf(tmp_path, G, mutate)
    p = tmp_path / "ok.pkl"
    p.write_bytes(fx.export_tf_pggan(G))
    with pytest.raises(FormatError, match="holds a pggan generator, expected stylegan"):
        models.load(p, kind="stylegan")
    sd = fx.export_genforce_pggan(G)
    del sd["output2.wscale.bias"]
    p = tmp_path / "g.pth"
    torch.save(sd, p)
    with pytest.raises(WeightsError, match="output2.wscale.bias"):
        models.load(p)
