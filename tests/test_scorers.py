"""Scorers: network layouts, FFHQ-crop adapters, pose geometry, and real CelebA photos.

The attribute networks are research-only files read from ../shared by path (never copied)."""
from __future__ import annotations

import collections
import csv

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from realedit.errors import FormatError, UsageError, WeightsNotFound
from realedit.research import scorers as S
from realedit.research.attribute_nets import _same_pad

from datapaths import REPO as ROOT, SHARED  # noqa: E402  (honours REALEDIT_SHARED)
ATTR = SHARED / "models" / "attributes"
CELEBA = SHARED / "data" / "celeba"
needs_nets = pytest.mark.skipif(not (ATTR / "age_faceres.pt").is_file(),
                                reason=f"attribute networks not found in {ATTR}")
needs_celeba = pytest.mark.skipif(not (CELEBA / "identities.csv").is_file(),
                                  reason=f"CelebA sample not found in {CELEBA}")


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1


# ----------------------------------------------------------------------------- unit checks

def test_same_padding_matches_tensorflow():
    # TF SAME, 3x3 stride 2 on an even size: output (i, j) reads input rows/cols 2i..2i+2,
    # i.e. no padding on top/left. A delta at input (0, 0) reaches only output (0, 0) through
    # the kernel's top-left tap.
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 0, 0] = 1
    k = torch.arange(9.0).reshape(1, 1, 3, 3)
    y = F.conv2d(_same_pad(x, 2), k, stride=2)
    assert y.shape[-2:] == (4, 4)
    assert y[0, 0, 0, 0] == k[0, 0, 0, 0] and y.abs().sum() == k[0, 0, 0, 0]
    # odd size: symmetric, like padding=1
    x7 = torch.randn(1, 1, 7, 7)
    torch.testing.assert_close(F.conv2d(_same_pad(x7, 2), k, stride=2), F.conv2d(x7, k, stride=2, padding=1))
    torch.testing.assert_close(F.conv2d(_same_pad(x7, 1), k), F.conv2d(x7, k, padding=1))


def test_faceres_input_box_and_zero_outside():
    img = torch.ones(1, 3, 100, 100)                       # white in [-1, 1]
    box = np.array([[40.0, 40.0, 60.0, 60.0]])              # 20 px face -> 28 px square crop
    x = S.faceres_input(img, box, size=28)
    assert x.shape == (1, 3, 28, 28) and torch.allclose(x, torch.full_like(x, 255.0))
    # a box at the corner: the part outside the image is 0 (black), inside stays 255
    x2 = S.faceres_input(img, np.array([[0.0, 0.0, 20.0, 20.0]]), size=28)
    assert torch.allclose(x2[0, :, :3, :3], torch.zeros(3, 3, 3), atol=1e-4)
    assert torch.allclose(x2[0, :, -5:, -5:], torch.full((3, 5, 5), 255.0), atol=1e-3)
    np.testing.assert_allclose(S.square_box([[0, 0, 10, 20]], 1.0), [[-5, 0, 15, 20]])


def test_ffhq_to_celeba_puts_the_crop_where_the_geometry_says():
    crop = -torch.ones(1, 3, 64, 64)
    crop[..., 30:34, 30:34] = 1                             # marker at the crop centre
    out = S.ffhq_to_celeba(crop, size=256, padding="zeros")
    l, t, r, b = S.CELEBA_FRAME_IN_FFHQ
    ys, xs = torch.nonzero(out[0, 0] > 0.5, as_tuple=True)
    cx, cy = (xs.float().mean() + 0.5) / 256, (ys.float().mean() + 0.5) / 256
    assert abs(cx - (0.5 - l) / (r - l)) < 0.01 and abs(cy - (0.5 - t) / (b - t)) < 0.01


