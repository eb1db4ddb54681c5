"""Detection, landmark quality, FFHQ alignment and face selection on real photos."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realedit.align import (
    AlignedFace, Detector, Face, align_face, detect_faces, ffhq_quad, pick_faces, select_faces,
)
from realedit.errors import ImageError, NoFaceError, UsageError

from datapaths import SHARED  # noqa: E402  (honours REALEDIT_SHARED)
CELEBAHQ = SHARED / "data" / "celebahq"
CELEBA = SHARED / "data" / "celeba" / "images"
needs_shared = pytest.mark.skipif(not CELEBAHQ.is_dir(), reason=f"{SHARED} (test photos) is absent")


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


def compose_five(seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Five CelebA photos (scaled 1.0-1.4x) on scikit-image's coffee photo, 1280x560."""
    skimage_data = pytest.importorskip("skimage.data")
    files = sorted(CELEBA.glob("*.jpg"))[:6]
    rng = np.random.default_rng(seed)
    canvas = np.asarray(Image.fromarray(skimage_data.coffee()).resize((1280, 560))).copy()
    boxes = []
    for k, f in enumerate(files[:4] + files[5:6]):
        img = Image.open(f).convert("RGB")
        s = rng.uniform(1.0, 1.4)
        img = img.resize((int(178 * s), int(218 * s)))
        x, y = 20 + k * 250, int(rng.integers(20, 560 - img.size[1] - 10))
        canvas[y:y + img.size[1], x:x + img.size[0]] = np.asarray(img)
        boxes.append((x, y, x + img.size[0], y + img.size[1]))
    return canvas, boxes


@pytest.fixture(scope="module")
def hq_faces():
    """A few CelebA-HQ photos with their detected face."""
    if not CELEBAHQ.is_dir():
        pytest.skip(f"{CELEBAHQ} is absent")
    out = []
    for f in sorted(CELEBAHQ.glob("*.jpg"))[1:6]:
        img = load(f)
        faces = detect_faces(img)
        assert len(faces) == 1, f.name
        out.append((f.name, img, faces[0]))
    return out


# ------------------------------------------------------------------------------- detection

def test_astronaut_keeps_one_face_and_rejects_the_mission_patch():
    img = astronaut()
    faces = detect_faces(img)
    assert len(faces) == 1
    face = faces[0]
    assert face.accepted and face.quality > 0.9
    # her face is in the upper middle of the photo; the patch is at ~(170, 380)
    cx, cy = face.landmarks[30]  # nose tip
    assert 190 < cx < 250 and 100 < cy < 150
    everything = detect_faces(img, keep_rejected=True)
    rejected = [f for f in everything if not f.accepted]
    assert len(rejected) == 1
    bx = (rejected[0].box[0] + rejected[0].box[2]) / 2, (rejected[0].box[1] + rejected[0].box[3]) / 2
    assert 120 < bx[0] < 220 and 330 < bx[1] < 430, "the rejected detection is the mission patch"
    assert rejected[0].quality < 0.2


@needs_shared
def test_five_composed_faces_found_and_aligned():
    img, boxes = compose_five()
    faces = detect_faces(img)
    assert len(faces) == 5
    # every pasted photo holds exactly one detected face (by nose tip)
    hits = sorted(i for f in faces for i, b in enumerate(boxes)
                  if b[0] <= f.landmarks[30][0] <= b[2] and b[1] <= f.landmarks[30][1] <= b[3])
    assert hits == [0, 1, 2, 3, 4]
    kept, skipped = select_faces(faces, "all")
    assert len(kept) == 5 and skipped == []
    for face in kept:
        a = align_face(img, face, 128)
        assert a.image.shape == (128, 128, 3)
        # the crop shows a face again, centred where the recipe puts it
        again = detect_faces(a.image, detector=Detector(upsample=1))
        assert len(again) == 1
        assert np.abs((again[0].landmarks[30] + 0.5) / 128 - [0.5, 0.6]).max() < 0.08


def test_landmarks_map_back_from_the_downscaled_working_copy():
    img = astronaut()
    full = detect_faces(img)[0]
    # same photo enlarged 3x (1536 px), detected on a working copy of at most 768 px
    big = np.asarray(Image.fromarray(img).resize((1536, 1536), Image.Resampling.BICUBIC))
    small_work = detect_faces(big, detector=Detector(max_side=768))
    assert len(small_work) == 1
    lm = small_work[0].landmarks
    # enlarged coordinates: (p + 0.5) * 3 - 0.5; allow 1.5 original pixels of predictor noise
    expected = (full.landmarks + 0.5) * 3 - 0.5
    err = np.linalg.norm(lm - expected, axis=1)
    assert np.median(err) < 1.5 * 3
    interocular = np.linalg.norm(full.eye_right - full.eye_left) * 3
    assert np.linalg.norm(small_work[0].eye_left - (full.eye_left + 0.5) * 3 + 0.5) < 0.05 * interocular


