"""PGGAN generator: protocol, official layout and semantics, equalised lr, pixel norm.

The strongest check here is ``test_matches_official_graph_from_tf_variables``: random
variables with the official TF names and shapes of ``G_paper`` are converted with
``from_tf`` and the network is compared with an independent NumPy transcription of the
official graph (float64, TF layouts, TF conv/transposed-conv padding rules).
"""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from realedit.errors import UsageError
from realedit.models import pggan
from realedit.models.base import Generator
from realedit.models.pggan import (PGGANGenerator, build_generator, fused_up_kernel, nf_table,
                                   pixel_norm, upsample_nearest2x)

TINY = dict(resolution=16, z_dim=12, fmap_base=64, fmap_max=16)  # channels 16,16,16 -> 8 @16


def tiny(**kw):
    torch.manual_seed(0)
    return PGGANGenerator(**{**TINY, **kw}).eval()


# ----------------------------------------------------------------------------- protocol

def test_protocol_attributes_and_shapes():
    G = tiny()
    assert isinstance(G, Generator)
    assert (G.kind, G.spaces, G.num_ws, G.w_dim, G.z_dim, G.resolution) == \
        ("pggan", ("z",), 1, 12, 12, 16)
    assert torch.equal(G.w_avg, torch.zeros(12))
    z = torch.randn(3, 12)
    ws = G.mapping(z)
    assert ws.shape == (3, 1, 12) and torch.equal(ws[:, 0], z)
    img = G.synthesis(ws)
    assert img.shape == (3, 3, 16, 16) and img.dtype == torch.float32
    # A plain (N, z_dim) code is accepted as well and means the same thing.
    assert torch.equal(G.synthesis(z), img)
    assert torch.equal(G(z), img)


def test_truncation_is_refused_with_usage_error():
    G = tiny()
    with pytest.raises(UsageError, match="psi"):
        G.mapping(torch.randn(1, 12), psi=0.7)
    with pytest.raises(ValueError):
        G.mapping(torch.randn(1, 13))
    with pytest.raises(ValueError):
        G.synthesis(torch.randn(1, 2, 12))  # num_ws is 1
    with pytest.raises(ValueError):
        G.synthesis(torch.randn(1, 12), noise="sometimes")


def test_channel_table_and_full_size_parameter_count():
    # CelebA-HQ 1024: 512 channels up to 32x32, then halving to 16 at 1024 (paper Table 2).
    assert nf_table(1024) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64,
                              512: 32, 1024: 16}
    G = PGGANGenerator(resolution=1024)
    assert G.z_dim == 512 and G.num_layers == 18
    n = sum(p.numel() for p in G.parameters())
    lower_torgb = sum(3 * c + 3 for c in (512, 512, 512, 512, 256, 128, 64, 32))
    assert n + lower_torgb == 23_079_115  # the paper's 23.1M, which counts every lod's ToRGB


def test_deterministic_and_batch_independent():
    G = tiny()
    z = torch.randn(4, 12)
    with torch.no_grad():
        a, b = G(z), G(z)
        one = G(z[2:3])
    assert torch.equal(a, b)
    torch.testing.assert_close(a[2:3], one, rtol=1e-4, atol=1e-4)  # conv kernels differ by batch


def test_latents_are_pixel_normalised_so_scale_does_not_matter():
    G = tiny()
    z = torch.randn(2, 12)
    with torch.no_grad():
        torch.testing.assert_close(G(z), G(5.0 * z), rtol=1e-5, atol=1e-5)
        G_raw = tiny(normalize_latents=False)
        G_raw.layer0.bias.normal_()  # with zero biases every layer is scale-invariant anyway
        assert not torch.allclose(G_raw(z), G_raw(5.0 * z), atol=1e-3)


def test_pixel_norm_properties():
    x = torch.randn(2, 7, 5, 3) * 3 + 1
    y = pixel_norm(x)
    torch.testing.assert_close(y.square().mean(1), torch.ones(2, 5, 3), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pixel_norm(4.0 * x), y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y, x / torch.sqrt(x.square().mean(1, keepdim=True) + 1e-8))
    # Every hidden activation of the generator is pixel-normalised.
    G = tiny()
    seen = []
    for i in range(1, G.num_layers):
        getattr(G, f"layer{i}").register_forward_hook(lambda m, inp, out: seen.append(out))
    with torch.no_grad():
        G(torch.randn(2, 12))
    assert len(seen) == G.num_layers - 1
    for out in seen:
        torch.testing.assert_close(out.square().mean(1), torch.ones_like(out[:, 0]),
                                   rtol=1e-4, atol=1e-4)


