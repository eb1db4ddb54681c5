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


LUMA = np.array([0.299, 0.587, 0.114])


def _delta_at(before, after, box, **kw):
    """(chroma, luminance) of the field's mean remainder inside ``box`` (G px: y0, y1, x0, x1)."""
    s = flow.FLOW_SIZE // R
    y0, y1, x0, x1 = box
    d = flow.edit_field(before, after, **kw).delta[y0 * s:y1 * s, x0 * s:x1 * s].mean((0, 1))
    return d - d @ LUMA, float(d @ LUMA)


def test_colour_noise_is_damped_more_than_a_colour_change_over_an_area():
    """The 64 px generator's colour noise (a blotch of a few of its pixels) loses most of its
    hue; a colour change over an area (lips that redden, hair that greys) keeps CHROMA_KEEP
    of it; luminance is kept in both."""
    before = gen_image()
    green = torch.tensor([-0.2, 0.3, -0.2])[:, None, None]
    blotch = before.clone()
    blotch[:, 40:43, 28:31] += green                    # 3 x 3 generator pixels
    area = before.clone()
    area[:, 24:44, 22:42] += torch.tensor([0.3, -0.1, -0.1])[:, None, None]  # 20 x 20, redder
    raw = dict(cast_sigma=0, chroma_keep=1, chroma_sigma=0)
    c_full, y_full = _delta_at(before, blotch, (41, 42, 29, 30), **raw)
    c_damp, y_damp = _delta_at(before, blotch, (41, 42, 29, 30), cast_sigma=0)
    assert np.abs(c_full).max() > 10                     # the blotch is there without damping
    assert y_damp == pytest.approx(y_full, abs=0.5)       # its brightness change is kept
    assert np.abs(c_damp).max() < 0.5 * flow.CHROMA_KEEP * np.abs(c_full).max()
    a_full, _ = _delta_at(before, area, (30, 36, 28, 34), **raw)
    a_damp, _ = _delta_at(before, area, (30, 36, 28, 34), cast_sigma=0)
    np.testing.assert_allclose(a_damp, flow.CHROMA_KEEP * a_full, atol=0.1 * np.abs(a_full).max())


def test_cast_removal_leaves_no_change_where_nothing_changed():
    rest = np.zeros((64, 64, 3), np.float32)
    rest[20:40, 20:40] = 10.0
    w = np.zeros((64, 64), np.float32)
    w[20:40, 20:40] = 1.0
    out = flow.remove_cast(rest, w, 4.0)
    assert not out[w == 0].any()  # no change leaks where the generator did not act
    assert np.abs(out[24:36, 24:36]).max() < 1.0  # a uniform shift inside is a cast


def _disk_face(n: int, radius: float) -> np.ndarray:
    """A paste-mask-like face weight on an n grid: a disk of ``radius`` px, feathered."""
    import cv2

    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    disk = (np.hypot(xx - n / 2, yy - n / 2) <= radius).astype(np.float32)
    return np.clip(cv2.GaussianBlur(disk, (0, 0), 0.02 * n), 0, 1).astype(np.float32)


