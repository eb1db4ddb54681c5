"""Official StyleGAN2 formats (TF1 pickle, ada-pytorch pickle, rosinality .pt) and pickle safety.

Fixtures are tiny models written in each official layout by the inverse mappings in
``fixtures_models``. Round trips prove nothing is lost; the perturbation tests prove each
official variable lands in the layer it names (a round trip alone would not catch two
mirror-image mistakes in the exporter and the loader).
"""
from __future__ import annotations

import io
import math
import os
import pickle

import numpy as np
import pytest
import torch

import fixtures_models as fx
from realedit import models
from realedit.errors import FormatError, UnsafePickleError, WeightsError
from realedit.models.base import upfirdn2d
from realedit.models.unpickle import restricted_load

R = 16
TOL = 1e-5


@pytest.fixture(scope="module")
def G():
    return fx.tiny_stylegan2(seed=0, resolution=R)


@pytest.fixture(scope="module")
def D():
    return fx.tiny_stylegan2_D(seed=0, resolution=R)


@pytest.fixture(scope="module")
def z():
    return torch.randn(3, 16, generator=torch.Generator().manual_seed(7))


def write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def images(G, z, psi=1.0, noise="const"):
    with torch.no_grad():
        return G(z, psi=psi, noise=noise)


def load_tf(tmp_path, G, mutate=None, D=None):
    return models.load(write(tmp_path, "stylegan2-tiny-config-f.pkl", fx.export_tf_stylegan2(G, D, mutate)))


# ============================================================================ round trips


def test_tf_stylegan2_round_trip_identical_images_and_discriminator(tmp_path, G, D, z):
    p = write(tmp_path, "net.pkl", fx.export_tf_stylegan2(G, D))
    G2 = models.load(p)
    assert G2.kind == "stylegan2" and not G2.training
    assert G2.config["channel_base"] == G.config["channel_base"] and G2.num_ws == G.num_ws
    for psi in (1.0, 0.6):
        assert (images(G, z, psi) - images(G2, z, psi)).abs().max() <= TOL
    D2 = models.load_discriminator(p)
    img = images(G, z)
    with torch.no_grad():
        assert (D(img) - D2(img)).abs().max() <= TOL


def test_ada_pickle_round_trip_and_init_kwargs(tmp_path, G, D, z):
    p = write(tmp_path, "ffhq-tiny.pkl", fx.export_ada(G, D, conv_clamp=256))
    G2 = models.load(p)
    assert G2.config["conv_clamp"] == 256          # taken from synthesis_kwargs
    assert G2.meta["source_format"] == "ada-pytorch"
    assert (images(G, z, 0.7) - images(G2, z, 0.7)).abs().max() <= TOL
    D2 = models.load_discriminator(p)
    img = images(G, z)
    with torch.no_grad():
        assert (D(img) - D2(img)).abs().max() <= TOL


def test_ada_mapping_lr_multiplier_comes_from_init_kwargs(tmp_path, G, z):
    kw = {"mapping_kwargs": fx.FakeEasyDict(num_layers=2, lr_multiplier=0.1)}
    G2 = models.load(write(tmp_path, "a.pkl", fx.export_ada(G, extra_kwargs=kw)))
    assert G2.config["mapping_lr_multiplier"] == 0.1
    # Same stored weights, ten times the runtime gain: the mapping output must differ.
    with torch.no_grad():
        assert (G2.mapping(z) - G.mapping(z)).abs().max() > 1e-3


def test_rosinality_round_trip(tmp_path, G, z):
    p = tmp_path / "stylegan2-tiny.pt"
    torch.save(fx.export_rosinality(G), p)
    G2 = models.load(p)
    assert G2.meta["source_format"] == "rosinality"
    for psi in (1.0, 0.5):
        assert (images(G, z, psi) - images(G2, z, psi)).abs().max() <= TOL
    ws = torch.randn(2, G.num_ws, G.w_dim)
    with torch.no_grad():
        assert (G.synthesis(ws) - G2.synthesis(ws)).abs().max() <= TOL


