"""LPIPS v0.1 without torchvision, checked against an independent NumPy transcription of the
definition (torchvision layer layout, reference scaling constants, eps-normalised channels,
1x1 heads, spatial mean, sum over taps) with fixed random weights stored under the official
file key names."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from realedit.errors import FormatError, WeightsNotFound
from realedit.invert.losses import build_loss
from realedit.invert.lpips import LPIPS


# --------------------------------------------------------------------------- NumPy reference
# torchvision ``features`` as written in its model definitions: conv(out, k, stride, pad),
# "R" relu, ("M", k, s) max-pool. LPIPS taps the ReLU outputs at these features indices.
VGG16_FEATURES = []
for item in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
    if item == "M":
        VGG16_FEATURES.append(("M", 2, 2))
    else:
        VGG16_FEATURES += [("C", item, 3, 1, 1), ("R",)]
VGG16_TAPS = [3, 8, 15, 22, 29]
ALEX_FEATURES = [("C", 64, 11, 4, 2), ("R",), ("M", 3, 2), ("C", 192, 5, 1, 2), ("R",), ("M", 3, 2),
                 ("C", 384, 3, 1, 1), ("R",), ("C", 256, 3, 1, 1), ("R",), ("C", 256, 3, 1, 1), ("R",),
                 ("M", 3, 2)]
ALEX_TAPS = [1, 4, 7, 9, 11]
LAYOUT = {"vgg": (VGG16_FEATURES, VGG16_TAPS), "alex": (ALEX_FEATURES, ALEX_TAPS)}


def np_conv(x, w, b, stride, pad):
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    out = np.tensordot(win, w, axes=([0, 3, 4], [1, 2, 3]))      # (h, w, out)
    return out.transpose(2, 0, 1) + b[:, None, None]


def np_maxpool(x, k, s):
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]
    return win.max(axis=(-1, -2))


def np_lpips(net, sd, heads, a, b, per_layer=False):
    """LPIPS v0.1 of two (3, H, W) float64 images in [-1, 1], one explicit loop per layer."""
    layers, taps = LAYOUT[net]
    shift = np.array([-0.030, -0.088, -0.188])[:, None, None]
    scale = np.array([0.458, 0.448, 0.450])[:, None, None]

    def feats(x):
        x, out = (x - shift) / scale, []
        for i, layer in enumerate(layers[:taps[-1] + 1]):
            if layer[0] == "C":
                x = np_conv(x, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], layer[3], layer[4])
            elif layer[0] == "R":
                x = np.maximum(x, 0)
            else:
                x = np_maxpool(x, layer[1], layer[2])
            if i in taps:
                out.append(x)
        return out

    layer = []
    for k, (fa, fb) in enumerate(zip(feats(a), feats(b))):
        na = fa / (np.sqrt((fa ** 2).sum(0, keepdims=True)) + 1e-10)
        nb = fb / (np.sqrt((fb ** 2).sum(0, keepdims=True)) + 1e-10)
        d = (na - nb) ** 2                                       # (C, h, w)
        layer.append((heads[f"lin{k}.model.1.weight"][0, :, 0, 0][:, None, None] * d).sum(0).mean())
    return layer if per_layer else sum(layer)


def random_files(net, tmp_path, seed=0):
    """Random weights saved under torchvision / lpips key names (plus unrelated classifier keys)."""
    rng = np.random.default_rng(seed)
    layers, taps = LAYOUT[net]
    sd, cin = {}, 3
    for i, layer in enumerate(layers):
        if layer[0] == "C":
            out, k = layer[1], layer[2]
            sd[f"features.{i}.weight"] = rng.standard_normal((out, cin, k, k)) * np.sqrt(2 / (cin * k * k))
            sd[f"features.{i}.bias"] = rng.standard_normal(out) * 0.05
            cin = out
    chans = [sd[f"features.{i - 1}.weight"].shape[0] if layers[i - 1][0] == "C" else None for i in taps]
    heads = {f"lin{k}.model.1.weight": rng.random((1, c, 1, 1)) * 0.1 for k, c in enumerate(chans)}
    files = {}
    for name, d in (("backbone", dict(sd, **{"classifier.0.weight": np.zeros((4, 4))})), ("head", heads)):
        p = tmp_path / f"{net}-{name}.pth"
        torch.save({k: torch.from_numpy(v).float() for k, v in d.items()}, p)
        files[name] = p
    f32 = lambda d: {k: torch.from_numpy(v).float().double().numpy() for k, v in d.items()}  # noqa: E731
    return f32(sd), f32(heads), files


@pytest.mark.parametrize("net,size", [("vgg", 32), ("alex", 64)])
def test_matches_numpy_definition(net, size, tmp_path):
    sd, heads, files = random_files(net, tmp_path)
    m = LPIPS.pretrained(net, backbone=files["backbone"], head=files["head"])
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, size, size, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(2, 3, size, size, generator=g)).clamp(-1, 1)
    got = m(x, y).double().numpy()
    want = np.array([np_lpips(net, sd, heads, x[i].double().numpy(), y[i].double().numpy()) for i in range(2)])
    assert want.min() > 1e-3  # a meaningful, non-degenerate distance
    np.testing.assert_allclose(got, want, rtol=2e-4)
    # Identity, symmetry, and a gradient that reaches the input.
    assert torch.allclose(m(x, x), torch.zeros(2), atol=1e-7)
    assert torch.allclose(m(y, x), m(x, y), rtol=1e-5)
    xg = x.clone().requires_grad_(True)
    m(xg, y).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_layer_taps_match_definition(tmp_path):
    """Per-tap distances, not only their sum, agree with the reference (catches swapped taps)."""
    sd, heads, files = random_files("vgg", tmp_path, seed=3)
    m = LPIPS.pretrained("vgg", backbone=files["backbone"], head=files["head"])
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    per = [float(t) for t in m.layer_distances(x, y)]
    want = np_lpips("vgg", sd, heads, x[0].double().numpy(), y[0].double().numpy(), per_layer=True)
    np.testing.assert_allclose(per, want, rtol=2e-4)
    assert len(set(np.round(want, 6))) == 5  # taps distinguishable, so a swap would show


def test_no_torchvision_import():
    assert "torchvision" not in sys.modules


def test_missing_backbone_is_an_error_never_random(tmp_path, monkeypatch):
    monkeypatch.setenv("REALEDIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("REALEDIT_OFFLINE", "1")
    with pytest.raises(WeightsNotFound, match="vgg16-397923af.pth"):
        build_loss("lpips-vgg+mse")
    with pytest.raises(WeightsNotFound, match="alexnet-owt-7be5be79.pth"):
        LPIPS.pretrained("alex")
    with pytest.raises(WeightsNotFound):
        LPIPS.pretrained("vgg", backbone=tmp_path / "nowhere" / "vgg16.pth")


def test_wrong_files_are_format_errors(tmp_path):
    _, _, vgg = random_files("vgg", tmp_path)
    _, _, alex = random_files("alex", tmp_path)
    with pytest.raises(FormatError, match="torchvision"):
        LPIPS.pretrained("vgg", backbone=alex["backbone"], head=vgg["head"])
    with pytest.raises(FormatError, match="head"):
        LPIPS.pretrained("vgg", backbone=vgg["backbone"], head=alex["head"])
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"<html>not a model</html>")
    with pytest.raises((FormatError, Exception)) as exc:
        LPIPS.pretrained("vgg", backbone=junk, head=vgg["head"])
    assert "Traceback" not in str(exc.value) and len(str(exc.value).splitlines()) == 1


def test_official_head_files_load_when_the_lpips_wheel_is_present():
    import importlib.util
    spec = importlib.util.find_spec("lpips")
    if spec is None:
        pytest.skip("the lpips wheel (which ships the v0.1 head files) is not installed")
    from pathlib import Path
    root = Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1"
    for net, chans in (("vgg", [64, 128, 256, 512, 512]), ("alex", [64, 192, 384, 256, 256])):
        m = LPIPS(net)
        m.load_heads(root / f"{net}.pth")
        assert [h.shape[1] for h in m.heads] == chans
        assert all(float(h.min()) >= 0 for h in m.heads)  # v0.1 heads are clamped non-negative