def test_the_face_outline_keeps_at_most_half_its_tone_ring_and_the_mouth_its_change(monkeypatch):
    """The smile changes the tone of the hair and neck beside the face: a generator change in a
    band along the face's outline, which the remainder pasted as a ring along the jaw and the
    hairline (000096). The band keeps at most TONE_KEEP of it (none at 0), while a local change
    inside the face (the mouth's teeth) still reaches the photo in full."""
    n = flow.FLOW_SIZE
    s = n // R
    face = _disk_face(n, 0.35 * n)                      # the mask's edge ~90 px from the centre
    before = gen_image()
    yy, xx = np.mgrid[0:R, 0:R].astype(np.float32)
    r = np.hypot(xx - R / 2 + 0.5, yy - R / 2 + 0.5)
    band = torch.from_numpy(((r >= 0.29 * R) & (r <= 0.40 * R)).astype(np.float32))
    after = before - 0.2 * band                         # the outline band darker by ~25 levels
    after[:, 36:42, 28:36] += 0.5                       # and a bright mouth patch (teeth)
    crop = np.full((n, n, 3), 128, np.uint8)
    gy, gx = np.mgrid[0:n, 0:n].astype(np.float32)
    rg = np.hypot(gx - n / 2 + 0.5, gy - n / 2 + 0.5)
    outline = (rg >= 0.27 * n) & (rg <= 0.36 * n)       # the mask's full-weight rim and fade
    mouth = (slice(36 * s + 2, 42 * s - 2), slice(28 * s + 2, 36 * s - 2))

    def change():
        field = flow.edit_field(before, after, face=face)
        return (flow.apply_field(crop, field).astype(np.float32) - 128.0) @ LUMA

    y = change()
    monkeypatch.setattr(flow, "TONE_INSET", 0.0)        # the old rule: the ring in full
    y_old = change()
    assert y_old[outline].mean() < -4.0
    assert abs(y[outline].mean()) <= 0.6 * abs(y_old[outline].mean())
    assert y[mouth].mean() > 0.3 * 0.5 * 127.5          # the mouth's change still lands...
    assert y[mouth].mean() == pytest.approx(y_old[mouth].mean(), rel=0.05)  # ...in full
    monkeypatch.setattr(flow, "TONE_INSET", 0.05)
    monkeypatch.setattr(flow, "TONE_KEEP", 0.0)         # none kept: no ring at all
    assert np.abs(change()[outline]).mean() < 1.5


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


# ----------------------------------------------------------------------------- landmarks

@pytest.fixture(scope="module")
def astro_grid(astro):
    """The astronaut's aligned crop on the flow grid and its 68 landmarks there."""
    import cv2

    _, aligned = astro
    n = flow.FLOW_SIZE
    crop = cv2.resize(aligned.image, (n, n), interpolation=cv2.INTER_AREA)
    lm = (aligned.to_crop(aligned.face.landmarks) + 0.5) * (n / aligned.size) - 0.5
    return crop, lm


def test_tps_reproduces_an_affine_field_and_follows_points():
    from realedit.blend.landmarks import tps_field

    rng = np.random.default_rng(0)
    pts = rng.uniform(60, 200, (30, 2))
    n = 256
    affine = lambda p: np.stack([0.02 * p[:, 0] - 0.01 * p[:, 1] + 3, 0.03 * p[:, 1] - 1], 1)  # noqa: E731
    f = tps_field(pts, affine(pts), n)
    yy, xx = np.mgrid[0:n, 0:n]
    grid = np.stack([xx.ravel(), yy.ravel()], 1).astype(float)
    inner = ((grid >= 2) & (grid <= n - 3)).all(axis=1)  # the upsampling replicates the border
    np.testing.assert_allclose(f.reshape(-1, 2)[inner], affine(grid)[inner], atol=0.02)
    bump = np.zeros((30, 2))
    bump[7] = (6.0, -4.0)                      # one point moves, the others stay
    g = tps_field(pts, bump, n)
    at = flow.sample(g, pts)
    assert at[7] == pytest.approx([6.0, -4.0], abs=1.5)
    assert np.abs(np.delete(at, 7, axis=0)).max() < 2.0


def test_hull_weight_is_one_on_the_face_and_zero_far_away(astro_grid):
    from realedit.blend.landmarks import hull_weight

    _, lm = astro_grid
    w = hull_weight(lm, 256, grow=8, feather=8)
    inside = np.round(lm[30]).astype(int)     # the nose tip
    assert w[inside[1], inside[0]] == pytest.approx(1.0)
    assert w[0, 0] == 0 and w[-1, -1] == 0 and w.max() <= 1


def test_landmark_prediction_is_deterministic_and_finds_the_photo_face(astro_grid):
    from realedit.align.ffhq import FACE_BOX_IN_FFHQ
    from realedit.blend.landmarks import predict_landmarks

    crop, lm = astro_grid
    box = np.asarray(FACE_BOX_IN_FFHQ) * crop.shape[0]
    a, b = predict_landmarks(crop, box), predict_landmarks(crop.copy(), box)
    assert np.array_equal(a, b)               # the same face reads the same: no motion invented
    assert np.median(np.linalg.norm(a - lm, axis=1)) < 3.0  # px of a 256 crop


