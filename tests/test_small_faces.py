"""Small faces in large photos (issue #14): a ~40 px face is found at any photo size by the
tiled small-face pass, once, with its landmarks where they belong; ``min_face`` trades that
for speed and ``smallest_face`` / the no-face message say what a detector finds.

Photos are built from scikit-image's astronaut (public domain). Shrunk to 160 px her dlib box
is ~30 px (the face is ~45 px wide), below the main pass's reach in any photo over 2048 px.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage.data import astronaut

from realedit.align import Detector, pick_faces
from realedit.align.detect import merge_faces, tile_grid
from realedit.errors import NoFaceError, UsageError

SMALL = 160  # astronaut side in the photos: a face of ~30 px box, ~45 px across


def background(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A grey ramp with pixel noise: texture for HOG, no face."""
    noise = np.random.default_rng(seed).integers(-12, 13, (h, w, 1), dtype=np.int16)
    ramp = np.linspace(60, 200, w).astype(np.int16)[None, :, None] + noise
    return np.repeat(ramp.clip(0, 255).astype(np.uint8), 3, axis=2)


def paste(canvas: np.ndarray, side: int, x: int, y: int) -> np.ndarray:
    canvas[y:y + side, x:x + side] = cv2.resize(astronaut(), (side, side),
                                                interpolation=cv2.INTER_AREA)
    return canvas


@pytest.fixture(scope="module")
def reference_landmarks() -> np.ndarray:
    """The astronaut's 68 landmarks at her full 512 px (a face of ~90 px box)."""
    faces = Detector()(astronaut())
    assert len(faces) == 1
    return faces[0].landmarks


def expected(landmarks: np.ndarray, side: int, x: int, y: int) -> np.ndarray:
    """Reference landmarks where the astronaut shrunk to ``side`` and pasted at (x, y) has
    them (pixel centres: (p + 0.5) * scale - 0.5)."""
    return (landmarks + 0.5) * side / 512 - 0.5 + [x, y]


@pytest.fixture(scope="module")
def photo_12mp() -> tuple[np.ndarray, tuple[int, int]]:
    """4000x3000, the shrunk astronaut 10 px from the bottom-right corner."""
    x, y = 4000 - SMALL - 10, 3000 - SMALL - 10
    return paste(background(3000, 4000), SMALL, x, y), (x, y)


@pytest.mark.slow
def test_a_40px_face_in_the_corner_of_a_12mp_photo_is_found_with_its_landmarks(
        photo_12mp, reference_landmarks):
    img, (x, y) = photo_12mp
    det = Detector(workers=2)
    assert det.smallest_face(3000, 4000) == 40 and len(det.tiles(3000, 4000)) > 1
    faces = det(img, keep_rejected=True)
    assert len(faces) == 1 and faces[0].accepted, [(f.box, f.quality) for f in faces]
    l, t, r, b = faces[0].box
    assert x < l < r < x + SMALL and y < t < b < y + SMALL and 25 < r - l < 45
    err = np.linalg.norm(faces[0].landmarks - expected(reference_landmarks, SMALL, x, y), axis=1)
    # the inter-ocular distance is ~11 px here: eyes within a pixel, the rest within ~2
    assert np.median(err) < 1.5, np.median(err)
    eyes = expected(reference_landmarks, SMALL, x, y)[36:48]
    assert np.abs(faces[0].landmarks[36:48].mean(0) - eyes.mean(0)).max() < 1.0


@pytest.mark.slow
def test_min_face_80_does_not_find_it_and_says_so(photo_12mp):
    img, _ = photo_12mp
    corner = img[-1800:, -2400:]  # still over 2048 px (a 1.1x tile pass), a fifth of the cost
    det = Detector(min_face=80, workers=2)
    assert det.smallest_face(1800, 2400) == 80 and det.tiles(1800, 2400)
    with pytest.raises(NoFaceError, match=r"^no face found in big.jpg \(faces down to about "
                                          r"80 px across are found in a 2400x1800 photo\); "
                                          r"try --detector cnn"):
        pick_faces(corner, min_size=0, detector=det, where="big.jpg")
    assert len(Detector(workers=2)(corner)) == 1  # and min_face=40 does, in this crop too