def test_rosinality_without_latent_avg_estimates_it(tmp_path, G):
    p = tmp_path / "no_avg.pt"
    torch.save(fx.export_rosinality(G, with_latent_avg=False), p)
    G2 = models.load(p)
    with torch.no_grad():
        ref = G.mapping(torch.randn(20000, G.z_dim, generator=torch.Generator().manual_seed(3)))[:, 0].mean(0)
    assert G2.meta.get("w_avg") == "estimated"
    assert (G2.w_avg - ref).abs().max() < 0.05


def test_bare_state_dict_in_realedit_layout_loads(tmp_path, G, z):
    p = tmp_path / "sd.pt"
    torch.save(G.state_dict(), p)
    assert (images(models.load(p), z) - images(G, z)).abs().max() <= TOL


# ============================================================================ named variables land in the right layer


def test_tf_final_torgb_bias_shifts_one_colour_uniformly(tmp_path, G, z):
    def mutate(m, s, top):
        s[f"{R}x{R}/ToRGB/bias"][1] += 0.5
    diff = images(load_tf(tmp_path, G, mutate), z) - images(G, z)
    assert torch.allclose(diff[:, 1], torch.full_like(diff[:, 1], 0.5), atol=1e-5)
    assert diff[:, [0, 2]].abs().max() <= TOL


def test_tf_4x4_torgb_bias_feeds_the_skip_path_smoothly(tmp_path, G, z):
    def mutate(m, s, top):
        s["4x4/ToRGB/bias"][2] += 0.5
    diff = images(load_tf(tmp_path, G, mutate), z) - images(G, z)
    assert diff[:, :2].abs().max() <= TOL
    # A constant at 4x4 upsampled through the skip branch: exactly +0.5 away from the borders.
    assert torch.allclose(diff[:, 2, 4:-4, 4:-4], torch.full_like(diff[:, 2, 4:-4, 4:-4], 0.5), atol=1e-5)