def test_flow_follows_the_landmarks_where_they_moved(astro_grid):
    _, lm = astro_grid
    n = flow.FLOW_SIZE
    la = lm.copy()
    lb = lm.copy()
    lb[48] += (5.0, 3.0)     # backward: the left mouth corner came from 5 px right, 3 px below
    lb[54] += (-5.0, 3.0)    # the right one from 5 px left: the mouth widened and lifted
    zero = np.zeros((n, n, 2), np.float32)
    kw = dict(max_shift=flow.MAX_SHIFT * n, max_strain=flow.FOLLOW_MAX_STRAIN, sigma=flow.SMOOTH * n)
    out = flow.follow_landmarks(zero, lb, la, np.ones((n, n), np.float32), **kw)
    at = flow.sample(out, la[[48, 54]])
    np.testing.assert_allclose(at, (lb - la)[[48, 54]], atol=1.5)
    assert np.abs(flow.sample(out, la[[30, 39, 42]])).max() < 1.0   # nose, eyes stay
    assert not out[:10].any() and not out[:, :10].any()             # beyond the face: nothing
    assert flow.strain(out) <= flow.FOLLOW_MAX_STRAIN + 1e-3
    # where the generator did not change, landmark jitter moves nothing
    still = flow.follow_landmarks(zero, lb, la, np.zeros((n, n), np.float32), **kw)
    assert np.abs(still).max() < 1e-4


def test_registration_moves_the_field_onto_the_photo_face(astro_grid):
    _, lm = astro_grid
    n = flow.FLOW_SIZE
    rng = np.random.default_rng(1)
    field = flow.WarpField(rng.normal(0, 1, (n, n, 2)).astype(np.float32),
                           rng.normal(0, 1, (n, n, 3)).astype(np.float32),
                           rng.uniform(0, 1, (n, n)).astype(np.float32))
    assert flow.register_field(field, np.zeros((n, n, 2), np.float32)) is field
    off = np.zeros((n, n, 2), np.float32)
    off[:, :, 0] = 3.0                                   # the generator's face sits 3 px right
    moved = flow.register_field(field, off)
    np.testing.assert_allclose(moved.delta[:, 20:200], field.delta[:, 23:203], atol=1e-5)
    # from landmarks: the same face gives no offset, a shifted one that shift inside the face
    assert not np.any(flow.alignment_offset(lm, lm, n))
    o = flow.alignment_offset(lm, lm + (2.0, -1.0), n)
    nose = np.round(lm[30]).astype(int)
    assert o[nose[1], nose[0]] == pytest.approx([2.0, -1.0], abs=0.1)
    assert not o[:5].any()                               # beyond the face: 0
    assert flow.alignment_offset(lm, lm + 30.0, n) is None  # not this face: no registration


def test_landmark_motion_is_followed_only_where_the_images_show_it(astro_grid):
    """dlib can read motion into a blurred generator face that did not move: the correction is
    kept where warping the before image by it reproduces the after image better than the flow
    alone, and dropped where it does not."""
    _, lm = astro_grid
    n = flow.FLOW_SIZE
    base = flow.generated_to_grid(gen_image(seed=6), n)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    la = lm.copy()
    lb = lm.copy()
    lb[48] += (5.0, 0.0)                        # the left mouth corner came from 5 px right

    def blob(c):
        return 120.0 * np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * 3.0 ** 2))[:, :, None]
    before = base - blob(lb[48])
    moved = base - blob(la[48])                  # the dark corner really moved there
    zero = np.zeros((n, n, 2), np.float32)
    ones = np.ones((n, n), np.float32)
    kw = dict(max_shift=flow.MAX_SHIFT * n, max_strain=flow.FOLLOW_MAX_STRAIN, sigma=flow.SMOOTH * n)
    seen = flow.follow_landmarks(zero, lb, la, ones, images=(before, moved), **kw)
    assert flow.sample(seen, la[[48]])[0] == pytest.approx([5.0, 0.0], abs=1.5)
    unseen = flow.follow_landmarks(zero, lb, la, ones, images=(before, before.copy()), **kw)
    assert np.abs(flow.sample(unseen, la[[48]])).max() < 1.0