@pytest.mark.parametrize("shape", [(1, 1, 3), (8, 8, 3), (300, 400, 3)])
def test_no_face_images_give_an_empty_list(shape):
    assert detect_faces(np.full(shape, 127, np.uint8)) == []


def test_pick_faces_explains_why_nothing_is_left():
    with pytest.raises(NoFaceError, match=r"^no face found in blank.png \(faces down to about "
                                          r"40 px across are found in a 200x200 photo\); try "
                                          r"--detector cnn .*HOG detector misses$"):
        pick_faces(np.zeros((200, 200, 3), np.uint8), where="blank.png")
    img = astronaut()
    with pytest.raises(NoFaceError) as err:
        pick_faces(img, "all", min_size=400)
    msg = str(err.value)
    assert "\n" not in msg
    assert "face 0 is too small" in msg and "< 400 px minimum" in msg
    assert "rejected as a non-face" in msg


@needs_shared
def test_tiny_face_is_not_detected_or_skipped_with_a_reason():
    face = Image.open(sorted(CELEBA.glob("*.jpg"))[0]).convert("RGB").resize((22, 27))
    canvas = np.full((300, 300, 3), 90, np.uint8)
    canvas[100:127, 100:122] = np.asarray(face)
    with pytest.raises(NoFaceError, match="no (usable )?face"):
        pick_faces(canvas)


def test_selection_policy():
    def fake(size: float, accepted=True, score=1.0) -> Face:
        # a frontal face whose FFHQ quad side is `size`: quad side = 4 x eye distance
        lm = np.zeros((68, 2))
        d = size / 4
        lm[36:42] = [-d / 2, 0]
        lm[42:48] = [d / 2, 0]
        lm[48], lm[54] = [-d / 3, d], [d / 3, d]
        return Face(box=(0, 0, size, size), landmarks=lm + 500, score=score, quality=0.9,
                    accepted=accepted)

    faces = [fake(300), fake(200), fake(40), fake(250, accepted=False)]
    assert faces[0].size == pytest.approx(300)
    kept, skipped = select_faces(faces, "largest")
    assert kept == [faces[0]]
    reasons = {s.index: s.reason for s in skipped}
    assert "too small" in reasons[2] and "rejected" in reasons[3] and "not the largest" in reasons[1]
    kept, _ = select_faces(faces, "all")
    assert kept == faces[:2]
    kept, _ = select_faces(faces, 1)
    assert kept == [faces[1]]
    kept, _ = select_faces(faces, "1")
    assert kept == [faces[1]]
    with pytest.raises(NoFaceError, match="only 2 usable"):
        select_faces(faces, 2)
    for bad in ("biggest", -1, "1.5"):
        with pytest.raises(UsageError):
            select_faces(faces, bad)
    kept, skipped = select_faces(faces, "all", min_size=10)
    assert len(kept) == 3