def test_tf_mod_bias_is_stored_without_the_plus_one(tmp_path, G, z):
    # mod_weight = 0, mod_bias = -1  =>  style 0 for the last ToRGB: it adds only its bias.
    def mutate(m, s, top):
        s[f"{R}x{R}/ToRGB/mod_weight"][:] = 0
        s[f"{R}x{R}/ToRGB/mod_bias"][:] = -1
    G2 = load_tf(tmp_path, G, mutate)
    with torch.no_grad():
        ws = G.mapping(z)
        coarse = G.synthesis(ws, stop_at=R // 2)
        up = upfirdn2d(coarse, G.synthesis.b16.resample_filter * 4, up=2, pad=(2, 1))
        expect = up + G.synthesis.b16.torgb.bias[None, :, None, None]
        assert (G2.synthesis(ws) - expect).abs().max() <= TOL


def test_tf_noise_strength_of_one_layer(tmp_path, G, z):
    def mutate(m, s, top):
        s["8x8/Conv1/noise_strength"] += 1.0
    G2 = load_tf(tmp_path, G, mutate)
    with torch.no_grad():
        ws = G.mapping(z)
        assert (G2.synthesis(ws, noise="none") - G.synthesis(ws, noise="none")).abs().max() <= TOL
        assert (G2.synthesis(ws, stop_at=4) - G.synthesis(ws, stop_at=4)).abs().max() <= TOL
        assert (G2.synthesis(ws, stop_at=8) - G.synthesis(ws, stop_at=8)).abs().max() > 1e-3
    assert G2.synthesis.b8.conv1.noise_strength.item() == pytest.approx(G.synthesis.b8.conv1.noise_strength.item() + 1)


def test_tf_noise_buffer_index_maps_to_its_layer(tmp_path, G, z):
    # noise{2*log2(r)-5} is the up-conv of resolution r, noise{2*log2(r)-4} its second conv.
    def mutate(m, s, top):
        s["noise3"][:] = 0.0  # 16x16/Conv0_up
    G2 = load_tf(tmp_path, G, mutate)
    assert G2.synthesis.b16.conv0.noise_const.abs().max() == 0
    assert torch.equal(G2.synthesis.b16.conv1.noise_const, G.synthesis.b16.conv1.noise_const)
    with torch.no_grad():
        ws = G.mapping(z)
        assert (G2.synthesis(ws, stop_at=8) - G.synthesis(ws, stop_at=8)).abs().max() <= TOL
        assert (G2.synthesis(ws) - G.synthesis(ws)).abs().max() > 1e-3


def test_tf_mapping_dense0_changes_ws_not_synthesis(tmp_path, G, z):
    def mutate(m, s, top):
        m["Dense0/bias"] += 1.0
    G2 = load_tf(tmp_path, G, mutate)
    with torch.no_grad():
        assert (G2.mapping(z) - G.mapping(z)).abs().max() > 1e-3
        ws = torch.randn(2, G.num_ws, G.w_dim)
        assert (G2.synthesis(ws) - G.synthesis(ws)).abs().max() <= TOL


def test_tf_dlatent_avg_is_the_truncation_centre(tmp_path, G, z):
    target = np.linspace(-1, 1, G.w_dim).astype(np.float32)

    def mutate(m, s, top):
        top["dlatent_avg"] = target
    G2 = load_tf(tmp_path, G, mutate)
    with torch.no_grad():
        ws = G2.mapping(z, psi=0.0)
    assert torch.allclose(ws, torch.from_numpy(target).expand_as(ws))


def test_tf_up_conv_kernel_is_flipped(tmp_path, G, z):
    # TF's upsampling conv is a transposed conv with a flipped kernel: a kernel that is
    # one-hot at TF tap (0, 0) must become our tap (2, 2) (the official converter's [::-1, ::-1]).
    def mutate(m, s, top):
        w = s["8x8/Conv0_up/weight"]
        w[:] = 0
        w[0, 0] = 1
    G2 = load_tf(tmp_path, G, mutate)
    w = G2.synthesis.b8.conv0.weight
    assert w[:, :, 2, 2].abs().min() == 1 and w.abs().sum() == w[:, :, 2, 2].abs().sum()


def test_rosinality_names_land_in_the_right_layers(tmp_path, G, z):
    ck = fx.export_rosinality(G)
    last = len(G.synthesis.block_resolutions) - 2
    ck["g_ema"][f"to_rgbs.{last}.bias"][0, 0] += 0.25    # final ToRGB bias, red
    ck["g_ema"]["noises.noise_3"].zero_()                 # convs.2 = up-conv of 16x16
    ck["g_ema"]["style.1.bias"] += 1.0                    # first mapping layer
    p = tmp_path / "r.pt"
    torch.save(ck, p)
    G2 = models.load(p)
    with torch.no_grad():
        assert (G2.mapping(z) - G.mapping(z)).abs().max() > 1e-3
        ws = G.mapping(z)
        diff = G2.synthesis(ws, noise="none") - G.synthesis(ws, noise="none")
        assert torch.allclose(diff[:, 0], torch.full_like(diff[:, 0], 0.25), atol=1e-5)
        assert diff[:, 1:].abs().max() <= TOL
    assert G2.synthesis.b16.conv0.noise_const.abs().max() == 0
    assert torch.equal(G2.synthesis.b8.conv1.noise_const, G.synthesis.b8.conv1.noise_const)


# ============================================================================ bad input


def test_truncated_files_give_format_error(tmp_path, G):
    tf = fx.export_tf_stylegan2(G)
    with pytest.raises(FormatError, match="truncated or corrupt"):
        models.load(write(tmp_path, "t.pkl", tf[: len(tf) // 2]))
    p = tmp_path / "r.pt"
    torch.save(fx.export_rosinality(G), p)
    data = p.read_bytes()
    with pytest.raises(FormatError, match="truncated or corrupt"):
        models.load(write(tmp_path, "r_cut.pt", data[: len(data) // 2]))


@pytest.mark.parametrize("content", [b"", b"hello, not a model\n", b"\x93NUMPY\x01\x00v\x00{'descr'",
                                     pickle.dumps({"a": 1}), pickle.dumps([1, 2, 3])])
def test_not_a_model_gives_format_error(tmp_path, content):
    with pytest.raises(FormatError):
        models.load(write(tmp_path, "x.pkl", content))


def test_wrong_family_gives_format_error(tmp_path, G):
    p = write(tmp_path, "net.pkl", fx.export_tf_stylegan2(G))
    with pytest.raises(FormatError, match="holds a stylegan2 generator, expected pggan"):
        models.load(p, kind="pggan")


def test_missing_official_variable_gives_weights_error(tmp_path, G):
    def mutate(m, s, top):
        del s["8x8/Conv1/mod_bias"]
    with pytest.raises(WeightsError, match="8x8/Conv1/mod_bias"):
        load_tf(tmp_path, G, mutate)
    ck = fx.export_rosinality(G)
    del ck["g_ema"]["to_rgbs.0.bias"]
    p = tmp_path / "r.pt"
    torch.save(ck, p)
    with pytest.raises(WeightsError, match="to_rgbs.0.bias"):
        models.load(p)


def test_unexpected_rosinality_tensor_is_refused(tmp_path, G):
    ck = fx.export_rosinality(G)
    ck["g_ema"]["convs.0.extra.weight"] = torch.zeros(3)
    p = tmp_path / "r.pt"
    torch.save(ck, p)
    with pytest.raises(FormatError, match="unexpected tensor"):
        models.load(p)


# ============================================================================ pickle safety


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_os_system_pickle_is_refused_and_nothing_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    p = write(tmp_path, "evil.pkl", pickle.dumps(_Evil(f"touch {marker}"), protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"(posix|os|nt)\.system") as exc:
        models.load(p)
    assert "\n" not in str(exc.value)
    assert not marker.exists()


def test_evil_object_hidden_inside_a_tf_network_is_refused(tmp_path, G):
    marker = tmp_path / "pwned"
    Gs = fx.FakeTFNetwork("Gs", "G_main", {}, {})
    Gs._state["static_kwargs"] = {"resolution": _Evil(f"touch {marker}")}
    data = fx.tf_pickle_bytes(Gs, Gs, Gs)
    with pytest.raises(UnsafePickleError):
        models.load(write(tmp_path, "evil_tf.pkl", data))
    assert not marker.exists()


def test_evil_object_inside_a_torch_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    torch.save({"g_ema": _Evil(f"touch {marker}")}, p)
    with pytest.raises(UnsafePickleError, match="system"):
        models.load(p)
    assert not marker.exists()


def test_evil_storage_bytes_inside_an_ada_pickle_is_refused(tmp_path):
    # torch pickles a storage as _load_from_bytes(<nested torch.save stream>); torch itself
    # would read that stream with the unrestricted unpickler.
    marker = tmp_path / "pwned"
    inner = pickle.dumps(_Evil(f"touch {marker}"), protocol=2)

    class Storage:
        def __reduce__(self):
            return (fake_load_from_bytes, (inner,))

    def fake_load_from_bytes(b):  # pragma: no cover - only pickled by reference
        raise AssertionError

    data = fx.dumps_foreign({"G_ema": Storage()}, {fake_load_from_bytes: ("torch.storage", "_load_from_bytes")})
    with pytest.raises(WeightsError):
        models.load(write(tmp_path, "evil_ada.pkl", data))
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("builtins", "getattr"), ("subprocess", "Popen"),
                                         ("torch", "load"), ("numpy", "load"), ("dnnlib.tflib.network", "exec"),
                                         ("torch_utils.persistence", "persistent_class")])
def test_any_global_outside_the_allow_list_is_refused(module, name):
    stream = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
    with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
        restricted_load(io.BytesIO(stream))


def test_tf_pickle_source_code_is_never_executed(tmp_path, G):
    # Every fixture carries build_module_src that raises if run; loading must still work.
    G2 = models.load(write(tmp_path, "net.pkl", fx.export_tf_stylegan2(G)))
    assert G2.meta["source_format"] == "tf-stylegan2"
    assert math.isfinite(float(G2.w_avg.sum()))