def test_a_turn_is_followed_even_where_the_support_check_sees_no_change(astro_grid):
    """A head turn (the nose and eyes all moving one way) is followed by a stiff spline before
    the support check, in proportion to ``turn``; a still face (turn=0) keeps the check's
    verdict, and a stiff spline cannot make one mouth corner move on its own."""
    _, lm = astro_grid
    n = flow.FLOW_SIZE
    img = flow.generated_to_grid(gen_image(seed=6), n)
    la = lm.copy()
    lb = lm + (4.0, 0.0)                          # the whole face came from 4 px to the right
    zero = np.zeros((n, n, 2), np.float32)
    ones = np.ones((n, n), np.float32)
    kw = dict(max_shift=flow.MAX_SHIFT * n, max_strain=flow.FOLLOW_MAX_STRAIN, sigma=flow.SMOOTH * n,
              images=(img, img.copy()))           # the images show no motion: the check says no
    checked = flow.follow_landmarks(zero, lb, la, ones, turn=0.0, **kw)
    assert np.abs(flow.sample(checked, la[[30, 39, 42]])).max() < 1.0
    turned = flow.follow_landmarks(zero, lb, la, ones, turn=1.0, **kw)
    np.testing.assert_allclose(flow.sample(turned, la[[30, 33, 39, 42]])[:, 0], 4.0, atol=0.8)
    half = flow.follow_landmarks(zero, lb, la, ones, turn=0.5, **kw)
    assert flow.sample(half, la[[30]])[0, 0] == pytest.approx(2.0, abs=0.6)
    assert flow.strain(turned) <= flow.TURN_MAX_STRAIN + 1e-3
    assert np.abs(turned[:10]).max() < 0.5        # far beyond the face: little
    edge = np.concatenate([turned[0], turned[-1], turned[:, 0], turned[:, -1]])
    assert not edge.any()                         # the crop's border: nothing
    # one mouth corner "moving" alone (dlib's jitter on a blurred mouth) is not a turn
    lc = lm.copy()
    lc[48] += (6.0, 0.0)
    corner = flow.follow_landmarks(zero, lc, la, ones, turn=1.0, **kw)
    assert np.abs(flow.sample(corner, la[[48]])).max() < 1.0


def test_a_large_turn_is_not_scaled_down_by_its_fade(astro_grid, monkeypatch):
    """The turn spline fades over TURN_FEATHER and may stretch up to TURN_MAX_STRAIN: a face
    whose landmarks all moved 12 px keeps (nearly) all of it at the nose and eyes. With the
    jaw's narrow fade and the smile's strain bound, that fade's steep edge scaled the whole
    turn down."""
    _, lm = astro_grid
    n = flow.FLOW_SIZE
    img = flow.generated_to_grid(gen_image(seed=6), n)
    zero = np.zeros((n, n, 2), np.float32)
    ones = np.ones((n, n), np.float32)
    kw = dict(max_shift=flow.MAX_SHIFT * n, max_strain=flow.FOLLOW_MAX_STRAIN, sigma=flow.SMOOTH * n,
              images=(img, img.copy()), turn=1.0)

    def nose_eyes(lb):
        return flow.sample(flow.follow_landmarks(zero, lb, lm, ones, **kw), lm[[30, 39, 42]])[:, 0]

    big = lm + (12.0, 0.0)
    got = nose_eyes(big)
    np.testing.assert_allclose(got, 12.0, atol=1.5)
    monkeypatch.setattr(flow, "TURN_FEATHER", flow.LM_FEATHER)       # the feature off
    monkeypatch.setattr(flow, "TURN_MAX_STRAIN", flow.FOLLOW_MAX_STRAIN)
    assert nose_eyes(big).max() < 0.85 * got.min()


def test_edit_field_reads_a_turn_from_the_whole_face_moving():
    """edit_field passes follow_landmarks a turn share from how much the whole face moves:
    a still face gives 0 (no unchecked spline), a shifted face 1."""
    n = flow.FLOW_SIZE
    b = gen_image(seed=3)
    seen = {}
    real = flow.follow_landmarks

    def spy(*a, turn=0.0, **k):
        seen["turn"] = turn
        return real(*a, turn=turn, **k)

    face = _disc_face(n, 0.3)
    lm = np.stack([np.linspace(90, 160, 68), np.linspace(90, 180, 68)], 1)
    import realedit.blend.flow as mod
    mod.follow_landmarks = spy
    try:
        bright = b.clone()
        bright[:, 28:36, 28:36] += 0.3             # a local change, the face stays put
        flow.edit_field(b, bright, face=face, landmarks=(lm, lm))
        assert seen["turn"] == 0.0
        shifted = torch.roll(b, shifts=2, dims=2)  # the whole image 2 generator px to the right
        flow.edit_field(b, shifted, face=face, landmarks=(lm, lm))
        assert seen["turn"] == 1.0
    finally:
        mod.follow_landmarks = real


