"""Geometry-aware transfer (realedit.blend.flow) and the broken-face guard (realedit.blend.guard).

Synthetic generator images with a known motion check that the warp moves the photo's pixels
the right way and by the right amount, that no motion is the identity bit for bit, that the
field stays bounded, and that the paste touches only where the edit acts.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from realedit.align import align_face, detect_faces
from realedit.blend import flow
from realedit.blend.guard import broken_reason, check_generated, image_stats
from realedit.errors import EditError

R = 64  # generator resolution of the synthetic images


def texture(seed: int = 0, size: int = 3 * R) -> np.ndarray:
    """Smooth random texture (size, size) in [-0.8, 0.8]: something optical flow can lock on."""
    import cv2

    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 2.0)
    return (0.8 * t / np.abs(t).max()).astype(np.float32)


def gen_image(shift=(0, 0), seed: int = 0, region=None) -> torch.Tensor:
    """(3, R, R) 'generator output': a window of a larger texture, moved by ``shift`` (x, y)
    generator pixels (content moves right/down for positive shift). ``region`` (y0, y1, x0, x1)
    moves only that part, the rest stays."""
    t = texture(seed)
    still = t[R:2 * R, R:2 * R]
    dx, dy = shift
    moved = t[R - dy:2 * R - dy, R - dx:2 * R - dx]
    img = moved if region is None else still.copy()
    if region is not None:
        y0, y1, x0, x1 = region
        img[y0:y1, x0:x1] = moved[y0:y1, x0:x1]
    return torch.from_numpy(np.stack([img, 0.8 * img, -img]))


def blob_crop(size: int, centre) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    g = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * (size / 20) ** 2))
    return np.clip(np.rint(40 + 200 * g), 0, 255).astype(np.uint8)[:, :, None].repeat(3, 2)


def centroid(img: np.ndarray) -> np.ndarray:
    w = img[:, :, 0].astype(np.float64) - 40
    w[w < 20] = 0
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])


@pytest.fixture(scope="module")
def astro():
    skimage_data = pytest.importorskip("skimage.data")
    img = skimage_data.astronaut()
    return img, align_face(img, detect_faces(img)[0], 256)


# ----------------------------------------------------------------------------- the field

def test_known_shift_moves_the_photo_crop_the_same_way():
    before, after = gen_image(), gen_image(shift=(1, 0))  # content 1 generator px to the right
    field = flow.edit_field(before, after)
    n = field.size
    centre = field.flow[n // 4:3 * n // 4, n // 4:3 * n // 4]
    # backward flow: the edited image at x shows the original at x - 1 G px = x - n/R grid px
    assert np.median(centre[:, :, 0]) == pytest.approx(-n / R, abs=0.6)
    assert np.abs(np.median(centre[:, :, 1])) < 0.6
    assert field.act[n // 4:3 * n // 4, n // 4:3 * n // 4].min() > 0.99
    # a 512 px photo crop: its blob moves 512 / 64 = 8 px right, not down
    crop = blob_crop(512, (256, 256))
    moved = flow.apply_field(crop, field)
    d = centroid(moved) - centroid(crop)
    assert d[0] == pytest.approx(512 / R, abs=1.5) and abs(d[1]) < 1.0


def test_no_change_is_the_identity_bit_for_bit(astro):
    g = gen_image()
    field = flow.edit_field(g, g.clone())
    assert field.is_identity()
    assert not field.flow.any() and not field.delta.any()
    img, aligned = astro
    assert np.array_equal(flow.apply_field(aligned.image, field), aligned.image)
    out, alpha = flow.paste_field(img, aligned, field, return_mask=True)
    assert np.array_equal(out, img) and not alpha.any()


@pytest.mark.parametrize("shift", [(12, 0), (0, -20)])
def test_flow_stays_bounded_and_fold_free(shift):
    field = flow.edit_field(gen_image(seed=1), gen_image(shift=shift, seed=1))
    n = field.size
    mag = np.hypot(field.flow[:, :, 0], field.flow[:, :, 1])
    assert mag.max() <= flow.MAX_SHIFT * n + 1e-3
    grads = [np.abs(np.gradient(field.flow[:, :, k], axis=a)).max() for k in range(2) for a in range(2)]
    assert max(grads) <= flow.MAX_STRAIN + 1e-3


def test_unrelated_images_give_a_bounded_field():
    field = flow.edit_field(gen_image(seed=2), gen_image(seed=3))
    mag = np.hypot(field.flow[:, :, 0], field.flow[:, :, 1])
    assert np.isfinite(field.flow).all() and np.isfinite(field.delta).all()
    assert mag.max() <= flow.MAX_SHIFT * field.size + 1e-3


def test_regularised_flow_is_zero_where_nothing_is_confident():
    n = 128
    raw = np.random.default_rng(0).normal(0, 5, (n, n, 2)).astype(np.float32)
    conf = np.zeros((n, n), np.float32)
    assert not flow.regularise_flow(raw, conf, sigma=3, max_shift=8).any()
    conf[50:70, 50:70] = 1.0
    out = flow.regularise_flow(np.full((n, n, 2), 4.0, np.float32), conf, sigma=3, max_shift=8)
    assert out[60, 60] == pytest.approx(4.0, abs=0.2)  # follows the confident pixels
    assert not out[:10].any() and not out[:, -10:].any()  # never extrapolated far from them


def test_remainder_carries_a_colour_change_the_warp_cannot_explain():
    before = gen_image()
    after = before.clone()
    after[0] += 0.2  # redder everywhere: no motion
    field = flow.edit_field(before, after, cast_sigma=0, chroma_keep=1)  # tone change kept
    n = field.size
    assert np.abs(field.flow).max() < 0.5
    inner = field.delta[n // 4:3 * n // 4, n // 4:3 * n // 4]
    assert np.median(inner[:, :, 0]) == pytest.approx(0.2 * 127.5, abs=2.0)
    assert np.abs(np.median(inner[:, :, 2])) < 2.0


def test_a_tone_cast_over_the_face_is_dropped_and_a_local_change_kept():
    """By default the remainder loses its face-wide part (the darkening or reddening a weak
    generator drags along with smile or age) and keeps local changes (teeth, creases)."""
    before = gen_image()
    after = before.clone()
    after -= 0.15                      # the whole face darker by ~19 grey levels: a cast
    after[:, 40:46, 28:36] += 0.5      # plus a small bright patch (like teeth): the edit
    kept = flow.edit_field(before, after, cast_sigma=0, chroma_keep=1)
    default = flow.edit_field(before, after, chroma_keep=1)
    n = default.size
    s = n // R
    inner = (slice(n // 4, 3 * n // 4), slice(n // 4, n // 2))  # away from the patch
    assert np.median(kept.delta[inner]) == pytest.approx(-0.15 * 127.5, abs=2.5)
    assert abs(np.median(default.delta[inner])) < 2.0  # the cast is gone
    patch = default.delta[42 * s:44 * s, 30 * s:34 * s].mean()
    around = default.delta[30 * s:34 * s, 30 * s:34 * s].mean()
    assert patch - around > 0.3 * 0.5 * 127.5  # the local change survives, bright vs around
    assert default.delta.min() > kept.delta.min() - 1  # nothing darker than before appears


def test_local_hue_shifts_are_damped_and_luminance_kept():
    before = gen_image()
    tint = before.clone()
    tint[:, 40:46, 28:36] += torch.tensor([-0.2, 0.3, -0.2])[:, None, None]  # a green blotch
    n = flow.FLOW_SIZE
    s = n // R
    full = flow.edit_field(before, tint, chroma_keep=1).delta[42 * s:44 * s, 30 * s:34 * s].mean((0, 1))
    damp = flow.edit_field(before, tint).delta[42 * s:44 * s, 30 * s:34 * s].mean((0, 1))
    luma = np.array([0.299, 0.587, 0.114])
    assert float(full @ luma) == pytest.approx(float(damp @ luma), abs=0.5)  # brightness kept
    chroma = lambda d: d - d @ luma  # noqa: E731
    assert np.abs(chroma(full)).max() > 10  # the blotch is there without damping
    np.testing.assert_allclose(chroma(damp), flow.CHROMA_KEEP * chroma(full), atol=0.5)


def test_cast_removal_leaves_no_change_where_nothing_changed():
    rest = np.zeros((64, 64, 3), np.float32)
    rest[20:40, 20:40] = 10.0
    w = np.zeros((64, 64), np.float32)
    w[20:40, 20:40] = 1.0
    out = flow.remove_cast(rest, w, 4.0)
    assert not out[w == 0].any()  # no change leaks where the generator did not act
    assert np.abs(out[24:36, 24:36]).max() < 1.0  # a uniform shift inside is a cast


# ----------------------------------------------------------------------------- the paste

def test_paste_touches_only_where_the_edit_acts(astro):
    img, aligned = astro
    # only the lower-right quarter of the generated face moves
    before, after = gen_image(seed=4), gen_image(shift=(1, 1), seed=4, region=(40, 64, 40, 64))
    field = flow.edit_field(before, after)
    n = field.size
    assert field.act[: n // 4, : n // 4].max() == 0  # the still corner is outside the act mask
    out, alpha = flow.paste_field(img, aligned, field, return_mask=True)
    assert np.array_equal(out[alpha == 0], img[alpha == 0])
    changed = np.abs(out.astype(int) - img).max(axis=2) > 0
    assert changed.any()
    assert not (changed & (alpha == 0)).any()
    # the paste region is smaller than the whole-face mask that residual mode uses
    from realedit.blend import paste_delta
    _, face_alpha = paste_delta(img, aligned, np.ones((256, 256, 3), np.float32), return_mask=True)
    assert (alpha > 0).sum() < 0.6 * (face_alpha > 0).sum()


def test_paste_in_photo_space_matches_the_crop_warp(astro):
    """The photo-space paste and the crop-space warp are the same operation (up to resampling)."""
    from realedit.blend import paste_back

    img, aligned = astro
    field = flow.edit_field(gen_image(seed=5), gen_image(shift=(1, 0), seed=5))
    direct = flow.paste_field(img, aligned, field, mask="square")
    via_crop = paste_back(img, aligned, flow.apply_field(aligned.image, field), mask="square", color=False)
    where = np.abs(direct.astype(int) - img).max(axis=2) > 3
    assert where.sum() > 1000
    assert np.abs(direct.astype(int) - via_crop)[where].mean() < 6


# ----------------------------------------------------------------------------- broken faces

def test_broken_generated_faces_are_refused_and_normal_ones_pass():
    normal = gen_image()
    assert broken_reason(normal, normal) is None
    assert broken_reason(normal * 1.3, normal) is None   # a strong but sane edit
    blob = torch.zeros(3, R, R)
    blob[0], blob[1], blob[2] = 3.0, -6.0, -17.0          # what age=+1000 makes (means in [-1, 1] units)
    blob += torch.from_numpy(np.stack([texture(7)[:R, :R] * 10] * 3))
    assert "far outside" in broken_reason(blob, normal)
    nan = normal.clone()
    nan[0, 3, 3] = float("nan")
    assert "finite" in broken_reason(nan, normal)
    assert not image_stats(nan)["finite"]
    with pytest.raises(EditError, match=r"too large.*broken.*±"):
        check_generated(blob, normal, {"age": 1000.0})


def test_a_wide_generator_is_judged_against_its_own_output():
    wide = gen_image() * 5.0  # e.g. a random test model: already beyond |1.5| in places
    assert image_stats(wide)["far"] > 0.05
    assert broken_reason(wide * 1.05, wide) is None
    assert broken_reason(wide) is not None  # without the reference it would be refused


def test_remainder_is_dropped_where_the_face_edge_moves_and_kept_inside():
    n = 128
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    face = np.clip((40 - np.hypot(xx - 64, yy - 64)) / 4 + 1, 0, 1).astype(np.float32)  # disk r~40
    still, moving = np.zeros((n, n), np.float32), np.ones((n, n), np.float32)
    inset = 12.0
    w_still = flow.remainder_weight(face, still, inset)
    w_move = flow.remainder_weight(face, moving, inset)
    np.testing.assert_allclose(w_still, face ** flow.FACE_POWER, atol=1e-6)  # nothing moves
    assert w_move[64, 64] == pytest.approx(1.0, abs=1e-3)   # deep inside: kept
    assert w_move[64, 64 + 38] < 0.02                        # at the edge, moving: dropped
    assert w_still[64, 64 + 38] > 0.9                        # at the edge, still: kept
    assert not w_move[face == 0].any()


def test_paste_is_full_wherever_the_warp_moves():
    """A moved copy blended through a partial alpha shows twice (a second ear outline): where
    the flow moves pixels, the paste weight is full; where the edit does not act, it is 0."""
    n = 64
    flow_field = np.zeros((n, n, 2), np.float32)
    flow_field[20:44, 20:44, 0] = 3.0           # a patch that moves
    act = np.zeros((n, n), np.float32)
    act[10:54, 10:54] = 1.0
    field = flow.WarpField(flow_field, np.zeros((n, n, 3), np.float32), act)
    mask_alpha = np.full((n, n), 0.4, np.float32)  # the face mask's soft edge everywhere
    w = flow.paste_weight(mask_alpha, field)
    assert w[32, 32] == pytest.approx(1.0, abs=1e-3)   # moving: full
    assert w[12, 12] == pytest.approx(0.4, abs=1e-3)   # still: the mask's own alpha
    assert not w[act == 0].any()                         # outside the act mask: untouched
