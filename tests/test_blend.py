"""Paste-back: round trip accuracy, masks, colour correction, Poisson, several faces."""
from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from realedit.align import align_face, detect_faces
from realedit.blend import crop_mask, paste_back, paste_back_many, square_mask
from realedit.errors import UsageError
from realedit.io import read_image

from datapaths import SHARED  # noqa: E402  (honours REALEDIT_SHARED)
CELEBAHQ = SHARED / "data" / "celebahq"
CELEBA = SHARED / "data" / "celeba" / "images"
needs_shared = pytest.mark.skipif(not CELEBAHQ.is_dir(), reason=f"{SHARED} (test photos) is absent")


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    d = a.astype(np.float64)[where] - b.astype(np.float64)[where]
    return float(10 * np.log10(255.0 ** 2 / max(np.mean(d ** 2), 1e-12)))


@pytest.fixture(scope="module")
def hq():
    """A CelebA-HQ photo whose face fits in a 1024 crop (quad side <= 1024 px), aligned."""
    if not CELEBAHQ.is_dir():
        pytest.skip(f"{CELEBAHQ} is absent")
    img = np.asarray(Image.open(CELEBAHQ / "000014.jpg").convert("RGB"))
    face = detect_faces(img)[0]
    assert face.size <= 1024
    return img, align_face(img, face, 1024)


@pytest.fixture(scope="module")
def astro():
    skimage_data = pytest.importorskip("skimage.data")
    img = skimage_data.astronaut()
    return img, align_face(img, detect_faces(img)[0], 256)


@needs_shared
@pytest.mark.parametrize("mask", ["landmarks", "square"])
def test_round_trip_of_an_unchanged_1024_crop(hq, mask):
    img, aligned = hq
    out, alpha = paste_back(img, aligned, aligned.image, mask=mask, return_mask=True)
    inside = alpha > 0
    assert inside.mean() > 0.2  # the mask covers the face, not a sliver
    assert psnr(out, img, inside) >= 40.0
    assert np.array_equal(out[~inside], img[~inside])
    assert out is not img and not np.shares_memory(out, img)


@needs_shared
def test_pasted_pixels_are_not_shifted(hq):
    """Sub-pixel accuracy: the residual of the round trip is not explained by a shift."""
    img, aligned = hq
    out, alpha = paste_back(img, aligned, aligned.image, color=False, return_mask=True)
    core = alpha > 0.99
    ys, xs = np.nonzero(core)
    y0, y1, x0, x1 = ys.min() + 2, ys.max() - 2, xs.min() + 2, xs.max() - 2
    a = out[y0:y1, x0:x1].astype(float).mean(axis=2)
    b = img[y0:y1, x0:x1].astype(float).mean(axis=2)
    import cv2

    (dx, dy), _ = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32))
    assert abs(dx) < 0.1 and abs(dy) < 0.1


def test_landmark_mask_covers_face_and_forehead_not_background(astro):
    img, aligned = astro
    m = crop_mask(aligned, 256, "landmarks")
    assert m.shape == (256, 256) and m.dtype == np.float32
    lm = aligned.to_crop(aligned.face.landmarks)
    for x, y in lm[[8, 30, 36, 45, 48, 54]].round().astype(int):  # chin, nose, eyes, mouth
        assert m[y, x] > 0.99
    brow_y = lm[17:27, 1].mean()
    chin_y = lm[8, 1]
    forehead = int(brow_y - 0.3 * (chin_y - brow_y))
    assert m[forehead, int(lm[27, 0])] > 0.9
    # tapered to exactly 0 at the crop border: no hard edge where the crop ends
    for border in (m[0], m[-1], m[:, 0], m[:, -1]):
        assert border.max() == 0
    assert max(m[:4].max(), m[-4:].max(), m[:, :4].max(), m[:, -4:].max()) < 0.6
    assert m[10, 10] == 0 and m[10, 245] == 0  # corners are background
    sq = square_mask(256)
    assert sq[128, 128] == pytest.approx(1.0) and sq[0, 0] == 0 and (sq > 0).mean() > 0.7


