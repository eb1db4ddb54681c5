"""apply_edits: meaning of amounts, W on W+ layer ranges, distance targets, errors."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from realedit.errors import EditError
from realedit.edit import Direction, DirectionBank, apply_edits, direction_spaces, load_bank

from datapaths import SHARED  # noqa: E402  (honours REALEDIT_SHARED)
BOUNDARIES = SHARED / "data" / "interfacegan_boundaries"


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


@pytest.fixture()
def toy():
    rng = np.random.default_rng(0)
    a = _unit(rng.normal(size=8))
    b = _unit(a + rng.normal(size=8))  # correlated with a
    c = _unit(rng.normal(size=8))
    return DirectionBank([
        Direction("age", a, "toy", "w", stats={"offset": 0.25}),
        Direction("gender", b, "toy", "w", stats={"offset": -0.5}),
        Direction("smile", c, "toy", "w", (2, 3)),
        Direction("age", _unit(rng.normal(size=8)), "toy", "z"),
        Direction("pose", _unit(rng.normal(size=8)), "toy", "z"),
        Direction("glasses", rng.normal(size=(5, 8)), "toy", "wp", (0, 1)),
    ])


def test_add_moves_by_amount_unit_normals(toy):
    w = np.random.default_rng(1).normal(size=(3, 8))
    out = apply_edits(w, "w", {"age": 3.0}, bank=toy, model="toy")
    np.testing.assert_allclose(out - w, 3.0 * toy.get("age", space="w").vector[None].repeat(3, 0))
    # several attributes at once: steps add up
    out2 = apply_edits(w, "w", {"age": 3.0, "gender": -1.5}, bank=toy)
    expect = w + 3 * toy.get("age", space="w").vector - 1.5 * toy.get("gender", space="w").vector
    np.testing.assert_allclose(out2, expect)
    # input untouched, single code (d,) keeps its shape
    single = apply_edits(w[0], "w", {"age": 1}, bank=toy)
    assert single.shape == (8,)


def test_keep_holds_kept_distance(toy):
    w = np.random.default_rng(2).normal(size=(4, 8))
    g = toy.get("gender", space="w").vector
    out = apply_edits(w, "w", {"age": 3.0}, keep=["gender"], bank=toy)
    np.testing.assert_allclose((out - w) @ g, 0, atol=1e-12)
    assert np.allclose(np.linalg.norm(out - w, axis=1), 3.0)  # still 3 unit steps
    # without keep, gender moves (the two directions are correlated)
    free = apply_edits(w, "w", {"age": 3.0}, bank=toy)
    assert np.all(np.abs((free - w) @ g) > 0.1)


def test_w_direction_on_wp_code_respects_layer_range(toy):
    wp = np.random.default_rng(3).normal(size=(2, 5, 8))
    out = apply_edits(wp, "wp", {"smile": 2.0}, bank=toy)
    s = toy.get("smile").vector
    for layer in range(5):
        expect = wp[:, layer] + (2.0 * s if layer in (2, 3) else 0)
        np.testing.assert_allclose(out[:, layer], expect)
    # a W direction without a range edits every layer: same as editing the W code
    w = wp[:, 0]
    via_wp = apply_edits(np.repeat(w[:, None], 5, 1), "wp", {"age": 1.5}, bank=toy)
    via_w = apply_edits(w, "w", {"age": 1.5}, bank=toy)
    for layer in range(5):
        np.testing.assert_allclose(via_wp[:, layer], via_w)


def test_layerwise_wp_direction(toy):
    wp = np.zeros((1, 5, 8))
    out = apply_edits(wp, "wp", {"glasses": 1.0}, bank=toy)
    g = toy.get("glasses")
    np.testing.assert_allclose(out[0, :2], g.vector[:2])
    np.testing.assert_allclose(out[0, 2:], 0)
    with pytest.raises(EditError, match="W\\+ direction: edit a W\\+ code|no W direction"):
        apply_edits(wp[:, 0], "w", {"glasses": 1.0}, bank=toy)
    with pytest.raises(EditError, match="5 layer rows but the code has 7"):
        apply_edits(np.zeros((1, 7, 8)), "wp", {"glasses": 1.0}, bank=toy)


def test_distance_mode_reaches_targets_jointly(toy):
    w = np.random.default_rng(4).normal(size=(6, 8))
    a, b = toy.get("age", space="w"), toy.get("gender", space="w")
    out = apply_edits(w, "w", {"age": 2.0, "gender": -1.0}, bank=toy, mode="distance")
    np.testing.assert_allclose(out @ a.vector + 0.25, 2.0, atol=1e-10)
    np.testing.assert_allclose(out @ b.vector - 0.5, -1.0, atol=1e-10)
    # with keep: the target is reached and the kept distance does not move
    out_k = apply_edits(w, "w", {"age": -3.0}, keep=["gender"], bank=toy, mode="distance")
    np.testing.assert_allclose(out_k @ a.vector + 0.25, -3.0, atol=1e-10)
    np.testing.assert_allclose(out_k @ b.vector, w @ b.vector, atol=1e-10)
    # W+ codes: every layer of the range reaches the target
    wp = np.random.default_rng(5).normal(size=(2, 5, 8))
    out_p = apply_edits(wp, "wp", {"smile": 1.0}, bank=toy, mode="distance")
    s = toy.get("smile").vector
    np.testing.assert_allclose(out_p[:, 2:4] @ s, 1.0, atol=1e-10)
    np.testing.assert_allclose(out_p[:, [0, 1, 4]], wp[:, [0, 1, 4]])


def test_torch_in_torch_out(toy):
    w = torch.randn(2, 5, 8, dtype=torch.float32)
    out = apply_edits(w, "wp", {"age": 1.0}, bank=toy)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == w.shape
    delta = (out - w)[:, 0].double().numpy()
    np.testing.assert_allclose(delta, np.tile(toy.get("age", space="w").vector, (2, 1)), atol=1e-6)


def test_errors_are_clear(toy):
    w = np.zeros((1, 8))
    with pytest.raises(EditError, match=r"'pose' has no W direction \(only Z\)"):
        apply_edits(w, "w", {"pose": 1.0}, bank=toy)
    with pytest.raises(EditError, match="unknown attribute 'agee'.*available: age, gender, smile"):
        apply_edits(w, "w", {"agee": 1.0}, bank=toy)
    with pytest.raises(EditError, match="no directions for model 'other'.*toy"):
        apply_edits(w, "w", {"age": 1.0}, bank=toy, model="other")
    with pytest.raises(EditError, match="8 dimensions but the code has 4"):
        apply_edits(np.zeros((1, 4)), "w", {"age": 1.0}, bank=toy)
    with pytest.raises(EditError, match="both edit and keep"):
        apply_edits(w, "w", {"age": 1.0}, keep=["age"], bank=toy)
    with pytest.raises(EditError, match="not a number"):
        apply_edits(w, "w", {"age": "lots"}, bank=toy)
    with pytest.raises(EditError, match="edit mode"):
        apply_edits(w, "w", {"age": 1.0}, bank=toy, mode="scale")
    with pytest.raises(EditError, match="shape"):
        apply_edits(np.zeros((1, 2, 8)), "w", {"age": 1.0}, bank=toy)
    foreign = Direction("age", np.ones(8), "elsewhere", "w")
    with pytest.raises(EditError, match="belongs to model 'elsewhere'"):
        apply_edits(w, "w", {foreign: 1.0}, bank=toy, model="toy")
    with pytest.raises(EditError, match="Z direction and cannot edit a W code"):
        apply_edits(w, "w", {Direction("x", np.ones(8), "toy", "z"): 1.0})


def test_direction_objects_as_keys(toy):
    d = Direction("sefa0", _unit(np.arange(8.0) + 1), "toy", "w", source="sefa")
    w = np.zeros((1, 8))
    out = apply_edits(w, "w", {d: 2.0}, keep=["gender"], bank=toy)
    assert abs(out[0] @ toy.get("gender", space="w").vector) < 1e-12
    assert abs(np.linalg.norm(out) - 2.0) < 1e-12


def test_direction_spaces_say_which_directions_apply_edits_takes():
    rng = np.random.default_rng(2)
    dirs = {"z": Direction("a", rng.normal(size=8), "toy", "z"),
            "w": Direction("a", rng.normal(size=8), "toy", "w"),
            "wp": Direction("a", rng.normal(size=(5, 8)), "toy", "wp")}
    codes = {"z": np.zeros((1, 8)), "w": np.zeros((1, 8)), "wp": np.zeros((1, 5, 8))}
    assert direction_spaces("wp") == ("wp", "w")  # the W+ direction preferred to the W one
    for space, code in codes.items():
        for dspace, d in dirs.items():
            if dspace in direction_spaces(space):
                assert np.abs(apply_edits(code, space, {d: 1.0}) - code).max() > 0
            else:
                with pytest.raises(EditError):
                    apply_edits(code, space, {d: 1.0})
    with pytest.raises(EditError, match="unknown latent space"):
        direction_spaces("s")


@pytest.mark.skipif(not BOUNDARIES.is_dir(), reason=f"released boundaries not at {BOUNDARIES}")
def test_released_z_boundary_cannot_edit_w_codes():
    bank = load_bank(BOUNDARIES, model="pggan_celebahq")
    with pytest.raises(EditError, match="'age' for pggan_celebahq has no W direction"):
        apply_edits(np.zeros((1, 512)), "w", {"age": 1.0}, bank=bank, model="pggan_celebahq")
    z = np.random.default_rng(0).normal(size=(2, 512))
    out = apply_edits(z, "z", {"age": 3.0}, keep=["gender", "eyeglasses"], bank=bank,
                      model="pggan_celebahq", mode="distance")
    np.testing.assert_allclose(out @ bank.get("age").vector, 3.0, atol=1e-10)
    for k in ("gender", "eyeglasses"):
        np.testing.assert_allclose(out @ bank.get(k).vector, z @ bank.get(k).vector, atol=1e-10)


def test_layer_override_per_attribute(toy):
    wp = np.zeros((1, 5, 8))
    out = apply_edits(wp, "wp", {"age": 1.0, "smile": 1.0}, bank=toy, layers={"age": "0-1"})
    a, s = toy.get("age", space="w").vector, toy.get("smile").vector
    np.testing.assert_allclose(out[0, 0], a)
    np.testing.assert_allclose(out[0, 2], s)               # smile keeps its own range 2-3
    np.testing.assert_allclose(out[0, 4], 0)
    with pytest.raises(EditError, match="needs a W\\+ code"):
        apply_edits(wp[:, 0], "w", {"age": 1.0}, bank=toy, layers={"age": "0-1"})
    with pytest.raises(EditError, match="edits layers 0-9 but the code has only 5"):
        apply_edits(wp, "wp", {"age": 1.0}, bank=toy, layers={"age": "0-9"})


def test_learned_wp_entry_serves_keep_edits_of_wp_codes(toy):
    """A W+ entry stored with conditions=("gender",) (as scripts/fit_bank.py --learn writes
    one) is what a W+ edit keeping gender moves along, on its layers only; distance mode
    measures against the W primal's hyperplane (offset included)."""
    rng = np.random.default_rng(4)
    learned = Direction("age", rng.normal(size=(5, 8)), "toy", "wp", (2, 3, 4), ("gender",), "learned")
    toy.add(learned)
    wp = rng.normal(size=(2, 5, 8))
    out = apply_edits(wp, "wp", {"age": 3.0}, keep=["gender"], bank=toy, model="toy")
    np.testing.assert_allclose(out[:, :2], wp[:, :2])
    np.testing.assert_allclose(out[:, 2:] - wp[:, 2:], 3.0 * learned.vector[None, 2:].repeat(2, 0))
    # a W code keeping gender still gets the projected W direction
    w = rng.normal(size=(2, 8))
    out_w = apply_edits(w, "w", {"age": 3.0}, keep=["gender"], bank=toy)
    assert np.allclose((out_w - w) @ toy.get("gender", space="w").vector, 0, atol=1e-12)
    # distance mode: each edited layer lands at distance 1.5 from the W age hyperplane
    out_d = apply_edits(wp, "wp", {"age": 1.5}, keep=["gender"], bank=toy, mode="distance")
    a = toy.get("age", space="w")
    np.testing.assert_allclose(out_d[:, 2:] @ a.vector + a.stats["offset"], 1.5, atol=1e-9)
    np.testing.assert_allclose(out_d[:, :2], wp[:, :2])