def test_pose_scorer_is_head_yaw_on_the_images_landmarks():
    """The "pose" scorer and the eval's pose judge are one measurement (degrees of head yaw):
    on an aligned crop and its mirror it reads what head_yaw reads, with opposite signs."""
    from PIL import Image

    from realedit.align import align_face, detect_faces
    from realedit.align.pose import head_yaw

    rgb = np.asarray(Image.open(ROOT / "demo" / "photos" / "astronaut.jpg").convert("RGB"))
    crop = align_face(rgb, detect_faces(rgb)[0], 256).image
    mirror = np.ascontiguousarray(crop[:, ::-1])
    x = torch.from_numpy(np.stack([crop, mirror])).permute(0, 3, 1, 2).float() / 127.5 - 1
    got = S.get_scorer("pose")(x)
    want = [head_yaw(detect_faces(c)[0].landmarks, (256, 256)) for c in (crop, mirror)]
    np.testing.assert_allclose(got, want, atol=0.5)
    assert abs(got[0]) > 1 and np.sign(got[0]) == -np.sign(got[1])


def test_callables_and_builtins():
    img = torch.zeros(2, 3, 8, 8)
    img[1] = 1
    assert np.allclose(S.get_scorer("brightness")(img), [0, 1])
    sc = S.get_scorer(lambda x: x[:, 0].mean((1, 2)))
    assert sc.name == "<lambda>" and np.allclose(sc(img), [0, 1])
    assert S.as_scorer(lambda x: x.sum((1, 2, 3)), "sum").name == "sum"
    with pytest.raises(UsageError):
        S.as_scorer(3)
    with pytest.raises(UsageError, match="scorer-dir"):
        S.get_scorer("smile")
    with pytest.raises(WeightsNotFound, match="known names"):
        S.get_scorer("/no/such/net.pth")


@needs_nets
def test_scorer_files_by_name_path_and_format(tmp_path, monkeypatch):
    monkeypatch.setenv(S.SCORER_DIR_ENV, str(ATTR))
    assert isinstance(S.get_scorer("male"), S.CelebAClassifierScorer)
    g = S.get_scorer("gender")
    assert isinstance(g, S.AgeGenderScorer) and g.output == "male" and g.name == "gender"
    a = S.get_scorer(str(ATTR / "age_faceres.pt"))
    assert a.output == "age" and a.name == "age"
    assert S.get_scorer(f"{ATTR / 'age_faceres.pt'}:male").output == "male"
    assert S.get_scorer(ATTR / "smile_clf_aug.pth").name == "smile"
    bad = tmp_path / "bad.pt"
    torch.save({"something": torch.zeros(3)}, bad)
    with pytest.raises(FormatError, match="not a known attribute network"):
        S.get_scorer(bad)


# ----------------------------------------------------------------------------- real photos

@pytest.fixture(scope="module")
def celeba_faces():
    if not (CELEBA / "identities.csv").is_file() or not (ATTR / "age_faceres.pt").is_file():
        pytest.skip("CelebA sample or attribute networks missing in ../shared")
    from PIL import Image

    from realedit.align import align_face, detect_faces

    by_id = collections.defaultdict(list)
    with open(CELEBA / "identities.csv") as f:
        for row in csv.DictReader(f):
            by_id[row["identity"]].append(row["file"])
    out = []  # (identity, native photo tensor, dlib box in pixel edges, 128 px FFHQ crop tensor)
    for ident in list(by_id)[:7]:                           # the first 7 include a male identity
        taken = 0
        for name in by_id[ident]:
            rgb = np.asarray(Image.open(CELEBA / "images" / name).convert("RGB"))
            faces = detect_faces(rgb)
            if not faces:
                continue
            crop = align_face(rgb, faces[0], 128).image
            out.append((ident, to_tensor(rgb), S.dlib_box_edges(faces[0].box), to_tensor(crop)))
            taken += 1
            if taken == 2:
                break
    return out


