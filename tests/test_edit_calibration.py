"""Calibrated amounts: a per-direction scale and sensible range stored in the bank, applied by
apply_edits, kept through --keep, read back from old banks as scale 1, and a warning (not an
error) beyond the range, in the API and as one stderr line in the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from realedit.edit import (DEFAULT_AMOUNT_RANGE, Direction, DirectionBank, amount_warnings,
                           apply_edits, load_bank, save_bank)
from realedit.errors import EditError


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


@pytest.fixture
def bank():
    rng = np.random.default_rng(3)
    return DirectionBank([
        Direction("smile", _unit(rng.normal(size=8)), "toy", "w", (1, 2), scale=2.5, amount_range=4.0,
                  stats={"offset": 0.5}),
        Direction("gender", _unit(rng.normal(size=8)), "toy", "w"),
        Direction("age", _unit(rng.normal(size=8)), "toy", "w", scale=1.5, amount_range=6.0),
        Direction("age", rng.normal(size=(4, 8)), "toy", "wp", (1, 2), ("gender",), "learned",
                  scale=3.0, amount_range=5.0),
    ])


def test_scale_multiplies_the_add_step(bank):
    w = np.random.default_rng(0).normal(size=(2, 8))
    d = bank.get("smile", space="w")
    moved = apply_edits(w, "w", {"smile": 2.0}, bank=bank)
    np.testing.assert_allclose(moved - w, np.broadcast_to(2.0 * 2.5 * d.vector, w.shape), atol=1e-12)
    # W+ codes: only the direction's layers move, by the same scaled step.
    wp = np.random.default_rng(1).normal(size=(2, 4, 8))
    out = apply_edits(wp, "wp", {"smile": -1.0}, bank=bank)
    np.testing.assert_allclose(out[:, [1, 2]] - wp[:, [1, 2]], np.broadcast_to(-2.5 * d.vector, (2, 2, 8)),
                               atol=1e-12)
    np.testing.assert_array_equal(out[:, [0, 3]], wp[:, [0, 3]])


def test_distance_mode_ignores_the_scale(bank):
    w = np.random.default_rng(2).normal(size=(3, 8))
    d = bank.get("smile", space="w")
    out = apply_edits(w, "w", {"smile": 1.25}, bank=bank, mode="distance")
    np.testing.assert_allclose(out @ d.vector + 0.5, 1.25, atol=1e-10)


def test_keep_projection_keeps_the_calibration(bank):
    cond = bank.direction("smile", keep=["gender"], space="w")
    assert cond.conditions == ("gender",)
    assert cond.scale == 2.5 and cond.amount_range == 4.0
    w = np.zeros((1, 8))
    moved = apply_edits(w, "w", {"smile": 2.0}, keep=["gender"], bank=bank)
    assert np.linalg.norm(moved) == pytest.approx(5.0)
    assert abs(float(moved[0] @ bank.get("gender").vector)) < 1e-10


def test_stored_conditional_entry_uses_its_own_scale(bank):
    wp = np.zeros((1, 4, 8))
    moved = apply_edits(wp, "wp", {"age": 1.0}, keep=["gender"], bank=bank)
    learned = bank.get("age", space="wp", conditions=["gender"])
    np.testing.assert_allclose(moved[0, 1], 3.0 * learned.vector[1], atol=1e-12)
    np.testing.assert_allclose(moved[0, 2], 3.0 * learned.vector[2], atol=1e-12)
    # Without keep the W primal (scale 1.5) moves every layer.
    plain = apply_edits(wp, "wp", {"age": 1.0}, bank=bank)
    np.testing.assert_allclose(np.linalg.norm(plain[0], axis=-1), 1.5, atol=1e-12)


def test_bank_round_trip_and_old_files(bank, tmp_path):
    save_bank(bank, tmp_path / "b")
    back = load_bank(tmp_path / "b.json")
    for d in bank:
        e = back.get(d.name, space=d.space, conditions=d.conditions)
        assert (e.scale, e.amount_range) == (d.scale, d.amount_range)
    # A bank written before calibration existed has neither key: amounts stay unit normals.
    meta = json.loads((tmp_path / "b.json").read_text())
    for e in meta["directions"]:
        del e["scale"], e["range"]
    (tmp_path / "b.json").write_text(json.dumps(meta))
    old = load_bank(tmp_path / "b.json")
    assert all(d.scale == 1.0 and d.amount_range is None for d in old)
    assert all(d.sensible_range == DEFAULT_AMOUNT_RANGE for d in old)
    w = np.zeros((1, 8))
    assert np.linalg.norm(apply_edits(w, "w", {"smile": 2.0}, bank=old)) == pytest.approx(2.0)


@pytest.mark.parametrize("field,value", [("scale", 0), ("scale", -1.0), ("scale", float("nan")),
                                         ("scale", "big"), ("amount_range", 0.0),
                                         ("amount_range", float("inf"))])
def test_bad_calibration_is_refused(field, value):
    with pytest.raises(EditError, match="positive number"):
        Direction("smile", np.ones(4), "toy", "w", **{field: value})


def test_bad_calibration_in_a_file_is_an_edit_error(bank, tmp_path):
    save_bank(bank, tmp_path / "b")
    meta = json.loads((tmp_path / "b.json").read_text())
    meta["directions"][0]["scale"] = -2
    (tmp_path / "b.json").write_text(json.dumps(meta))
    with pytest.raises(EditError, match="scale must be a positive number"):
        load_bank(tmp_path / "b.json")


def test_warnings_beyond_the_range(bank):
    assert amount_warnings({"smile": 4.0, "age": -6.0}, (), bank, "w") == []
    lines = amount_warnings({"smile": -4.5, "age": 2.0}, (), bank, "w")
    assert len(lines) == 1 and "smile=-4.5" in lines[0] and "+-4" in lines[0] and "\n" not in lines[0]
    # Unmeasured directions fall back to the default range.
    assert amount_warnings({"gender": DEFAULT_AMOUNT_RANGE}, (), bank, "w") == []
    (line,) = amount_warnings({"gender": DEFAULT_AMOUNT_RANGE + 0.5}, (), bank, "w")
    assert "default" in line
    # With keep, the stored learned entry's own range (5) decides, not the primal's (6).
    (line,) = amount_warnings({"age": 5.5}, ["gender"], bank, "wp")
    assert "age|gender=+5.5" in line
    assert amount_warnings({"age": 5.5}, (), bank, "wp") == []
    with pytest.raises(EditError, match="unknown attribute"):
        amount_warnings({"nope": 1.0}, (), bank, "w")


def test_cli_warns_on_one_line_and_still_edits(tmp_path):
    make = pytest.importorskip("bad_inputs.make")
    if not make.celeba_files():
        pytest.skip("CelebA crops not found")
    from realedit.cli import cli

    model = make.make_model(tmp_path / "m")
    make.face_photo(0).save(tmp_path / "a.png")
    common = [str(tmp_path / "a.png"), "--model", str(model), "--steps", "0", "-q", "-o", str(tmp_path / "o")]
    res = CliRunner().invoke(cli, [*common, "--attr", "age=+7"])
    assert res.exit_code == 0, res.output
    warn = [ln for ln in res.output.splitlines() if ln.startswith("Warning:")]
    assert len(warn) == 1 and "age=+7" in warn[0] and "Traceback" not in res.output
    assert (tmp_path / "o" / "a_edited.png").is_file()
    res = CliRunner().invoke(cli, [*common, "--attr", "age=+2"])
    assert res.exit_code == 0 and "Warning" not in res.output


def test_directions_list_shows_scale_range_and_effect(bank, tmp_path):
    from realedit.cli import cli

    calibrated = DirectionBank([
        Direction("smile", np.eye(4)[0], "m", "w", scale=2.5, amount_range=4.0,
                  stats={"calibration": {"per_unit": 0.71, "unit": "logit"}}),
        Direction("sefa0", np.eye(4)[1], "m", "w", source="sefa")])
    save_bank(calibrated, tmp_path / "c")
    res = CliRunner().invoke(cli, ["directions", "list", str(tmp_path / "c.json")])
    assert res.exit_code == 0, res.output
    smile = next(ln for ln in res.output.splitlines() if ln.split()[1:2] == ["smile"])
    assert "2.5" in smile and "+-4" in smile and "+1: +0.71 logit" in smile
    sefa = next(ln for ln in res.output.splitlines() if "sefa0" in ln)
    assert f"+-{DEFAULT_AMOUNT_RANGE:g}*" in sefa


# ----------------------------------------------------------------------------- calibrate()

from realedit.research.calibrate import calibrate  # noqa: E402

STEPS = [2.0, 4.0, 8.0]


def _sym(d):
    return {**d, **{-k: v for k, v in d.items()}}


def test_calibrate_hits_the_target_by_interpolation():
    # Effect 0.5 per unit normal: target 2 is reached at step 4, so +3 = 4 unit normals.
    cal = calibrate(STEPS, _sym({2.0: 1.0, 4.0: 2.0, 8.0: 4.0}), _sym({2.0: 1, 4.0: 1, 8.0: 1}),
                    target=2.0)
    assert cal.reached and cal.scale == pytest.approx(4 / 3) and cal.per_unit == pytest.approx(2 / 3)
    assert cal.amount_range == pytest.approx(6.0)  # capped at 2 x clear even though 8 is safe
    # Between grid points: 3 is reached at step 3 on the segment (2, 1) -> (4, 4).
    cal = calibrate(STEPS, _sym({2.0: 1.0, 4.0: 4.0, 8.0: 5.0}), _sym({2.0: 1, 4.0: 1, 8.0: 1}),
                    target=2.5)
    assert cal.clear_step == pytest.approx(3.0)


def test_calibrate_weaker_sign_decides():
    eff = {2.0: 1.0, 4.0: 2.0, 8.0: 4.0, -2.0: 0.5, -4.0: 1.0, -8.0: 2.0}
    cal = calibrate(STEPS, eff, _sym({2.0: 1, 4.0: 1, 8.0: 1}), target=2.0)
    assert cal.clear_step == pytest.approx(8.0)


def test_calibrate_stops_where_identity_breaks():
    # The target needs step 8, but at 8 only 80 % are the same person: the strongest safe step
    # (4) becomes +3, the range is +3 and the calibration says the target was not reached.
    cal = calibrate(STEPS, _sym({2.0: 0.5, 4.0: 1.0, 8.0: 2.0}), _sym({2.0: 1, 4.0: 0.96, 8.0: 0.8}),
                    target=2.0)
    assert not cal.reached and cal.clear_step == 4.0 and cal.amount_range == pytest.approx(3.0)
    assert cal.per_unit == pytest.approx(1 / 3)
    # A break at one sign only counts too.
    same = {2.0: 1, 4.0: 1, 8.0: 1, -2.0: 1, -4.0: 0.9, -8.0: 1}
    assert calibrate(STEPS, _sym({2.0: 1.0, 4.0: 2.0, 8.0: 4.0}), same, target=2.0).safe_step == 2.0


def test_calibrate_refuses_missing_or_bad_input():
    with pytest.raises(EditError, match="no measurement"):
        calibrate(STEPS, {2.0: 1.0}, {2.0: 1.0}, target=1.0)
    with pytest.raises(EditError):
        calibrate([], {}, {}, target=1.0)
    with pytest.raises(EditError):
        calibrate(STEPS, {}, {}, target=0.0)
