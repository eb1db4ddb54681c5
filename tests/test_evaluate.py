"""`realedit eval` on real photos with the shared attribute scorers and a tiny model.

The scorers and CelebA identities are research-only files in ../shared: the tests that need
them skip without it; the arithmetic and argument checks run everywhere."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from realedit.cli import cli
from realedit.evaluate import IdentityDescriptor
from tiny_model import make_tiny_model

from datapaths import ASTRONAUT, SHARED  # noqa: E402  (honours REALEDIT_SHARED)
SCORERS = SHARED / "models" / "attributes"
needs_scorers = pytest.mark.skipif(
    not SCORERS.is_dir(), reason=f"needs the research-only attribute scorers in {SCORERS}")
needs_identities = pytest.mark.skipif(
    not (SHARED / "data/celeba/identities.csv").is_file(),
    reason=f"needs CelebA photos with identity labels in {SHARED / 'data/celeba'}")


@pytest.mark.slow
@needs_scorers
def test_eval_reports_moves_drift_identity_and_outside(tmp_path):
    model = make_tiny_model(tmp_path)
    photos = sorted((SHARED / "data" / "celebahq").glob("*.jpg"))[:2]
    res = CliRunner().invoke(cli, ["eval", *map(str, photos), "--attr", "smile=+4", "--keep", "gender",
                                   "--model", str(model), "--inverter", "optimize", "--steps", "2",
                                   "--scorer-dir", str(SCORERS), "-o", str(tmp_path / "ev"),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "ev" / "report.json").read_text())
    s = rep["summary"]
    assert s["edited"] == 2 and s["failed"] == 0
    assert s["outside_mask_max_change"] == 0
    for row in rep["photos"]:
        before, after = row["target"]["smile"]
        assert np.isfinite(before) and np.isfinite(after) and before != after
        g0, g1 = row["kept"]["gender"]
        assert 0 <= g0 <= 1 and 0 <= g1 <= 1
        assert 0 <= row["identity_distance"] < 1.5
    assert (tmp_path / "ev" / "grid.png").stat().st_size > 1000
    # effect size with spread, in the scorer's units, agrees with the rows
    moves = [r["target"]["smile"][1] - r["target"]["smile"][0] for r in rep["photos"]]
    assert s["smile_change"]["mean"] == pytest.approx(np.mean(moves))
    assert s["smile_change"]["min"] == pytest.approx(min(moves))
    assert s["identity_distance"]["n"] == 2 and 0 <= s["identity_below_045"] <= 1
    assert s["sharpness_ratio"]["n"] == 2 and s["face_change"]["mean"] > 0
    assert s["ghost_change"]["n"] == 2 and s["ghost_change"]["mean"] >= 0
    # both sides of the transfer: the generator's own change, judged the same way, beside it
    gen = []
    for row in rep["photos"]:
        g0, g1 = row["generator"]["smile"]
        assert np.isfinite(g0) and np.isfinite(g1) and g0 != g1
        gen.append(g1 - g0)
    t = s["transfer"]["smile"]
    assert t["generator"]["mean"] == pytest.approx(np.mean(gen))
    assert t["photo"]["mean"] == pytest.approx(np.mean(moves))
    assert t["kept_of_means"] == pytest.approx(np.mean(moves) / np.mean(gen))
    assert "transfer" in res.output and "generator" in res.output


@needs_identities
def test_identity_descriptor_separates_people():
    from PIL import Image

    from realedit.align import detect_faces
    import csv
    rows = list(csv.DictReader(open(SHARED / "data/celeba/identities.csv")))
    by_id = {}
    for r in rows:
        by_id.setdefault(r["identity"], []).append(r["file"])
    ids = [k for k, v in by_id.items() if len(v) >= 2][:2]
    desc = IdentityDescriptor()

    def d(name):
        rgb = np.asarray(Image.open(SHARED / "data/celeba/images" / name).convert("RGB"))
        return desc(rgb, detect_faces(rgb)[0].landmarks)
    a1, a2 = d(by_id[ids[0]][0]), d(by_id[ids[0]][1])
    b1 = d(by_id[ids[1]][0])
    assert np.linalg.norm(a1 - a2) < np.linalg.norm(a1 - b1)
    assert np.linalg.norm(a1 - a1) == 0


def test_success_rate_counts_photos_that_moved_and_kept():
    # Pure summary arithmetic on hand-made rows.
    from realedit.evaluate import PhotoReport, summarize

    def row(s0, s1, g0, g1):
        return PhotoReport("p", 1, {"smile": (s0, s1)}, {"gender": (g0, g1)}, 0.2, 0)
    rows = [row(0, 1, .5, .55),    # moved, kept: success
            row(0, 1, .5, .65),    # moved, gender drifted .15: failure
            row(0, -1, .5, .5),    # wrong way: failure
            row(0, 2, .2, .29)]    # success
    s = summarize(rows, {"smile": 3})
    assert s["success_rate"] == 0.5 and s["success_max_drift"] == {"gender": 0.1}
    assert summarize(rows, {"smile": 3}, {"gender": 0.2})["success_rate"] == 0.75
    assert summarize(rows, {"smile": -3})["success_rate"] == 0.25
    bad = PhotoReport("q", 0, error="no face")
    assert summarize(rows + [bad], {"smile": 3})["success_rate"] == 0.5   # over edited photos
    # an edit refused on a usable face (a broken generated face) counts as a failure
    refused = PhotoReport("r", 1, error="broken face", refused=True)
    s = summarize(rows + [bad, refused], {"smile": 3})
    assert s["success_rate"] == 0.4 and s["refused"] == 1 and s["failed"] == 2


def test_eval_rejects_bad_max_drift(tmp_path):
    model = make_tiny_model(tmp_path)
    res = CliRunner().invoke(cli, ["eval", str(ASTRONAUT), "--attr", "smile=+3",
                                   "--keep", "gender", "--model", str(model), "--max-drift", "gender=x",
                                   "--scorer-dir", str(SCORERS), "-o", str(tmp_path / "ev")])
    assert res.exit_code != 0 and "bad --max-drift" in res.output
    assert not (tmp_path / "ev").exists()


def test_outside_change_on_file_measures_the_file_the_cli_writes(tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    from realedit.evaluate import _outside_change_on_file
    from realedit.io import extension_for, read_image, write_image

    rgb = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    outside = np.ones((64, 96), bool)
    outside[16:48, 32:64] = False
    for name in ("in.png", "in.jpg"):
        Image.fromarray(rgb).save(tmp_path / name, quality=90)
        src = read_image(tmp_path / name)
        edited = src.rgb.copy()
        edited[~outside] = 255 - edited[~outside]
        result = SimpleNamespace(source=src, photo=src.with_rgb(edited))
        got = _outside_change_on_file(result, outside)
        path = write_image(tmp_path / f"out{extension_for(src)}", result.photo)
        diff = np.abs(read_image(path).rgb.astype(int) - src.rgb.astype(int)).max(axis=2)[outside]
        assert got == (int(diff.max()), float((diff > 0).mean())), name
        assert got == (0, 0.0) if name.endswith(".png") else got[0] > 0, (name, got)
