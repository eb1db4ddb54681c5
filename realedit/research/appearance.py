"""Model-free appearance measures of an FFHQ-aligned face crop, for judging age edits with
something other than an age network.

An age estimator can be moved by an edit trained against it without the face looking older
(a darker mouth, a colour cast, blotches). These measures read what a person reads as age and
no network was trained on: how grey the hair is (lighter and less coloured), how much fine
luminance detail the skin shows where creases form (forehead, crow's feet, under the eyes,
nasolabial folds), how red the lips are, and, as checks that an edit stays local, the skin's
colour noise and the background's lightness. They are plain colour statistics in CIELAB
(L* 0..100) over fixed regions of the crop, differentiable, so they can also serve as
training signals; as judges they are best compared before and after one edit of one face
(:func:`changes`), with the hair weights taken from the face before the edit.

Regions are fractions of the crop side, placed from the mean dlib landmarks of 194 aligned
CelebA photos (brows at y ~0.39, eyes ~0.47, mouth ~0.73, chin ~0.93) and the generator's mean
image (hairline ~0.2, top of the head ~0.06).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

# (left, top, right, bottom) fractions of the crop; a region is the union of its boxes.
REGIONS = {
    "hair": [(0.28, 0.06, 0.72, 0.19), (0.11, 0.22, 0.21, 0.50), (0.79, 0.22, 0.89, 0.50)],
    "forehead": [(0.38, 0.28, 0.62, 0.36)],
    "crow": [(0.27, 0.43, 0.32, 0.52), (0.68, 0.43, 0.73, 0.52)],
    "under_eye": [(0.33, 0.50, 0.43, 0.55), (0.57, 0.50, 0.67, 0.55)],
    "nasolabial": [(0.38, 0.63, 0.45, 0.72), (0.55, 0.63, 0.62, 0.72)],
    "cheek": [(0.29, 0.56, 0.38, 0.64), (0.62, 0.56, 0.71, 0.64)],
    "lips": [(0.42, 0.71, 0.58, 0.79)],
    "border": [(0.0, 0.0, 0.07, 0.12), (0.93, 0.0, 1.0, 0.12), (0.0, 0.3, 0.06, 0.7),
               (0.94, 0.3, 1.0, 0.7), (0.35, 0.0, 0.65, 0.03)],
}
CREASES = ("forehead", "crow", "under_eye", "nasolabial")
SIZE = 64          # working resolution: the embedded generator's, and enough for these means
# A hair pixel differs from the cheeks' skin colour by more than this (CIELAB distance); the
# sigmoid's width keeps the weights differentiable.
SKIN_DISTANCE = 12.0
# Band-pass for skin detail: luminance minus its Gaussian blur of this sigma (in SIZE pixels).
DETAIL_SIGMA = 1.6
# Whiteness of hair: L* - GREY_CHROMA * C*; grey and white hair are light and colourless.
GREY_CHROMA = 2.0


def region_mask(name: str, size: int = SIZE, device=None) -> torch.Tensor:
    """(size, size) float 0/1 mask of a named region."""
    m = torch.zeros(size, size, device=device)
    for x0, y0, x1, y1 in REGIONS[name]:
        m[round(y0 * size):round(y1 * size), round(x0 * size):round(x1 * size)] = 1
    return m


def to_lab(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) sRGB in [-1, 1] -> (N, 3, H, W) CIELAB (D65): L* 0..100, a*, b*."""
    c = ((images + 1) / 2).clamp(1e-6, 1)
    lin = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = torch.tensor([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                      [0.0193, 0.1192, 0.9505]], dtype=images.dtype, device=images.device)
    xyz = torch.einsum("ij,njhw->nihw", m, lin)
    white = torch.tensor([0.95047, 1.0, 1.08883], dtype=images.dtype, device=images.device)
    t = xyz / white[None, :, None, None]
    f = torch.where(t > 0.008856, t.clamp(min=1e-6) ** (1 / 3), 7.787 * t + 16 / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    if x.shape[-1] > size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = int(2 * np.ceil(3 * sigma) + 1)
    t = torch.arange(k, dtype=x.dtype, device=x.device) - k // 2
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    c = x.shape[1]
    x = F.pad(x, (k // 2,) * 4, mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def _mean(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted mean over the last two axes; w broadcasts against v."""
    w = w.expand_as(v)
    return (v * w).sum((-2, -1)) / w.sum((-2, -1)).clamp(min=1e-6)


def hair_weights(images: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """(N, size, size) weights of the hair region: the hair boxes, less pixels coloured like
    the face's own cheeks (a high forehead, a bald crown, skin at the temples)."""
    lab = to_lab(_resize(images, size))
    cheek = region_mask("cheek", size, images.device)
    skin = _mean(lab, cheek)                                      # (N, 3)
    dist = ((lab - skin[:, :, None, None]) ** 2).sum(1).add(1e-6).sqrt()
    return region_mask("hair", size, images.device) * torch.sigmoid((dist - SKIN_DISTANCE) / 3.0)


def measure(images: torch.Tensor, *, hair_from: torch.Tensor | None = None,
            size: int = SIZE) -> dict[str, torch.Tensor]:
    """Appearance measures of FFHQ-aligned crops (N, 3, H, W) in [-1, 1], each (N,):

    hair_lightness, hair_chroma (L*, C* of the hair), hair_grey (L* - 2 C*: up when hair
    greys or whitens), skin_detail (RMS band-pass L* where creases form), skin_colour_noise
    (the same for a*, b*: blotches, not creases), under_eye_shade and nasolabial_shade (cheek
    L* minus that region's: up when it darkens), lip_redness (lips' a* minus the cheeks'),
    skin_lightness, skin_a, skin_b (the cheeks' L*, a*, b*: a face-wide tone or colour shift
    is a cast, not age) and border_lightness (the crop's margins: background).

    hair_from: images whose hair weights are used (the face before an edit, so the edit cannot
    move its own region); default ``images``.
    """
    w_hair = hair_weights(images if hair_from is None else hair_from, size).detach()
    lab = to_lab(_resize(images, size))
    L, ab = lab[:, 0], lab[:, 1:]
    chroma = (ab ** 2).sum(1).add(1e-6).sqrt()
    dev = images.device
    creases = sum(region_mask(r, size, dev) for r in CREASES).clamp(max=1)
    detail = L[:, None] - _blur(L[:, None], DETAIL_SIGMA * size / SIZE)
    colour_detail = ab - _blur(ab, DETAIL_SIGMA * size / SIZE)
    cheek = region_mask("cheek", size, dev)
    skin_l = _mean(L, cheek)
    out = {"hair_lightness": _mean(L, w_hair + 1e-4), "hair_chroma": _mean(chroma, w_hair + 1e-4)}
    out["hair_grey"] = out["hair_lightness"] - GREY_CHROMA * out["hair_chroma"]
    out["skin_detail"] = _mean(detail[:, 0] ** 2, creases).add(1e-6).sqrt()
    out["skin_colour_noise"] = _mean((colour_detail ** 2).sum(1), creases).add(1e-6).sqrt()
    out["under_eye_shade"] = skin_l - _mean(L, region_mask("under_eye", size, dev))
    out["nasolabial_shade"] = skin_l - _mean(L, region_mask("nasolabial", size, dev))
    out["lip_redness"] = _mean(lab[:, 1], region_mask("lips", size, dev)) - _mean(lab[:, 1], cheek)
    out["skin_lightness"] = skin_l
    out["skin_a"] = _mean(lab[:, 1], cheek)
    out["skin_b"] = _mean(lab[:, 2], cheek)
    out["border_lightness"] = _mean(L, region_mask("border", size, dev))
    return out


def changes(before: torch.Tensor, after: torch.Tensor, size: int = SIZE) -> dict[str, np.ndarray]:
    """after - before of every :func:`measure`, per face, with the hair weights of ``before``."""
    with torch.no_grad():
        b = measure(before, hair_from=before, size=size)
        a = measure(after, hair_from=before, size=size)
    return {k: (a[k] - b[k]).double().cpu().numpy() for k in b}