def test_equalized_lr_runtime_scales():
    G = tiny()
    c4 = G.channels[4]
    # Dense: the official gain override sqrt(2)/4 with fan_in = z_dim.
    assert G.layer0.weight_gain == pytest.approx(math.sqrt(2) / 4 / math.sqrt(12))
    for i in range(1, G.num_layers):
        layer = getattr(G, f"layer{i}")
        cin = layer.weight.shape[1]
        assert layer.weight_gain == pytest.approx(math.sqrt(2) / math.sqrt(cin * 9))
    assert G.torgb.weight_gain == pytest.approx(1 / math.sqrt(G.channels[16]))
    # Stored weights are unit-variance draws; the scale is applied at run time: doubling the
    # runtime gain of the first conv equals doubling its stored weights.
    assert G.layer1.weight.std().item() == pytest.approx(1.0, abs=0.1)
    x = torch.randn(1, c4, 4, 4)
    with torch.no_grad():
        ref = F.conv2d(x, G.layer1.weight * G.layer1.weight_gain, G.layer1.bias, padding=1)
        ref = pixel_norm(F.leaky_relu(ref, 0.2))
        torch.testing.assert_close(G.layer1(x), ref)


def test_inference_and_autograd_paths_agree():
    """Without autograd pixel norm works in place; with it, it must not; same images either
    way, and in the NCHW layout too."""
    G = tiny()
    z = torch.randn(2, 12)
    with torch.no_grad():
        fast = G(z)
    zz = z.clone().requires_grad_()
    slow = G(zz)
    torch.testing.assert_close(slow.detach(), fast, rtol=1e-4, atol=1e-4)
    slow.mean().backward()
    assert torch.isfinite(zz.grad).all()
    G.channels_last = False
    with torch.no_grad():
        torch.testing.assert_close(G(z), fast, rtol=1e-4, atol=1e-4)


def test_fused_kernel_equals_upsample_then_rotated_conv():
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    w = torch.randn(4, 5, 3, 3, dtype=torch.float64)
    fused = F.conv_transpose2d(x, fused_up_kernel(w), stride=2, padding=1)
    torch.testing.assert_close(fused, F.conv2d(upsample_nearest2x(x), w.flip(2, 3), padding=1))
    assert not torch.allclose(fused, F.conv2d(upsample_nearest2x(x), w, padding=1))


@pytest.mark.parametrize("size", [8, 64])  # below and at the transposed-conv threshold
def test_conv2d_up_semantics_at_every_size(size):
    x = torch.randn(1, 3, size, size, dtype=torch.float64)
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    b = torch.randn(2, dtype=torch.float64)
    plain = F.conv2d(upsample_nearest2x(x), w, b, padding=1)
    official_fused = F.conv_transpose2d(x, fused_up_kernel(w), b, stride=2, padding=1)
    torch.testing.assert_close(pggan.conv2d_up(x, w, b, up=2, fused=False), plain)
    torch.testing.assert_close(pggan.conv2d_up(x, w, b, up=2, fused=True), official_fused)


def test_config_roundtrip_rebuilds_same_network():
    G = tiny(fused_scale=True)
    G2 = build_generator(**G.config).eval()
    G2.load_state_dict(G.state_dict())
    z = torch.randn(2, 12)
    with torch.no_grad():
        assert torch.equal(G(z), G2(z))


def test_reasonable_numerics_and_gradients_at_init():
    G = tiny()
    z = torch.randn(4, 12, requires_grad=True)
    img = G(z)
    assert torch.isfinite(img).all()
    assert 0.05 < img.std().item() < 5
    img.square().mean().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())


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