@pytest.fixture(scope="module")
def seam_photo():
    """1800x1350 photo detected on a 900 px working copy (main pass upsampled: faces from
    80 px) in 2048 px magnified tiles, 3 x 2 of them. A large face both passes find, one small
    face inside the overlap of two tiles (both see it whole) and one across the first tile's
    right edge (it sees the face cut, its neighbour whole)."""
    det = Detector(max_side=900, tile=2048, workers=2)
    h, w = 1350, 1800
    tiles = det.tiles(h, w)
    (_, _, a1, _), (b0, _, _, _), (_, row_1, _, _) = tiles[0], tiles[1], tiles[3]
    assert len(tiles) == 6 and a1 - b0 >= 100 and row_1 > 500
    img = background(h, w, seed=1)
    big = 626  # box ~110 px: the main pass sees it, and so does the tile pass
    paste(img, big, 1100, 650)
    # the astronaut's face is centred at ~0.43 of her width
    inside = (round((a1 + b0) / 2 - 0.43 * SMALL), 60)    # face centred in the overlap
    across = (round(a1 - 0.43 * SMALL), 300)              # face centred on tile 0's edge
    for x, y in (inside, across):
        paste(img, SMALL, x, y)
    return det, img, {"big": (big, 1100, 650), "inside": (SMALL, *inside),
                      "across": (SMALL, *across)}


@pytest.mark.slow
def test_faces_on_tile_seams_and_in_both_passes_are_found_once(seam_photo, reference_landmarks):
    det, img, placed = seam_photo
    faces = det(img)
    assert len(faces) == 3, [f.box for f in faces]
    for name, (side, x, y) in placed.items():
        nose = expected(reference_landmarks, side, x, y)[30]
        hits = [f for f in faces if np.linalg.norm(f.landmarks[30] - nose) < 0.05 * side]
        assert len(hits) == 1, name
    # the tile pass alone (one thread here, two above) finds the seam face twice and the large
    # face too; merged with the main pass, that is the same three faces, bit for bit
    one = Detector(max_side=900, tile=2048, workers=1)
    small = one._small_faces(img, one._magnification(*img.shape[:2]))
    for name, least in (("inside", 2), ("big", 1)):
        side, x, y = placed[name]
        nose = expected(reference_landmarks, side, x, y)[30]
        assert sum(np.linalg.norm(f.landmarks[30] - nose) < 0.05 * side for f in small) >= least
    work, sx, sy = one._working_copy(img)
    main = one._faces(work, one._raw_detections(work, 1), sx, sy)
    merged = sorted(f.box for f in merge_faces(main, small) if f.accepted)
    assert merged == sorted(f.box for f in faces)


def test_merge_keeps_one_box_per_face():
    from realedit.align import Face

    def face(box, score):
        return Face(box=box, landmarks=np.zeros((68, 2)), score=score, quality=1.0)

    main = [face((100, 100, 200, 200), 1.0)]
    more = [face((105, 98, 203, 199), 2.0),    # the same face, found again
            face((120, 120, 160, 160), 0.5),   # inside it: a part of it
            face((300, 300, 340, 340), 0.2),   # elsewhere: kept
            face((302, 301, 341, 342), 0.9)]   # the same as the previous, better score
    kept = merge_faces(main, more)
    assert [f.box for f in kept] == [(100, 100, 200, 200), (302, 301, 341, 342)]


@pytest.mark.parametrize("h,w,side,overlap", [(3000, 4000, 1862, 204), (900, 1200, 2048, 100),
                                              (4000, 6000, 1000, 300), (1001, 3, 512, 100)])
def test_tile_grid_covers_the_photo_with_the_overlap(h, w, side, overlap):
    tiles = tile_grid(h, w, side, overlap)
    cover = np.zeros((h, w), np.int32)
    for x0, y0, x1, y1 in tiles:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert x1 - x0 <= side and y1 - y0 <= side
        cover[y0:y1, x0:x1] += 1
    assert cover.min() >= 1
    xs = sorted({(t[0], t[2]) for t in tiles})
    ys = sorted({(t[1], t[3]) for t in tiles})
    for cuts in (xs, ys):
        for (_, end), (start, _) in zip(cuts, cuts[1:]):
            assert end - start >= overlap


