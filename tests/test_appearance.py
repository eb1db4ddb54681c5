"""Model-free appearance measures (realedit.research.appearance): each moves the way its name says
on images built to differ in exactly that, and not on the others."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from realedit.research import appearance as A


def lab_image(size=64, hair=(30.0, 20.0, 25.0), skin=(65.0, 15.0, 18.0), bg=(85.0, 0.0, 0.0)):
    """A crude face in CIELAB -> sRGB [-1, 1]: background, a hair cap and side locks, skin."""
    lab = np.zeros((size, size, 3))
    lab[:] = bg
    yy, xx = np.mgrid[0:size, 0:size] / size
    head = ((xx - 0.5) / 0.4) ** 2 + ((yy - 0.48) / 0.43) ** 2 < 1
    lab[head] = hair
    face = ((xx - 0.5) / 0.34) ** 2 + ((yy - 0.58) / 0.42) ** 2 < 1
    lab[face] = skin
    return _to_rgb(lab)


def _to_rgb(lab):
    """CIELAB (D65) -> sRGB tensor (1, 3, H, W) in [-1, 1] (inverse of appearance.to_lab)."""
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (L + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200
    def finv(f):
        return np.where(f ** 3 > 0.008856, f ** 3, (f - 16 / 116) / 7.787)
    xyz = np.stack([finv(fx) * 0.95047, finv(fy), finv(fz) * 1.08883], -1)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    lin = np.clip(xyz @ np.linalg.inv(m).T, 0, 1)
    srgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return torch.from_numpy(srgb).permute(2, 0, 1)[None].float() * 2 - 1


def test_lab_round_trip():
    x = lab_image()
    lab = A.to_lab(x)[0].permute(1, 2, 0).numpy()
    assert np.allclose(lab[2, 2], (85, 0, 0), atol=0.5)       # background
    assert np.allclose(lab[40, 32], (65, 15, 18), atol=0.5)   # skin


def test_grey_hair_raises_hair_grey_and_nothing_else():
    before = lab_image(hair=(30, 20, 25))       # brown
    after = lab_image(hair=(62, 1, 3))          # grey
    d = A.changes(before, after)
    assert d["hair_grey"][0] > 40 and d["hair_lightness"][0] > 20 and d["hair_chroma"][0] < -20
    for k in ("skin_lightness", "skin_a", "skin_b", "skin_detail", "lip_redness", "border_lightness"):
        assert abs(d[k][0]) < 0.5, k
    # the hair weights leave the skin out: face-coloured 'hair' (a bald crown) is not hair
    # (the background inside the hair boxes is not told apart: compare changes, not levels)
    bald = float(A.hair_weights(lab_image(hair=(65, 15, 18))).sum())
    assert bald < 0.3 * float(A.hair_weights(before).sum())


def test_creases_raise_skin_detail_and_colour_noise_is_told_apart():
    base = lab_image()
    lab = A.to_lab(base)
    creased = lab.clone()
    creased[:, 0, 18:23:2, 25:39] -= 10         # dark horizontal lines across the forehead
    noisy = lab.clone()
    g = torch.Generator().manual_seed(0)
    noisy[:, 1:] += 6 * torch.randn(noisy[:, 1:].shape, generator=g)   # chroma blotches
    def rgb(t):
        return _to_rgb(t[0].permute(1, 2, 0).numpy())
    d1 = A.changes(base, rgb(creased))
    d2 = A.changes(base, rgb(noisy))
    assert d1["skin_detail"][0] > 1.0 and d1["skin_colour_noise"][0] < 0.2
    assert d2["skin_colour_noise"][0] > 2.0 and d2["skin_detail"][0] < 0.5 * d1["skin_detail"][0]


def test_a_cast_shows_on_the_skin_and_border():
    before = lab_image()
    after = lab_image(hair=(30, 20, 25), skin=(65, 15, 30), bg=(85, 0, 12))   # yellow cast
    d = A.changes(before, after)
    assert d["skin_b"][0] > 10 and d["border_lightness"][0] == pytest.approx(0, abs=1)


def test_measures_are_differentiable_and_resolution_free():
    x = lab_image(size=256).requires_grad_(True)
    out = A.measure(x)
    out["hair_grey"].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    small = A.measure(torch.nn.functional.interpolate(x.detach(), size=(64, 64), mode="area"))
    for k in ("hair_grey", "skin_lightness", "lip_redness"):
        assert float(out[k].detach()) == pytest.approx(float(small[k]), abs=1e-3)