def _official_vars(resolution, z_dim, nf, fused, rng):
    """Random variables with G_paper's names and TF shapes."""
    v = {"4x4/Dense/weight": rng.standard_normal((z_dim, nf[4] * 16)),
         "4x4/Dense/bias": rng.standard_normal(nf[4]) * 0.1,
         "4x4/Conv/weight": rng.standard_normal((3, 3, nf[4], nf[4])),
         "4x4/Conv/bias": rng.standard_normal(nf[4]) * 0.1}
    r = 8
    while r <= resolution:
        cin, cout = nf[r // 2], nf[r]
        if fused:  # upscale2d_conv2d stores [k, k, fmaps_out, fmaps_in]
            v[f"{r}x{r}/Conv0_up/weight"] = rng.standard_normal((3, 3, cout, cin))
            v[f"{r}x{r}/Conv0_up/bias"] = rng.standard_normal(cout) * 0.1
        else:
            v[f"{r}x{r}/Conv0/weight"] = rng.standard_normal((3, 3, cin, cout))
            v[f"{r}x{r}/Conv0/bias"] = rng.standard_normal(cout) * 0.1
        v[f"{r}x{r}/Conv1/weight"] = rng.standard_normal((3, 3, cout, cout))
        v[f"{r}x{r}/Conv1/bias"] = rng.standard_normal(cout) * 0.1
        r *= 2
    v["ToRGB_lod0/weight"] = rng.standard_normal((1, 1, nf[resolution], 3))
    v["ToRGB_lod0/bias"] = rng.standard_normal(3) * 0.1
    return v


def _np_g_paper(v, z, resolution, nf, fused):
    """NumPy transcription of the official G_paper graph at lod 0 (float64)."""
    def pn(x):
        return x / np.sqrt(np.mean(x ** 2, axis=1, keepdims=True) + 1e-8)

    def act(x):
        return np.maximum(x * 0.2, x)

    def wscale(w, gain, fan_in=None):
        return w * (gain / np.sqrt(fan_in if fan_in else np.prod(w.shape[:-1])))

    x = pn(z)
    x = x @ wscale(v["4x4/Dense/weight"], np.sqrt(2) / 4)
    x = pn(act(x.reshape(-1, nf[4], 4, 4) + v["4x4/Dense/bias"].reshape(1, -1, 1, 1)))
    x = pn(act(_np_conv2d(x, wscale(v["4x4/Conv/weight"], np.sqrt(2)))
               + v["4x4/Conv/bias"].reshape(1, -1, 1, 1)))
    r = 8
    while r <= resolution:
        if fused:
            w = v[f"{r}x{r}/Conv0_up/weight"]
            w = wscale(w, np.sqrt(2), fan_in=9 * w.shape[3])
            w = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
            w = w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]
            x = _np_conv2d_transpose_s2(x, w) + v[f"{r}x{r}/Conv0_up/bias"].reshape(1, -1, 1, 1)
        else:
            x = x.repeat(2, axis=2).repeat(2, axis=3)
            x = _np_conv2d(x, wscale(v[f"{r}x{r}/Conv0/weight"], np.sqrt(2))) \
                + v[f"{r}x{r}/Conv0/bias"].reshape(1, -1, 1, 1)
        x = pn(act(x))
        x = pn(act(_np_conv2d(x, wscale(v[f"{r}x{r}/Conv1/weight"], np.sqrt(2)))
                   + v[f"{r}x{r}/Conv1/bias"].reshape(1, -1, 1, 1)))
        r *= 2
    rgb = _np_conv2d(x, wscale(v["ToRGB_lod0/weight"], 1.0))
    return rgb + v["ToRGB_lod0/bias"].reshape(1, -1, 1, 1)


@pytest.mark.parametrize("impl_min_res", [128, 8], ids=["upconv", "transposed"])
@pytest.mark.parametrize("fused", [False, True])
def test_matches_official_graph_from_tf_variables(fused, impl_min_res, monkeypatch):
    # Upsampling convs run as nearest+conv below TRANSPOSED_MIN_RES and as one transposed
    # conv from there; lowering the threshold runs the same tiny network through the other.
    monkeypatch.setattr(pggan, "TRANSPOSED_MIN_RES", impl_min_res)
    G = tiny(fused_scale=fused)
    rng = np.random.default_rng(1)
    v = _official_vars(16, 12, G.channels, fused, rng)
    names = G.tf_variable_names()
    assert set(names) == set(G.state_dict()), "every parameter has exactly one official name"
    assert set(names.values()) == set(v), "and every official variable lands somewhere"
    G.load_state_dict({k: G.from_tf(k, v[tf]) for k, tf in names.items()})
    z = rng.standard_normal((3, 12))
    want = _np_g_paper(v, z, 16, G.channels, fused)
    with torch.no_grad():
        got = G(torch.from_numpy(z).float()).double().numpy()
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max())


def test_interfacegan_dense_layout_maps_to_ours():
    """interfacegan stores the Dense layer as a flipped 4x4 conv applied to z as a 1x1 map
    (padding 3); the documented conversion must reproduce its output exactly."""
    G = tiny()
    c, zd = G.channels[4], G.z_dim
    w_ig = torch.randn(c, zd, 4, 4, dtype=torch.float64)
    z = torch.randn(2, zd, dtype=torch.float64)
    ig = F.conv2d(z[:, :, None, None], w_ig, padding=3)
    ours_w = w_ig.flip(2, 3).permute(0, 2, 3, 1).reshape(16 * c, zd)
    ours = F.linear(z, ours_w).reshape(2, c, 4, 4)
    torch.testing.assert_close(ours, ig)