def test_bad_image_arrays_are_refused_clearly():
    with pytest.raises(ImageError, match="shape"):
        detect_faces(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ImageError, match="uint8"):
        detect_faces(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(UsageError):
        detect_faces("not an image")
    with pytest.raises(UsageError):
        Detector(kind="yolo")


# ------------------------------------------------------------------------------- alignment

def test_quad_follows_the_recipe_on_a_symmetric_face():
    lm = np.zeros((68, 2))
    lm[36:42] = [100.0, 100.0]
    lm[42:48] = [140.0, 100.0]
    lm[48], lm[54] = [108.0, 150.0], [132.0, 150.0]
    quad = ffhq_quad(lm)
    # e2e = 40, e2m = 50 -> scale max(80, 90) = 90, centre = eye_avg + 0.1 e2m = (120, 105)
    np.testing.assert_allclose(quad, [[30, 15], [30, 195], [210, 195], [210, 15]], atol=1e-9)
    with pytest.raises(UsageError):
        ffhq_quad(np.zeros((5, 2)))


@needs_shared
def test_eyes_land_at_the_ffhq_positions_within_one_percent(hq_faces):
    """The crop's own eyes (re-detected in the crop) sit where the recipe puts them, and for
    frontal faces that is the FFHQ template: x = 3/8 and 5/8, y = 1/2 - 0.025 |e2m| / |e2e|
    (edge-normalised coordinates)."""
    size = 256
    n_frontal = 0
    for name, img, face in hq_faces:
        a = align_face(img, face, size)
        again = detect_faces(a.image)
        assert len(again) == 1, name
        got = (np.vstack([again[0].eye_left, again[0].eye_right]) + 0.5) / size
        predicted = (a.to_crop(np.vstack([face.eye_left, face.eye_right])) + 0.5) / size
        assert np.abs(got - predicted).max() < 0.01, name
        lm = face.landmarks
        e2e = face.eye_right - face.eye_left
        e2m = (lm[48] + lm[54]) / 2 - (face.eye_left + face.eye_right) / 2
        ratio = np.linalg.norm(e2m) / np.linalg.norm(e2e)
        cos = abs(e2e @ e2m) / np.linalg.norm(e2e) / np.linalg.norm(e2m)
        if 2 * np.linalg.norm(e2e) >= 1.8 * np.linalg.norm(e2m) and cos < 0.1:
            n_frontal += 1
            y = 0.5 - 0.025 * ratio
            assert np.abs(got - [[0.375, y], [0.625, y]]).max() < 0.01, name
    assert n_frontal >= 3


@needs_shared
def test_aligned_face_transforms_are_inverse_and_in_photo_coordinates(hq_faces):
    name, img, face = hq_faces[0]
    a = align_face(img, face, 64, supersample=1)
    assert isinstance(a, AlignedFace) and a.image.shape == (64, 64, 3)
    np.testing.assert_allclose(a.photo_to_crop @ a.crop_to_photo, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(a.quad, ffhq_quad(face.landmarks))
    # crop pixel-edge corners are the quad corners
    corners = a.to_photo([[-0.5, -0.5], [-0.5, 63.5], [63.5, 63.5], [63.5, -0.5]])
    np.testing.assert_allclose(corners, a.quad, atol=1e-9)
    # the crop pixel at the quad centre has the photo's colour there (no padding involved)
    centre = a.quad.mean(axis=0)
    u, v = a.to_crop(centre)[0]
    assert np.abs(u - 31.5) < 1e-9 and np.abs(v - 31.5) < 1e-9
    d = json.loads(json.dumps(a.to_dict()))
    assert d["size"] == 64 and len(d["face"]["landmarks"]) == 68


@needs_shared
def test_shrink_path_matches_direct_alignment(hq_faces):
    """A face much larger than the output goes through the integer shrink; its crop must
    match aligning the same face from a photo that is already small (no half-pixel shift)."""
    name, img, face = hq_faces[1]
    big = np.asarray(Image.fromarray(img).resize((3072, 3072), Image.Resampling.LANCZOS))
    big_face = Face(box=face.box, landmarks=(face.landmarks + 0.5) * 3 - 0.5, score=1, quality=1)
    a_big = align_face(big, big_face, 128)  # qsize ~ 2000 -> shrink 7
    a_ref = align_face(img, face, 128)
    diff = np.abs(a_big.image.astype(float) - a_ref.image.astype(float))
    assert diff.mean() < 2.5
    # a half-pixel-of-the-shrunk-photo shift would show as a clear gradient mismatch
    shifted = np.abs(a_big.image[:, 1:].astype(float) - a_ref.image[:, :-1].astype(float)).mean()
    assert diff.mean() < 0.6 * shifted


@needs_shared
def test_padding_where_the_face_leaves_the_photo(hq_faces):
    name, img, face = hq_faces[0]
    # cut the photo just below the nose: the quad now reaches far outside it
    cut = np.ascontiguousarray(img[: int(face.landmarks[33][1])])
    cut_face = Face(box=face.box, landmarks=face.landmarks, score=1, quality=1)
    a = align_face(cut, cut_face, 128)
    assert a.valid is not None
    valid = a.valid
    # upper middle of the crop shows real pixels, the bottom rows are synthetic padding (the
    # recipe pads every side, so the left/right edges are blurred too)
    assert valid[5:40, 40:88].mean() > 0.95 and valid[-10:].max() == 0.0
    # padding is blurred toward the median: much smoother than the real hair/face above
    pad_rows = a.image[-20:].astype(float)
    real_rows = a.image[30:50].astype(float)
    assert np.abs(np.diff(pad_rows, axis=1)).mean() < 0.5 * np.abs(np.diff(real_rows, axis=1)).mean()
    no_pad = align_face(cut, cut_face, 128, pad=False)
    assert no_pad.valid is None
    with pytest.raises(UsageError):
        align_face(cut, cut_face, 4)


# ----------------------------------------------------------------------------------- CLI

@needs_shared
def test_cli_writes_crops_and_json(tmp_path):
    from click.testing import CliRunner

    from realedit.commands.align import cli

    img, _ = compose_five()
    five = tmp_path / "five.jpg"
    Image.fromarray(img).save(five, quality=95)
    astro = tmp_path / "astro.png"
    Image.fromarray(astronaut()).save(astro)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, [str(five), str(astro), "-o", str(out), "--size", "64",
                                   "--faces", "all"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("five_*.png")) == [f"five_{k}.png" for k in range(5)]
    record = json.loads((out / "astro.json").read_text())
    assert len(record["faces"]) == 1 and record["faces"][0]["crop"] == "astro_0.png"
    assert record["skipped"] and "non-face" in record["skipped"][0]["reason"]
    assert Image.open(out / "astro_0.png").size == (64, 64)
    q = np.array(record["faces"][0]["quad"])
    assert q.shape == (4, 2) and len(record["faces"][0]["face"]["landmarks"]) == 68


def test_cli_bad_inputs_give_one_line_errors_and_nonzero_exit(tmp_path):
    from click.testing import CliRunner

    from realedit.commands.align import cli

    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 90), (200, 200, 200)).save(blank)
    junk = tmp_path / "junk.jpg"
    junk.write_text("not a photo")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    runner = CliRunner()
    res = runner.invoke(cli, [str(blank), str(junk), str(tiny), str(tmp_path / "missing.jpg"),
                              "-o", str(tmp_path / "out")])
    assert res.exit_code == NoFaceError.exit_code
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output
    assert "no face found" in res.output and "not an image" in res.output
    assert "no such file" in res.output
    assert json.loads((tmp_path / "out" / "blank.json").read_text())["faces"] == []
    res = runner.invoke(cli, [str(blank), "-o", str(tmp_path / "o2"), "--faces", "most"])
    assert res.exit_code == 2 and "--faces" in res.output
    res = runner.invoke(cli, [str(junk), "-o", str(tmp_path / "o3")])
    assert res.exit_code == ImageError.exit_code