# ----------------------------------------------------------------------------- the hair

def _disc_face(n: int, radius: float = 0.25) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    d = np.hypot(xx - n / 2, yy - 0.55 * n) / n
    return np.clip((radius + 0.02 - d) / 0.04, 0.0, 1.0).astype(np.float32)


def test_hair_colour_change_reaches_the_head_less_the_image_wide_cast():
    """Above the face (outside its mask, within the head) the generator's hair colour change
    is kept, chroma included and low-passed, less the cast it also put on the background; the
    paste reaches there; far from the face nothing is pasted. Without the head weights the
    hair keeps its colour, as before."""
    n = flow.FLOW_SIZE
    s = n // R
    face = _disc_face(n)
    before = gen_image()
    after = before - 0.08                                        # the whole image darker: a cast
    ash = torch.tensor([0.05, 0.12, 0.2])[:, None, None]         # hair above the face: less red
    after[:, 4:18, 16:48] += ash
    hair = flow.hair_weight(face, flow.generated_to_grid(before), None, n)
    field = flow.edit_field(before, after, face=face, hair=hair)
    band = (slice(13 * s, 16 * s), slice(26 * s, 38 * s))   # just above the face
    got = field.delta[band].mean((0, 1))
    want = ash.numpy().ravel() * 127.5
    np.testing.assert_allclose(got, want, atol=0.35 * np.abs(want).max())
    chroma = got - got @ LUMA
    assert np.abs(chroma).max() > 0.6 * np.abs(want - want @ LUMA).max()   # not the face's 30 %
    w = flow.paste_weight(np.zeros((n, n), np.float32), field)
    assert w[band].min() > 0.9                                    # the paste reaches the hair
    assert not w[-8:].any() and not w[:12, :12].any() and not w[:12, -12:].any()  # far: nothing
    inner = (slice(int(0.5 * n), int(0.6 * n)), slice(int(0.45 * n), int(0.55 * n)))
    assert np.abs(np.median(field.delta[inner], axis=(0, 1))).max() < 3   # the face: no cast
    plain = flow.edit_field(before, after, face=face)
    assert plain.reach is None and np.abs(plain.delta[band]).max() < 1e-3