@pytest.mark.slow
def test_real_photos_male_and_age_are_sane(celeba_faces):
    male = S.CelebAClassifierScorer(ATTR / "male_clf_aug.pth", framing="celeba")
    net = S.AgeGenderScorer(ATTR / "age_faceres.pt", box="given")
    ids = [c[0] for c in celeba_faces]
    logits = np.array([male(c[1])[0] for c in celeba_faces])
    pred = [net.predict(c[1], boxes=c[2][None]) for c in celeba_faces]
    p_male = np.array([p["male"][0] for p in pred])
    ages = np.array([p["age"][0] for p in pred])
    # within an identity the male classifier agrees with itself
    agree = []
    for ident in set(ids):
        votes = logits[[i for i, x in enumerate(ids) if x == ident]] > 0
        agree.append(max(votes.mean(), 1 - votes.mean()))
    assert np.mean(agree) >= 0.9
    # both genders are present, and two independent networks agree on them
    assert (logits > 0).any() and (logits < 0).any()
    assert np.mean((logits > 0) == (p_male > 0.5)) >= 0.85
    # ages: adult-looking celebrities, a relative signal that is not constant
    assert np.all((ages > 12) & (ages < 70)) and 20 < ages.mean() < 45 and ages.std() > 1.5


@pytest.mark.slow
def test_ffhq_crop_adapters_agree_with_native_framing(celeba_faces):
    male_native = S.CelebAClassifierScorer(ATTR / "male_clf_aug.pth", framing="celeba")
    male_ffhq = S.CelebAClassifierScorer(ATTR / "male_clf_aug.pth")         # framing="ffhq"
    native = S.AgeGenderScorer(ATTR / "age_faceres.pt", box="given")
    from_crop = S.AgeGenderScorer(ATTR / "age_faceres.pt")                  # box="ffhq"
    ref = np.array([male_native(c[1])[0] for c in celeba_faces])
    crops = torch.cat([c[3] for c in celeba_faces])
    small = F.interpolate(crops, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    for batch in (crops, small):                      # 128 px crops and generator-sized 64 px ones
        got = male_ffhq(batch)
        assert np.corrcoef(ref, got)[0, 1] > 0.9
        assert np.mean((ref > 0) == (got > 0)) >= 0.85
    ref_age = np.array([native.predict(c[1], boxes=c[2][None])["age"][0] for c in celeba_faces])
    got_age = from_crop(crops)
    assert np.mean(np.abs(ref_age - got_age)) < 3.0
    assert np.corrcoef(ref_age, got_age)[0, 1] > 0.8


@pytest.mark.slow
def test_pose_scorer_on_small_crops_agrees_with_full_photos(celeba_faces):
    pose = S.PoseScorer()
    native = np.array([pose(c[1])[0] for c in celeba_faces])
    crops = torch.cat([c[3] for c in celeba_faces])
    small = F.interpolate(crops, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    yaw = pose(small)                                       # generator-sized: upsampled for dlib
    mirrored = pose(small.flip(-1))
    ok = np.isfinite(native) & np.isfinite(yaw) & np.isfinite(mirrored)
    assert ok.mean() >= 0.9
    assert np.ptp(native[ok]) > 10                          # the sample has turned heads
    assert np.corrcoef(native[ok], yaw[ok])[0, 1] > 0.8
    assert np.mean(np.abs(yaw[ok] + mirrored[ok])) < 4.0    # a mirror image turns the other way
    assert np.isnan(pose(torch.zeros(1, 3, 64, 64))[0])      # no face -> NaN, not an error


@needs_nets
def test_differentiable_scores_match_the_numpy_ones():
    """scores()/logits() are what predict()/__call__ give, and they carry gradients (direction
    learning back-propagates through them)."""
    x = (torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_()
    ag = S.AgeGenderScorer(ATTR / "age_faceres.pt")
    out = ag.scores(x)
    ref = ag.predict(x.detach())
    assert np.allclose(out["age"].detach().numpy(), ref["age"], atol=1e-4)
    assert np.allclose(out["male"].detach().numpy(), ref["male"], atol=1e-6)
    smile = S.CelebAClassifierScorer(ATTR / "smile_clf_aug.pth")
    logit = smile.logits(x)
    assert np.allclose(logit.detach().numpy(), smile(x.detach()), atol=1e-5)
    (out["age"].sum() + logit.sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
