"""The eval's measurements on inputs with a known answer (no ../shared needed)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from realedit.evaluate import head_yaw

ROOT = Path(__file__).resolve().parents[1]


def test_bank_pose_direction_turns_heads_towards_positive_yaw():
    # The documented sign: pose=+X turns the head towards the image's right (head_yaw up).
    # Measured on the embedded model's own samples, where the edit is the generator's.
    import torch
    from torch.nn import functional as F

    from realedit import Editor
    from realedit.align import detect_faces
    from realedit.edit import apply_edits
    from realedit.invert import synthesize

    ed = Editor.from_pretrained(None, inverter="encoder")
    torch.manual_seed(1)
    w = ed.G.mapping(torch.randn(6, ed.G.z_dim), psi=0.7)
    w = w[:, None].repeat(1, ed.G.num_ws, 1) if w.ndim == 2 else w

    def yaws(ws):
        with torch.no_grad():
            img = F.interpolate(synthesize(ed.G, ws, "wp"), size=256, mode="bilinear")
        u8 = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        found = [detect_faces(np.ascontiguousarray(x)) for x in u8]
        return np.array([head_yaw(f[0].landmarks, (256, 256)) if f else np.nan for f in found])
    y0 = yaws(w)
    d = yaws(apply_edits(w, "wp", {"pose": 3}, bank=ed.bank, model=ed.model_name)) - y0
    d = d[np.isfinite(d)]
    assert d.size >= 4 and np.mean(d > 0) >= 0.8 and d.mean() > 3


def test_spread_quartiles_on_known_rows():
    from realedit.evaluate import spread

    s = spread([1, 2, 3, 4, 5, float("nan"), None])
    assert s == {"n": 5, "mean": 3.0, "median": 3.0, "q1": 2.0, "q3": 4.0, "min": 1.0, "max": 5.0}
    assert spread([])["n"] == 0 and spread([float("nan")])["mean"] is None


def _textured(seed=0, size=200):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _ring_landmarks(cx, cy, r, n=68):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)


def test_face_region_and_sharpness_ratio_of_a_blurred_face():
    from realedit.evaluate import face_region, sharpness

    img = _textured()
    region = face_region(_ring_landmarks(100, 100, 50), img.shape)
    assert abs(region.sum() - np.pi * 50 ** 2) / (np.pi * 50 ** 2) < 0.05
    assert not region[5, 5] and region[100, 100]
    blurred = cv2.GaussianBlur(img, (0, 0), 1.5)
    assert sharpness(blurred, region) / sharpness(img, region) < 0.5
    assert sharpness(img.copy(), region) / sharpness(img, region) == 1.0
    assert np.isnan(sharpness(img, np.zeros(img.shape[:2], bool)))


def test_change_outside_face_finds_a_ghost_beside_the_face():
    from realedit.evaluate import change_outside_face, face_region

    src = _textured(1)
    face = face_region(_ring_landmarks(100, 100, 40), src.shape)
    mask = np.zeros(src.shape[:2], np.float32)
    mask[30:170, 30:170] = 1.0                   # the paste mask: a big square round the face
    clean = src.astype(int)
    clean[face] += 20                            # the face changed, nothing else
    clean = np.clip(clean, 0, 255).astype(np.uint8)
    c = change_outside_face(src, clean, mask, face)
    assert c["ghost_change"] == 0 and c["ghost_ratio"] == 0 and c["face_change"] > 15
    ghost = clean.astype(int)
    ghost[35:60, 140:165] = 255 - ghost[35:60, 140:165]   # a blob in the "hair", inside the mask
    ghost = ghost.astype(np.uint8)
    g = change_outside_face(src, ghost, mask, face)
    assert g["ghost_change"] > 5 and g["ghost_p99"] > 100 and g["ghost_ratio"] > 0.2
    assert g["face_change"] == pytest.approx(c["face_change"])
    # change outside the paste mask is not a ghost (the eval checks that separately)
    far = clean.copy()
    far[180:195, 180:195] = 0
    assert change_outside_face(src, far, mask, face)["ghost_change"] == 0
    assert np.isnan(change_outside_face(src, src, mask, face)["ghost_ratio"])


def test_summary_carries_spreads_identity_sharpness_and_ghosts():
    from realedit.evaluate import PhotoReport, summarize

    def row(move, ident, sharp, ghost):
        return PhotoReport("p", 1, {"pose": (0.0, move)}, {}, ident, 0, yaw=(0.0, move),
                           sharpness=(100.0, 100.0 * sharp),
                           ghost={"ghost_change": ghost, "ghost_p99": ghost, "face_change": 10.0,
                                  "ghost_ratio": ghost / 10})
    rows = [row(-2, .2, 1.0, 1), row(4, .3, .95, 2), row(8, .5, .8, 3), row(10, .4, 1.1, 4),
            PhotoReport("q", 0, error="no face")]
    s = summarize(rows, {"pose": 3})
    assert s["pose_change"]["median"] == 6.0 and s["pose_change"]["q1"] == 2.5
    assert s["pose_moved_as_asked"] == 0.75 and s["yaw_change"]["mean"] == 5.0
    assert s["identity_below_045"] == 0.75 and s["identity_distance"]["max"] == 0.5
    assert s["sharpness_kept_090"] == 0.75
    assert s["sharpness_ratio"]["min"] == pytest.approx(0.8)
    assert s["ghost_ratio"]["mean"] == pytest.approx(0.25)
    # a face lost after the edit (NaN yaw) counts as not moved
    lost = PhotoReport("r", 1, {"pose": (0.0, float("nan"))}, {}, .2, 0, face_found_after=False)
    s2 = summarize(rows[:1] + [lost], {"pose": -3})
    assert s2["pose_moved_as_asked"] == 0.5 and s2["face_found_after"] == 0.5


@pytest.mark.slow
def test_eval_cli_two_runs_on_one_inversion_without_shared(tmp_path):
    # Brightness stands in for the research-only scorers, so this runs anywhere.
    import json

    from click.testing import CliRunner

    from realedit.cli import cli
    from tiny_model import make_tiny_model

    model = make_tiny_model(tmp_path)
    photo = ROOT / "demo" / "photos" / "astronaut.jpg"
    res = CliRunner().invoke(cli, ["eval", str(photo), "--edit", "smile=+4/age", "--edit", "smile=-4",
                                   "--scorer", "smile=brightness", "--scorer", "age=brightness",
                                   "--max-drift", "age=100", "--model", str(model),
                                   "--inverter", "optimize", "--steps", "2", "-o", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    assert "== smile=+4 keep age" in res.output and "smile_change" in res.output
    up = json.loads((tmp_path / "ev" / "smile+4_keep-age" / "report.json").read_text())
    down = json.loads((tmp_path / "ev" / "smile-4" / "report.json").read_text())
    for rep in (up, down):
        s, row = rep["summary"], rep["photos"][0]
        assert s["edited"] == 1 and s["outside_mask_max_change"] == 0
        assert 0 <= s["identity_distance"]["mean"] < 1.5
        # a random tiny generator may break the face; the row says so consistently
        assert s["face_found_after"] == float(np.isfinite(row["yaw"][1]))
        assert s["sharpness_ratio"]["n"] == 1 and s["sharpness_ratio"]["median"] > 0
        assert s["face_change"]["mean"] > 0 and s["ghost_change"]["n"] == 1
        assert np.isfinite(row["yaw"][0])
    # both runs score the same photo before, and different edits after
    (b_up, a_up), (b_down, a_down) = up["photos"][0]["target"]["smile"], down["photos"][0]["target"]["smile"]
    assert b_up == b_down and a_up != a_down
    assert up["summary"]["age_drift_within_tolerance"] == 1.0


@pytest.mark.parametrize("args, msg", [(["--edit", "/gender"], "bad --edit"),
                                       (["--edit", "smile=+3", "--attr", "age=+1"], "either --attr"),
                                       ([], "nothing to measure"),
                                       (["--attr", "smile=+3", "--detail", "blur"], "unknown --detail")])
def test_eval_cli_refuses_bad_run_options(tmp_path, args, msg):
    from click.testing import CliRunner

    from realedit.cli import cli
    res = CliRunner().invoke(cli, ["eval", str(ROOT / "demo" / "photos"), *args, "--scorer",
                                   "smile=brightness", "-o", str(tmp_path / "ev")])
    assert res.exit_code != 0 and msg in res.output and "Traceback" not in res.output
    assert not (tmp_path / "ev").exists()


def test_transfer_summary_puts_the_generator_beside_the_photo():
    """Per measure: the generator's change, the photo's, and the share kept (median over
    photos, and the ratio of the means); a photo where the generator barely moved a measure
    has no ratio; mouth width in % of the width before."""
    from realedit.evaluate import KEPT_FLOOR, PhotoReport, format_transfer, transfer_summary

    def row(g_smile, p_smile, g_yaw, p_yaw, g_mouth, p_mouth):
        return PhotoReport("p", 1, target={"smile": (0.0, p_smile)}, yaw=(1.0, 1.0 + p_yaw),
                           mouth=(1.0, 1.0 + p_mouth),
                           generator={"smile": (-1.0, -1.0 + g_smile), "yaw": (0.0, g_yaw),
                                      "mouth": (2.0, 2.0 * (1 + g_mouth))})
    rows = [row(3.0, 1.5, 0.1, 0.0, 0.10, 0.05), row(2.0, 2.0, 8.0, 4.0, 0.20, 0.05),
            row(4.0, 1.0, 0.2, 0.1, 0.10, 0.10)]
    t = transfer_summary(rows, {"smile": 3.0})
    assert list(t) == ["smile", "mouth", "yaw", "hair"]
    s = t["smile"]
    assert s["generator"]["mean"] == pytest.approx(3.0) and s["photo"]["mean"] == pytest.approx(1.5)
    assert s["kept"]["median"] == pytest.approx(0.5)          # ratios 0.5, 1.0, 0.25
    assert s["kept_of_means"] == pytest.approx(0.5) and s["unit"] == "logit"
    m = t["mouth"]
    assert m["generator"]["median"] == pytest.approx(10.0) and m["unit"] == "% width"
    assert m["kept"]["median"] == pytest.approx(0.5)          # 5/10, 5/20, 10/10
    y = t["yaw"]                                              # two turns under the floor
    assert KEPT_FLOOR["yaw"] > 0.2 and y["kept"]["n"] == 1 and y["kept"]["median"] == 0.5
    # a pose edit judged by head yaw reports its yaw once, as the edit's own row
    assert list(transfer_summary(rows, {"pose": 3.0}, yaw_attrs=["pose"])) == ["yaw", "mouth", "hair"]
    assert t["hair"]["kept"]["n"] == 0          # not measured here: no ratio, not an error
    lines = format_transfer(t)
    assert any(line.startswith("smile") and "50 %" in line for line in lines)
    # rows measured without the generator's images (an older report) give no ratio, not an error
    bare = transfer_summary([PhotoReport("q", 1, target={"smile": (0.0, 1.0)})], {"smile": 3.0})
    assert bare["smile"]["kept"]["n"] == 0 and bare["smile"]["kept_of_means"] is None


def test_generator_images_are_judged_as_crops_of_the_photo_size():
    from realedit.align import align_face, detect_faces
    from realedit.evaluate import CROP, generated_crop, judge_crops
    from realedit.pipeline import crop_to_tensor
    from PIL import Image

    rgb = np.asarray(Image.open(ROOT / "demo" / "photos" / "astronaut.jpg").convert("RGB"))
    crop = align_face(rgb, detect_faces(rgb)[0], CROP).image
    small = crop_to_tensor(crop, 64)[0]                       # what a 64 px generator would give
    up = generated_crop(small)
    assert up.shape == (CROP, CROP, 3) and up.dtype == np.uint8
    assert np.abs(up.astype(int) - crop).mean() < 12          # the same face, blurred
    mirror = np.ascontiguousarray(crop[:, ::-1])
    j = judge_crops(crop, mirror, {"brightness": lambda x: x.mean((1, 2, 3))})
    assert np.sign(j["yaw"][0]) == -np.sign(j["yaw"][1]) and abs(j["yaw"][0]) > 1
    assert j["mouth"][0] == pytest.approx(j["mouth"][1], rel=0.05) and 0.6 < j["mouth"][0] < 1.4
    assert j["scores"]["brightness"][0] == pytest.approx(j["scores"]["brightness"][1], abs=1e-4)


def test_hair_greyness_reads_grey_hair_and_not_the_face():
    """hair_greyness rises when the hair around the face turns grey and stays when only the
    face changes colour (the region is the head beside and above the face)."""
    skimage_data = pytest.importorskip("skimage.data")
    from realedit.align import align_face, detect_faces
    from realedit.blend.masks import landmark_mask
    from realedit.evaluate import _central_landmarks, hair_greyness

    img = skimage_data.astronaut()
    crop = align_face(img, detect_faces(img)[0], 256).image
    lm = _central_landmarks(crop)
    face = landmark_mask(lm, 256)[:, :, None]
    grey = crop.astype(np.float32).mean(axis=2, keepdims=True) * 0.8 + 40   # ash, lighter
    greyed = np.clip(face * crop + (1 - face) * grey, 0, 255).astype(np.uint8)
    tinted = crop.astype(np.float32)
    tinted[..., 0] += 40 * face[..., 0]                                  # a redder face only
    tinted = np.clip(tinted, 0, 255).astype(np.uint8)
    g0 = hair_greyness(crop, lm)
    assert np.isfinite(g0)
    assert hair_greyness(greyed, lm) - g0 > 10
    assert abs(hair_greyness(tinted, lm) - g0) < 1.0
    assert np.isnan(hair_greyness(crop, None))