def test_cnn_detector_and_model_file_lookup(monkeypatch, tmp_path):
    from realedit.align import dlib_models

    img = np.asarray(Image.fromarray(astronaut()).resize((256, 256)))
    faces = detect_faces(img, detector=Detector("cnn", upsample=1))
    assert len(faces) == 1 and faces[0].detector == "cnn"
    assert 95 < faces[0].landmarks[30][0] < 125
    # without face_recognition_models, files come from the weights registry (by name)
    asked = []

    def fake_resolve(name, download=True):
        asked.append(name)
        return tmp_path / "from-registry.dat"

    import realedit.weights

    monkeypatch.setattr(dlib_models, "_package_models_dir", lambda: None)
    monkeypatch.setattr(realedit.weights, "resolve", fake_resolve)
    assert dlib_models.dlib_model_path("landmarks68") == tmp_path / "from-registry.dat"
    assert dlib_models.dlib_model_path("mmod") == tmp_path / "from-registry.dat"
    assert asked == ["dlib-shape-predictor-68", "dlib-mmod-face-detector"]
    # an explicit folder wins
    (tmp_path / "shape_predictor_68_face_landmarks.dat").write_bytes(b"x")
    assert dlib_models.dlib_model_path("landmarks68", tmp_path).parent == tmp_path
    # the registry names exist in the shipped registry
    names = realedit.weights.registry()
    for key in ("dlib-shape-predictor-68", "dlib-mmod-face-detector"):
        assert key in names


def test_small_face_in_a_large_photo_is_found():
    """The astronaut shrunk to 160 px (face ~40 px) in a corner of a 1200x900 photo: above
    1024 px the detector used to run without upsampling and found nothing (exit 4)."""
    from PIL import Image

    canvas = Image.new("RGB", (1200, 900), (120, 125, 130))
    canvas.paste(Image.fromarray(astronaut()).resize((160, 160), Image.LANCZOS), (1030, 730))
    kept, _ = pick_faces(np.asarray(canvas), min_size=32)
    assert len(kept) == 1 and kept[0].accepted
    x0, y0, x1, y1 = kept[0].box
    assert 30 < x1 - x0 < 60 and 1030 < x0 and x1 < 1190 and 730 < y0 and y1 < 890
    det = Detector()
    assert det.smallest_face(900, 1200) == pytest.approx(40)
    # larger photos: tests/test_small_faces.py
