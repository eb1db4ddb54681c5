"""StyleGAN (v1) generator: protocol, truncation, styles, noise, equalised lr, official graph.

``test_matches_official_graph_from_tf_variables`` converts random variables carrying the
official G_mapping / G_synthesis names and TF shapes with ``from_tf`` and compares the whole
generator (mapping, truncation, synthesis with stored noise) against an independent NumPy
transcription of the official graph in float64.
"""
import math

import numpy as np
import pytest
import torch

from realedit.models import pggan
from realedit.models.base import Generator
from realedit.models.stylegan import StyleGANGenerator, build_generator

TINY = dict(resolution=16, z_dim=12, w_dim=10, mapping_layers=3, fmap_base=64, fmap_max=16)
# resolution 16 -> num_ws 6; channels 16 @4, 16 @8, 8 @16


def tiny(**kw):
    torch.manual_seed(0)
    G = StyleGANGenerator(**{**TINY, **kw}).eval()
    return G


def with_noise(G, scale=0.5):
    """Non-zero noise strengths and biases (both start at zero, as in the official init)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for i in range(G.num_ws):
            layer = getattr(G.synthesis, f"layer{i}")
            layer.noise_strength.normal_(0, scale)
            layer.bias.normal_(0, 0.1)
    return G


# ----------------------------------------------------------------------------- protocol

def test_protocol_attributes_and_shapes():
    G = tiny()
    assert isinstance(G, Generator)
    assert (G.kind, G.spaces, G.num_ws, G.z_dim, G.w_dim, G.resolution) == \
        ("stylegan", ("z", "w", "wp"), 6, 12, 10, 16)
    assert G.ws_resolutions == [4, 4, 8, 8, 16, 16]
    assert G.w_avg.shape == (10,)
    z = torch.randn(3, 12)
    ws = G.mapping(z)
    assert ws.shape == (3, 6, 10)
    assert torch.equal(ws, ws[:, :1].expand(-1, 6, -1)), "without truncation every layer gets w"
    img = G.synthesis(ws)
    assert img.shape == (3, 3, 16, 16)
    # a single w is broadcast: the same image up to float32 rounding (the broadcast view and
    # the mapping's copy have different strides, so the CPU may pick another GEMM kernel)
    torch.testing.assert_close(G.synthesis(ws[:, 0]), img, rtol=0, atol=1e-5)
    assert torch.equal(G(z), img)
    with pytest.raises(ValueError):
        G.synthesis(torch.randn(3, 7, 10))
    with pytest.raises(ValueError):
        G.mapping(torch.randn(3, 10))


def test_full_size_configuration():
    G = StyleGANGenerator(resolution=1024)
    assert G.num_ws == 18 and G.ws_resolutions[-1] == 1024
    # The official network's 26,219,627 variables (paper: 26.2M) include ToRGB layers for the
    # lower lods, which a finished model at lod 0 never uses.
    lower_torgb = sum(3 * c + 3 for c in (512, 512, 512, 512, 256, 128, 64, 32))
    assert sum(p.numel() for p in G.parameters()) + lower_torgb == 26_219_627
    fused = {layer_res: getattr(G.synthesis, f"layer{i}").fused
             for i, layer_res in enumerate(G.ws_resolutions) if i >= 2 and i % 2 == 0}
    # fused_scale='auto': transposed conv from 128x128 up, nearest + conv below.
    assert fused == {8: False, 16: False, 32: False, 64: False, 128: True, 256: True,
                     512: True, 1024: True}


def test_truncation_semantics():
    G = tiny(resolution=64)  # 10 layers, so the official cutoff of 8 leaves two untouched
    assert G.num_ws == 10
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    z = torch.randn(4, 12)
    with torch.no_grad():
        ws = G.mapping(z)
        w_avg = G.w_avg
        # Official Gs.run(truncation_psi=psi) semantics: cutoff 8 layers.
        t = G.mapping(z, psi=0.7)
        torch.testing.assert_close(t[:, :8], w_avg + 0.7 * (ws[:, :8] - w_avg))
        assert torch.equal(t[:, 8:], ws[:, 8:])
        assert torch.allclose(G.mapping(z, psi=0.0)[:, :8], w_avg.expand(4, 8, -1))
        all_layers = G.mapping(z, psi=0.5, truncation_cutoff=None)
        torch.testing.assert_close(all_layers, w_avg + 0.5 * (ws - w_avg))
        assert torch.equal(G.mapping(z, psi=1.0), ws)
        # forward() uses the configured cutoff (8); a network built with another uses that.
        torch.testing.assert_close(G(z, psi=0.7), G.synthesis(t))
        G4 = tiny(resolution=64, truncation_cutoff=4)
        G4.load_state_dict(G.state_dict())
        t4 = G4.mapping(z, psi=0.7)
        torch.testing.assert_close(t4[:, :4], t[:, :4])
        assert torch.equal(t4[:, 4:], ws[:, 4:])


def test_latents_are_normalised_and_w_avg_tracks_the_mean():
    G = tiny()
    z = torch.randn(5, 12)
    with torch.no_grad():
        torch.testing.assert_close(G.mapping(z), G.mapping(3.0 * z), rtol=1e-5, atol=1e-6)
        w = G.mapping(z)[:, 0]
        before = G.w_avg.clone()
        G.mapping(z, update_w_avg=True)
    torch.testing.assert_close(G.w_avg, w.mean(0) + (before - w.mean(0)) * 0.995)


def test_each_ws_index_drives_its_own_layer_only():
    G = with_noise(tiny())
    outs = {}
    for i in range(G.num_ws):
        getattr(G.synthesis, f"layer{i}").register_forward_hook(
            lambda m, inp, out, i=i: outs.__setitem__(i, out.clone()))
    ws = G.mapping(torch.randn(2, 12))
    with torch.no_grad():
        base_img = G.synthesis(ws)
        base = dict(outs)
        for k in range(G.num_ws):
            ws2 = ws.clone()
            ws2[:, k] += torch.randn_like(ws2[:, k])
            img = G.synthesis(ws2)
            assert (img - base_img).abs().max() > 1e-3, f"ws[:, {k}] has no effect"
            for j in range(k):
                assert torch.equal(outs[j], base[j]), f"ws[:, {k}] changed earlier layer {j}"
            assert not torch.allclose(outs[k], base[k])


def test_noise_modes():
    G = with_noise(tiny())
    ws = G.mapping(torch.randn(2, 12))
    with torch.no_grad():
        a, b = G.synthesis(ws, noise="const"), G.synthesis(ws, noise="const")
        assert torch.equal(a, b)
        r1, r2 = G.synthesis(ws, noise="random"), G.synthesis(ws, noise="random")
        assert not torch.allclose(r1, r2, atol=1e-4)
        none = G.synthesis(ws, noise="none")
        assert not torch.allclose(none, a, atol=1e-4)
        # The stored noise maps only matter through the per-channel strengths.
        G.synthesis.layer3.noise_const.normal_()
        assert not torch.allclose(G.synthesis(ws), a, atol=1e-5)
        for i in range(G.num_ws):
            getattr(G.synthesis, f"layer{i}").noise_strength.zero_()
        torch.testing.assert_close(G.synthesis(ws, noise="random"), G.synthesis(ws, noise="none"))
        with pytest.raises(ValueError):
            G.synthesis(ws, noise="sometimes")


def test_noise_strength_is_per_channel():
    G = tiny()
    layer = G.synthesis.layer2
    x = torch.randn(1, 16, 4, 4)
    w = torch.randn(1, 10)
    with torch.no_grad():
        base = layer(x, w)
        layer.noise_strength[3] = 1.0
        out = layer(x, w)
    changed = (out - base).abs().amax(dim=(0, 2, 3)) > 1e-5
    assert changed.tolist() == [c == 3 for c in range(16)]


def test_instance_norm_and_style_modulation():
    """Each layer's output, per channel, is exactly an instance-normalised map scaled by
    (1 + style scale) and shifted by the style bias, both from the layer's own ws."""
    G = with_noise(tiny())
    layer = G.synthesis.layer3
    x = torch.randn(2, 16, 8, 8)
    w = torch.randn(2, 10)
    with torch.no_grad():
        out = layer(x, w)
        s = layer.style(w)
        scale, shift = s[:, :16, None, None] + 1, s[:, 16:, None, None]
        normed = (out - shift) / scale
        torch.testing.assert_close(normed.mean((2, 3)), torch.zeros(2, 16), atol=1e-4, rtol=0)
        torch.testing.assert_close(normed.var((2, 3), unbiased=False), torch.ones(2, 16),
                                   atol=1e-3, rtol=0)