def test_hair_colour_is_pasted_only_where_the_photo_looks_like_the_generators_face():
    """An inversion that drew hair where the photo has background must not recolour it."""
    n = flow.FLOW_SIZE
    face = _disc_face(n)
    before = flow.generated_to_grid(gen_image())
    head = flow.hair_weight(face, before, None, n)
    same = flow.hair_weight(face, before, before + 5.0, n)
    other = before.copy()
    other[:72] = 255.0                                            # white wall where G drew hair
    differs = flow.hair_weight(face, before, other, n)
    top = (slice(52, 66), slice(n // 3 + 8, 2 * n // 3 - 8))              # just above the face
    assert head[top].min() > 0.9 and same[top].min() > 0.9
    assert differs[top].max() < 0.05
    assert (head <= 1).all() and not head[-n // 8:].any()         # not below the face


def test_only_edits_that_recolour_hair_carry_it():
    assert flow.recolours_hair({"age": 3.0}) and flow.recolours_hair({"smile": 1.0, "age": -2})
    assert not flow.recolours_hair({"smile": 3.0}) and not flow.recolours_hair({"age": 0.0})


def _ring68(n: int) -> np.ndarray:
    """68 points on a ring round the grid's centre; 48-67 (the lips) a small ring below it."""
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    pts = np.stack([n / 2 + 0.3 * n * np.cos(t), n / 2 + 0.3 * n * np.sin(t)], 1)
    pts[48:68] = np.stack([n / 2 + 0.1 * n * np.cos(t[:20] * 3.4), 0.68 * n + 0.04 * n * np.sin(t[:20] * 3.4)], 1)
    return pts


def test_the_mouth_remainder_is_sharp_under_a_smile_and_not_under_a_turn(monkeypatch):
    """In the mouth the remainder keeps its detail (teeth) when only the mouth moves; when the
    whole face moves (a turn), it is low-passed there as elsewhere (a sharp one pasted a
    second mouth corner)."""
    n = flow.FLOW_SIZE
    lm = _ring68(n)
    face = np.zeros((n, n), np.float32)
    face[n // 8:7 * n // 8, n // 8:7 * n // 8] = 1.0
    before = gen_image()

    def detail(after, sharp):
        monkeypatch.setattr(flow, "MOUTH_SHARP", sharp)
        d = flow.edit_field(before, after, face=face, landmarks=(lm, lm), cast_sigma=0, chroma_keep=1).delta
        mouth = d[int(0.62 * n):int(0.74 * n), int(0.4 * n):int(0.6 * n)]
        return float(np.abs(mouth - flow._gauss(mouth, 3.0)).mean())   # fine detail there

    smile = gen_image(shift=(2, 1), region=(38, 50, 24, 40))   # only the mouth's part moves
    turn = gen_image(shift=(2, 0))                             # everything moves
    assert detail(smile, True) > 1.5 * detail(smile, False)
    assert detail(turn, True) == pytest.approx(detail(turn, False), rel=1e-6)


def test_a_turn_pastes_no_remainder(monkeypatch):
    """Under a head turn the remainder (what the warp leaves) is the generator's mis-registered
    hair and shading: pasted, it was a brown smear over 000004's eye (dlib lost the face) and
    a darker, "tanned" face. It is dropped in proportion to the turn; a still face (a smile,
    an age edit) keeps it."""
    n = flow.FLOW_SIZE
    lm = _ring68(n)
    face = np.zeros((n, n), np.float32)
    face[n // 8:7 * n // 8, n // 8:7 * n // 8] = 1.0
    before = gen_image(seed=3)

    def blotch(img):
        out = img.clone()
        out[:, 26:38, 26:38] -= 0.4                # a dark patch over the middle of the face
        return out

    def rest(after):
        d = flow.edit_field(before, after, face=face, landmarks=(lm, lm)).delta
        return float(np.abs(d[int(0.4 * n):int(0.6 * n), int(0.4 * n):int(0.6 * n)]).mean())

    turned = blotch(gen_image(seed=3, shift=(2, 0)))         # the whole face moves, and darkens
    still = blotch(before)
    monkeypatch.setattr(flow, "TURN_REST", 1.0)              # the feature off: the smear comes
    assert rest(turned) > 5.0
    monkeypatch.setattr(flow, "TURN_REST", 0.0)
    assert rest(turned) < 0.05
    assert rest(still) > 5.0                                 # no turn: the remainder stays


def test_motion_fades_out_at_the_photos_own_border():
    """A pixel moved at the photo's edge would be read from beyond it (mirrored streaks): the
    displacement is 0 on the border, full from 3x its length inside, and never folds."""
    h, w = 60, 80
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    disp = np.zeros((h, w, 2), np.float32)
    disp[..., 0] = 4.0
    out = flow.fade_at_border(disp, gx, gy, (h, w))
    assert not out[0].any() and not out[-1].any() and not out[:, 0].any() and not out[:, -1].any()
    np.testing.assert_allclose(out[30, 40], [4.0, 0.0])          # 12+ px in: untouched
    assert np.abs(np.diff(out[..., 0], axis=1)).max() <= 1 / 3 + 1e-6
    # a box inside a larger photo: its edges are not the photo's, nothing fades
    inner = flow.fade_at_border(disp, gx + 100, gy + 100, (400, 400))
    np.testing.assert_array_equal(inner, disp)
    # only where the motion reaches: a still border band stays as it is, the rest moves fully
    small = disp.copy()
    small[:, :20] = 0.0
    out = flow.fade_at_border(small, gx, gy, (h, w))
    np.testing.assert_allclose(out[30, 20:60], small[30, 20:60])