def test_smallest_face_follows_min_face_at_every_size():
    det = Detector()
    for h, w in ((200, 200), (900, 1200), (3000, 4000), (4000, 6000), (9000, 12000)):
        assert det.smallest_face(h, w) == pytest.approx(40)
    assert det.tiles(800, 1000) == []                    # upsampling the main pass suffices
    assert Detector(min_face=80).smallest_face(900, 1200) == pytest.approx(80)
    assert Detector(min_face=80).tiles(900, 1200) == []  # the main pass alone sees 80 px
    assert Detector(min_face=80).smallest_face(3000, 4000) == pytest.approx(80)
    # larger than the main pass's reach: the main pass's own limit (4000 px -> 2048: 156 px)
    assert Detector(min_face=300).smallest_face(3000, 4000) == pytest.approx(80 * 4000 / 2048)
    assert Detector(upsample=0).smallest_face(900, 1200) == pytest.approx(80)  # no tile pass
    for bad in (0, 10, -40, float("nan")):
        with pytest.raises(UsageError, match="min_face"):
            Detector(min_face=bad)
    with pytest.raises(UsageError, match="workers"):
        Detector(workers=0)


@pytest.mark.parametrize("command", [["align", "-o", "OUT"], ["edit", "--attr", "age=+1"]])
@pytest.mark.parametrize("value", ["10", "0", "-5", "abc", "nan"])
def test_cli_refuses_a_bad_min_face_before_loading_anything(tmp_path, command, value):
    from realedit.cli import cli

    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.zeros((64, 64, 3), np.uint8))
    args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
    res = CliRunner().invoke(cli, [args[0], str(photo), *args[1:], "--min-face", value])
    assert res.exit_code == 2, res.output
    assert "--min-face" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_cli_align_finds_the_small_face_and_min_face_80_does_not(tmp_path):
    from realedit.cli import cli

    photo = tmp_path / "corner.png"
    img = paste(background(900, 1200), SMALL, 1030, 730)
    cv2.imwrite(str(photo), img[:, :, ::-1])
    res = CliRunner().invoke(cli, ["align", str(photo), "-o", str(tmp_path / "a"),
                                   "--min-size", "32"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a" / "corner_0.png").is_file()
    res = CliRunner().invoke(cli, ["align", str(photo), "-o", str(tmp_path / "b"),
                                   "--min-face", "80"])
    assert res.exit_code == NoFaceError.exit_code, res.output
    assert "faces down to about 80 px across are found in a 1200x900 photo" in res.output


def test_cli_edit_passes_min_face_to_the_detector(tmp_path, model):
    from realedit.cli import cli

    photo = tmp_path / "corner.png"
    cv2.imwrite(str(photo), paste(background(900, 1200), SMALL, 1030, 730)[:, :, ::-1])
    res = CliRunner().invoke(cli, [str(photo), "--attr", "age=+1", "--model", str(model),
                                   "--steps", "0", "-q", "-o", str(tmp_path / "out"),
                                   "--min-face", "80"])
    assert res.exit_code == NoFaceError.exit_code, res.output
    assert "faces down to about 80 px across are found in a 1200x900 photo" in res.output
    assert not (tmp_path / "out").exists()
    res = CliRunner().invoke(cli, [str(photo), "--attr", "age=+1", "--model", str(model),
                                   "--steps", "0", "-q", "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output  # the default looks for 40 px faces: edited
    assert (tmp_path / "out" / "corner_edited.png").is_file()


@pytest.mark.slow
def test_batch_passes_min_face_to_its_detector(tmp_path, model):
    """realedit batch (folders of photos) has --min-face too, and a job without it resumes as
    one made before the option existed (its settings do not name it)."""
    import json

    from realedit.batch import JobSpec
    from realedit.cli import cli

    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "corner.png"), paste(background(900, 1200), SMALL, 1030, 730)[:, :, ::-1])
    base = ["batch", str(src), "--attr", "age=+1", "--model", str(model), "--steps", "0", "-q"]
    res = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "a"), "--min-face", "80"])
    assert res.exit_code != 0, res.output  # the one photo failed: no face of 80 px
    recs = [json.loads(line) for line in (tmp_path / "a" / "manifest.jsonl").read_text().splitlines()]
    assert any("80 px" in str(r.get("error", "")) for r in recs), recs
    res = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b" / "corner_edited.png").is_file()
    res = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "c"), "--min-face", "10"])
    assert res.exit_code == 2 and "--min-face" in res.output
    assert "min_face" not in JobSpec(edits={"age": 1.0}).settings()
    assert JobSpec(edits={"age": 1.0}, min_face=80.0).settings()["min_face"] == 80.0