def test_inference_and_autograd_paths_agree():
    """Without autograd the layers update activations in place; with it they must not, and
    both must compute the same images (also in the NCHW layout)."""
    G = with_noise(tiny(resolution=32))
    ws = G.mapping(torch.randn(2, 12)).detach()
    with torch.no_grad():
        fast = G.synthesis(ws)
    w = ws.clone().requires_grad_()
    slow = G.synthesis(w)
    torch.testing.assert_close(slow.detach(), fast, rtol=1e-4, atol=1e-4)
    slow.square().mean().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    G.synthesis.channels_last = False
    with torch.no_grad():
        torch.testing.assert_close(G.synthesis(ws), fast, rtol=1e-4, atol=1e-4)


def test_equalized_lr_runtime_scales():
    G = tiny()
    m = G.mapping
    assert m.dense0.weight_gain == pytest.approx(math.sqrt(2) / math.sqrt(12) * 0.01)
    assert m.dense1.weight_gain == pytest.approx(math.sqrt(2) / math.sqrt(10) * 0.01)
    assert m.dense0.bias_gain == pytest.approx(0.01)
    # Stored weights are N(0, 1/lr_mul^2), so the effective weights start at He std.
    eff = m.dense0.weight * m.dense0.weight_gain
    assert eff.std().item() == pytest.approx(math.sqrt(2 / 12), rel=0.3)
    syn = G.synthesis
    for i in range(G.num_ws):
        layer = getattr(syn, f"layer{i}")
        assert layer.style.weight_gain == pytest.approx(1 / math.sqrt(10))
        if i:
            fan_in = 9 * layer.weight.shape[1]
            assert layer.weight_gain == pytest.approx(math.sqrt(2) / math.sqrt(fan_in))
    assert syn.torgb.weight_gain == pytest.approx(1 / math.sqrt(8))