def test_colour_correction_removes_a_global_tint_but_keeps_detail(astro):
    img, aligned = astro
    tinted = np.clip(aligned.image.astype(int) + [30, -15, -15], 0, 255).astype(np.uint8)
    raw, alpha = paste_back(img, aligned, tinted, color=False, return_mask=True)
    fixed = paste_back(img, aligned, tinted, color=True)
    core = alpha > 0.9
    shift_raw = np.abs(raw[core].mean(axis=0) - img[core].mean(axis=0)).max()
    shift_fixed = np.abs(fixed[core].mean(axis=0) - img[core].mean(axis=0)).max()
    assert shift_raw > 10 and shift_fixed < 2
    # a local edit (dark square on the cheek) survives the correction
    edited = aligned.image.copy()
    edited[150:170, 90:110] = 0
    out = paste_back(img, aligned, edited, color=True)
    centre = aligned.to_photo([[100, 160]])[0].round().astype(int)
    assert out[centre[1], centre[0]].max() < 60


def test_user_mask_limits_the_paste(astro):
    img, aligned = astro
    half = np.zeros((256, 256), bool)
    half[:, :128] = True  # left half of the crop only
    white = np.full((256, 256, 3), 255, np.uint8)
    out, alpha = paste_back(img, aligned, white, mask=half, color=False, return_mask=True)
    right = aligned.to_photo([[200, 128]])[0].round().astype(int)
    left = aligned.to_photo([[50, 128]])[0].round().astype(int)
    assert np.array_equal(out[right[1], right[0]], img[right[1], right[0]])
    assert (out[left[1], left[0]] == 255).all()
    assert np.array_equal(out[alpha == 0], img[alpha == 0])
    with pytest.raises(UsageError):
        paste_back(img, aligned, white, mask="ellipse")
    with pytest.raises(UsageError):
        paste_back(img, aligned, white, mask=np.zeros((4, 4, 4, 4)))


def test_poisson_blend_keeps_outside_identical_and_matches_boundary(astro):
    img, aligned = astro
    darker = (aligned.image.astype(np.float32) * 0.6).astype(np.uint8)
    plain, alpha = paste_back(img, aligned, darker, color=False, return_mask=True)
    pois = paste_back(img, aligned, darker, color=False, poisson=True)
    assert np.array_equal(pois[alpha == 0], img[alpha == 0])
    # gradient-domain blending pulls the darker face toward the surrounding brightness
    core = alpha > 0.9
    err_plain = np.abs(plain[core].astype(float) - img[core]).mean()
    err_pois = np.abs(pois[core].astype(float) - img[core]).mean()
    assert err_pois < 0.5 * err_plain


def test_crop_of_another_size_and_photo_objects(astro):
    img, aligned = astro
    big = np.asarray(Image.fromarray(aligned.image).resize((1024, 1024), Image.Resampling.LANCZOS))
    out, alpha = paste_back(img, aligned, big, return_mask=True)
    assert psnr(out, img, alpha > 0) > 33
    photo = read_image(img)
    res = paste_back(photo, aligned, aligned.image)
    assert type(res) is type(photo) and res.rgb.shape == img.shape and res.mode == photo.mode
    floats = aligned.image.astype(np.float32) / 255
    assert np.array_equal(paste_back(img, aligned, floats), paste_back(img, aligned, aligned.image))
    with pytest.raises(UsageError, match="aligned on"):
        paste_back(img[:100], aligned, aligned.image)
    with pytest.raises(UsageError, match="square"):
        paste_back(img, aligned, aligned.image[:100])


@needs_shared
def test_several_faces_into_one_photo():
    skimage_data = pytest.importorskip("skimage.data")
    canvas = np.asarray(Image.fromarray(skimage_data.coffee()).resize((900, 400))).copy()
    files = sorted(CELEBA.glob("*.jpg"))
    for k in range(3):
        canvas[60:278, 40 + k * 290:218 + k * 290] = np.asarray(Image.open(files[k]).convert("RGB"))
    faces = detect_faces(canvas)
    assert len(faces) == 3
    aligned = [align_face(canvas, f, 128) for f in faces]
    edits = [(a, 255 - a.image) for a in aligned]  # negative faces: impossible to miss
    out = paste_back_many(canvas, edits, color=False)
    union = np.zeros(canvas.shape[:2], bool)
    for a, crop in edits:
        _, alpha = paste_back(canvas, a, crop, color=False, return_mask=True)
        union |= alpha > 0
        nose = a.face.landmarks[30].round().astype(int)
        assert np.abs(out[nose[1], nose[0]].astype(int) - canvas[nose[1], nose[0]]).sum() > 100
    assert np.array_equal(out[~union], canvas[~union])