def test_config_roundtrip_and_numerics_at_init():
    G = tiny(fused_scale=True)
    G2 = build_generator(**G.config).eval()
    G2.load_state_dict(G.state_dict())
    z = torch.randn(3, 12, requires_grad=True)
    with torch.no_grad():
        assert torch.equal(G(z), G2(z))
    img = G(z)
    assert torch.isfinite(img).all() and 0.05 < img.std().item() < 10
    img.square().mean().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    ws = G.mapping(z.detach()).detach().requires_grad_()
    G.synthesis(ws).mean().backward()
    assert (ws.grad.abs().sum(dim=(0, 2)) > 0).all(), "every ws layer gets a gradient"


# ----------------------------------------------------------------------------- official graph

def _np_conv2d(x, w):
    """TF conv2d, NCHW, 'SAME', stride 1; w is [kh, kw, in, out]."""
    k = w.shape[0]
    p = k // 2
    h, wd = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    return sum(np.einsum("nihw,io->nohw", xp[:, :, a:a + h, b:b + wd], w[a, b])
               for a in range(k) for b in range(k))


def _np_conv2d_transpose_s2(x, w):
    """TF conv2d_transpose, stride 2, 'SAME', output 2H x 2W; w is [kh, kw, out, in]."""
    k = w.shape[0]
    n, _, h, wd = x.shape
    pad_before = max((h - 1) * 2 + k - 2 * h, 0) // 2
    buf = np.zeros((n, w.shape[2], 2 * h + k, 2 * wd + k))
    for a in range(k):
        for b in range(k):
            buf[:, :, a:a + 2 * h:2, b:b + 2 * wd:2] += np.einsum("nihw,oi->nohw", x, w[a, b])
    return buf[:, :, pad_before:pad_before + 2 * h, pad_before:pad_before + 2 * wd]


def _np_blur(x):
    f = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    h, w = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return sum(f[a, b] * xp[:, :, a:a + h, b:b + w] for a in range(3) for b in range(3))


def _scopes(resolution):
    out = ["4x4/Const", "4x4/Conv"]
    r = 8
    while r <= resolution:
        out += [f"{r}x{r}/Conv0_up", f"{r}x{r}/Conv1"]
        r *= 2
    return out


def _official_vars(cfg, nf, rng):
    """Random variables with the official names (component-prefixed) and TF shapes."""
    zd, wd, nl = cfg["z_dim"], cfg["w_dim"], cfg["mapping_layers"]
    v = {"dlatent_avg": rng.standard_normal(wd)}
    feats = [zd] + [wd] * nl
    for j in range(nl):
        v[f"mapping/Dense{j}/weight"] = rng.standard_normal((feats[j], feats[j + 1])) * 100
        v[f"mapping/Dense{j}/bias"] = rng.standard_normal(feats[j + 1]) * 10
    v["synthesis/4x4/Const/const"] = rng.standard_normal((1, nf[4], 4, 4))
    for i, scope in enumerate(_scopes(cfg["resolution"])):
        r = 2 ** (i // 2 + 2)
        cout = nf[r]
        t = f"synthesis/{scope}"
        if i:
            cin = nf[r // 2] if scope.endswith("Conv0_up") else nf[r]
            v[f"{t}/weight"] = rng.standard_normal((3, 3, cin, cout))
        v[f"{t}/bias"] = rng.standard_normal(cout) * 0.1
        v[f"{t}/Noise/weight"] = rng.standard_normal(cout) * 0.3
        v[f"{t}/StyleMod/weight"] = rng.standard_normal((wd, 2 * cout))
        v[f"{t}/StyleMod/bias"] = rng.standard_normal(2 * cout) * 0.1
        v[f"synthesis/noise{i}"] = rng.standard_normal((1, 1, r, r))
    v["synthesis/ToRGB_lod0/weight"] = rng.standard_normal((1, 1, nf[cfg["resolution"]], 3))
    v["synthesis/ToRGB_lod0/bias"] = rng.standard_normal(3) * 0.1
    return v


def _np_g_style(v, z, cfg, nf, psi, cutoff, fused_min_res):
    """NumPy transcription of the official G_style (mapping, truncation, synthesis at lod 0,
    randomize_noise=False) in float64."""
    def act(x):
        return np.maximum(x, x * 0.2)

    def he(w, gain, lrmul=1.0):
        return w * (gain / np.sqrt(np.prod(w.shape[:-1])) * lrmul)

    x = z / np.sqrt(np.mean(z ** 2, axis=1, keepdims=True) + 1e-8)
    for j in range(cfg["mapping_layers"]):
        x = act(x @ he(v[f"mapping/Dense{j}/weight"], np.sqrt(2), 0.01)
                + v[f"mapping/Dense{j}/bias"] * 0.01)
    scopes = _scopes(cfg["resolution"])
    num_layers = len(scopes)
    dl = np.repeat(x[:, None], num_layers, axis=1)
    coefs = np.where(np.arange(num_layers)[None, :, None] < cutoff, psi, 1.0)
    dl = v["dlatent_avg"] + (dl - v["dlatent_avg"]) * coefs

    def epilogue(x, i, t):
        x = x + v[f"synthesis/noise{i}"] * v[f"{t}/Noise/weight"].reshape(1, -1, 1, 1)
        x = act(x + v[f"{t}/bias"].reshape(1, -1, 1, 1))
        x = x - x.mean(axis=(2, 3), keepdims=True)
        x = x / np.sqrt(np.mean(x ** 2, axis=(2, 3), keepdims=True) + 1e-8)
        style = dl[:, i] @ he(v[f"{t}/StyleMod/weight"], 1.0) + v[f"{t}/StyleMod/bias"]
        style = style.reshape(-1, 2, x.shape[1], 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]

    x = np.repeat(v["synthesis/4x4/Const/const"], z.shape[0], axis=0)
    for i, scope in enumerate(scopes):
        t = f"synthesis/{scope}"
        if i == 0:
            pass
        elif scope.endswith("Conv0_up"):
            w = he(v[f"{t}/weight"], np.sqrt(2))
            if x.shape[2] * 2 >= fused_min_res:
                w = np.pad(w.transpose(0, 1, 3, 2), ((1, 1), (1, 1), (0, 0), (0, 0)))
                w = w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]
                x = _np_conv2d_transpose_s2(x, w)
            else:
                x = _np_conv2d(x.repeat(2, axis=2).repeat(2, axis=3), w)
            x = _np_blur(x)
        else:
            x = _np_conv2d(x, he(v[f"{t}/weight"], np.sqrt(2)))
        x = epilogue(x, i, t)
    return _np_conv2d(x, he(v["synthesis/ToRGB_lod0/weight"], 1.0)) \
        + v["synthesis/ToRGB_lod0/bias"].reshape(1, -1, 1, 1)


@pytest.mark.parametrize("impl_min_res", [128, 8], ids=["upconv", "transposed"])
@pytest.mark.parametrize("fused,psi", [("auto", 1.0), (True, 0.7)])
def test_matches_official_graph_from_tf_variables(fused, psi, impl_min_res, monkeypatch):
    # See the PGGAN test: the threshold picks the implementation, not the semantics.
    monkeypatch.setattr(pggan, "TRANSPOSED_MIN_RES", impl_min_res)
    cfg = dict(TINY, resolution=32)  # num_ws 8; channels 16,16,16,8
    G = tiny(resolution=32, fused_scale=fused)
    nf = {4: 16, 8: 16, 16: 8, 32: 4}
    widths = [getattr(G.synthesis, f"layer{i}").bias.numel() for i in range(0, 8, 2)]
    assert widths == list(nf.values())
    rng = np.random.default_rng(2)
    v = _official_vars(cfg, nf, rng)
    names = G.tf_variable_names()
    assert set(names) == set(G.state_dict()), "every parameter/buffer has one official name"
    assert set(names.values()) == set(v), "and every official variable lands somewhere"
    G.load_state_dict({k: G.from_tf(k, v[tf]) for k, tf in names.items()})
    z = rng.standard_normal((3, cfg["z_dim"]))
    want = _np_g_style(v, z, cfg, nf, psi, cutoff=8 if psi != 1 else 0,
                       fused_min_res=8 if fused is True else 128)
    with torch.no_grad():
        got = G(torch.from_numpy(z).float(), psi=psi, noise="const").double().numpy()
    err = np.abs(got - want).max()
    assert err < 1e-4 * max(1.0, np.abs(want).max()), err
