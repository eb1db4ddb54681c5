"""Direction banks: the 39 released InterFaceGAN files, conditioning, own format, idinvert."""
from __future__ import annotations

import json

import numpy as np
import pytest

from realedit.errors import EditError, UnsafePickleError
from realedit.edit import (Direction, DirectionBank, condition, from_idinvert, load_bank,
                           load_idinvert_file, parse_interfacegan_name, parse_layers, project_out,
                           save_bank)

from datapaths import SHARED  # noqa: E402  (honours REALEDIT_SHARED)
BOUNDARIES = SHARED / "data" / "interfacegan_boundaries"
needs_boundaries = pytest.mark.skipif(not BOUNDARIES.is_dir(),
                                      reason=f"released InterFaceGAN boundaries not found at {BOUNDARIES}")

# Expected (model, attribute, conditions, space) for every released file, spelled out by hand
# so a parser bug cannot agree with itself.
EXPECTED = {
    "pggan_celebahq_age_boundary.npy": ("pggan_celebahq", "age", (), "z"),
    "pggan_celebahq_age_c_eyeglasses_boundary.npy": ("pggan_celebahq", "age", ("eyeglasses",), "z"),
    "pggan_celebahq_age_c_gender_boundary.npy": ("pggan_celebahq", "age", ("gender",), "z"),
    "pggan_celebahq_age_c_gender_eyeglasses_boundary.npy": ("pggan_celebahq", "age", ("gender", "eyeglasses"), "z"),
    "pggan_celebahq_eyeglasses_boundary.npy": ("pggan_celebahq", "eyeglasses", (), "z"),
    "pggan_celebahq_eyeglasses_c_age_boundary.npy": ("pggan_celebahq", "eyeglasses", ("age",), "z"),
    "pggan_celebahq_eyeglasses_c_age_gender_boundary.npy": ("pggan_celebahq", "eyeglasses", ("age", "gender"), "z"),
    "pggan_celebahq_eyeglasses_c_gender_boundary.npy": ("pggan_celebahq", "eyeglasses", ("gender",), "z"),
    "pggan_celebahq_gender_boundary.npy": ("pggan_celebahq", "gender", (), "z"),
    "pggan_celebahq_gender_c_age_boundary.npy": ("pggan_celebahq", "gender", ("age",), "z"),
    "pggan_celebahq_gender_c_age_eyeglasses_boundary.npy": ("pggan_celebahq", "gender", ("age", "eyeglasses"), "z"),
    "pggan_celebahq_gender_c_eyeglasses_boundary.npy": ("pggan_celebahq", "gender", ("eyeglasses",), "z"),
    "pggan_celebahq_pose_boundary.npy": ("pggan_celebahq", "pose", (), "z"),
    "pggan_celebahq_quality_boundary.npy": ("pggan_celebahq", "quality", (), "z"),
    "pggan_celebahq_smile_boundary.npy": ("pggan_celebahq", "smile", (), "z"),
    "stylegan_celebahq_age_boundary.npy": ("stylegan_celebahq", "age", (), "z"),
    "stylegan_celebahq_age_w_boundary.npy": ("stylegan_celebahq", "age", (), "w"),
    "stylegan_celebahq_eyeglasses_boundary.npy": ("stylegan_celebahq", "eyeglasses", (), "z"),
    "stylegan_celebahq_eyeglasses_w_boundary.npy": ("stylegan_celebahq", "eyeglasses", (), "w"),
    "stylegan_celebahq_gender_boundary.npy": ("stylegan_celebahq", "gender", (), "z"),
    "stylegan_celebahq_gender_w_boundary.npy": ("stylegan_celebahq", "gender", (), "w"),
    "stylegan_celebahq_pose_boundary.npy": ("stylegan_celebahq", "pose", (), "z"),
    "stylegan_celebahq_pose_w_boundary.npy": ("stylegan_celebahq", "pose", (), "w"),
    "stylegan_celebahq_smile_boundary.npy": ("stylegan_celebahq", "smile", (), "z"),
    "stylegan_celebahq_smile_w_boundary.npy": ("stylegan_celebahq", "smile", (), "w"),
    "stylegan_ffhq_age_boundary.npy": ("stylegan_ffhq", "age", (), "z"),
    "stylegan_ffhq_age_c_eyeglasses_boundary.npy": ("stylegan_ffhq", "age", ("eyeglasses",), "z"),
    "stylegan_ffhq_age_c_gender_boundary.npy": ("stylegan_ffhq", "age", ("gender",), "z"),
    "stylegan_ffhq_age_w_boundary.npy": ("stylegan_ffhq", "age", (), "w"),
    "stylegan_ffhq_eyeglasses_boundary.npy": ("stylegan_ffhq", "eyeglasses", (), "z"),
    "stylegan_ffhq_eyeglasses_c_age_boundary.npy": ("stylegan_ffhq", "eyeglasses", ("age",), "z"),
    "stylegan_ffhq_eyeglasses_c_gender_boundary.npy": ("stylegan_ffhq", "eyeglasses", ("gender",), "z"),
    "stylegan_ffhq_eyeglasses_w_boundary.npy": ("stylegan_ffhq", "eyeglasses", (), "w"),
    "stylegan_ffhq_gender_boundary.npy": ("stylegan_ffhq", "gender", (), "z"),
    "stylegan_ffhq_gender_w_boundary.npy": ("stylegan_ffhq", "gender", (), "w"),
    "stylegan_ffhq_pose_boundary.npy": ("stylegan_ffhq", "pose", (), "z"),
    "stylegan_ffhq_pose_w_boundary.npy": ("stylegan_ffhq", "pose", (), "w"),
    "stylegan_ffhq_smile_boundary.npy": ("stylegan_ffhq", "smile", (), "z"),
    "stylegan_ffhq_smile_w_boundary.npy": ("stylegan_ffhq", "smile", (), "w"),
}


@pytest.fixture(scope="module")
def released():
    if not BOUNDARIES.is_dir():
        pytest.skip(f"released InterFaceGAN boundaries not found at {BOUNDARIES}")
    return load_bank(BOUNDARIES)


@needs_boundaries
def test_all_39_files_load_with_model_space_conditions(released):
    files = sorted(p.name for p in BOUNDARIES.glob("*.npy"))
    assert files == sorted(EXPECTED) and len(files) == 39
    assert len(released) == 39
    for fname, (model, name, conds, space) in EXPECTED.items():
        assert parse_interfacegan_name(fname) == {"model": model, "name": name,
                                                  "conditions": conds, "space": space}
        d = released.get(name, model=model, space=space, conditions=conds)
        assert d.conditions == conds and d.source == "interfacegan" and d.stats["file"] == fname
        raw = np.load(BOUNDARIES / fname, allow_pickle=False)
        np.testing.assert_allclose(d.vector, raw.reshape(-1), atol=1e-12)
        assert d.vector.shape == (512,)
    assert released.models() == ["pggan_celebahq", "stylegan_celebahq", "stylegan_ffhq"]
    assert released.names("pggan_celebahq") == ["age", "eyeglasses", "gender", "pose", "quality", "smile"]
    assert released.names("stylegan_ffhq", "w") == ["age", "eyeglasses", "gender", "pose", "smile"]


@needs_boundaries
def test_every_conditional_file_is_reproduced(released):
    conditional = [d for d in released if d.conditions]
    assert len(conditional) == 13
    for stored in conditional:
        def primal(name):
            return released.get(name, model=stored.model, space=stored.space)
        computed = condition(primal(stored.name), [primal(k) for k in stored.conditions])
        assert computed.source == "conditional"  # computed from the primals, not the file
        assert np.abs(computed.vector - stored.vector).max() < 1e-9, stored.describe()
        rev = condition(primal(stored.name), [primal(k) for k in stored.conditions[::-1]])
        assert np.abs(rev.vector - stored.vector).max() < 1e-9
        # The bank hands out the stored entry itself, whatever the order of keep.
        for keep in (list(stored.conditions), list(stored.conditions)[::-1]):
            got = released.direction(stored.name, keep=keep, model=stored.model, space=stored.space)
            assert got is stored


@needs_boundaries
def test_conditional_is_orthogonal_unit_and_falls_back_to_stored(released):
    d = released.direction("age", keep=["gender", "eyeglasses"], model="pggan_celebahq")
    for k in ("gender", "eyeglasses"):
        assert abs(d.vector @ released.get(k, model="pggan_celebahq").vector) < 1e-12
    assert abs(np.linalg.norm(d.vector) - 1) < 1e-12
    # Without its primals, the stored _c_ entry is used.
    only_c = DirectionBank([released.get("age", model="pggan_celebahq", conditions=["gender"])])
    got = only_c.direction("age", keep=["gender"])
    assert got.source == "interfacegan"
    with pytest.raises(EditError, match="gender"):
        only_c.direction("age", keep=["eyeglasses"])


def test_project_out_many_kept_and_degenerate():
    rng = np.random.default_rng(0)
    kept = [rng.normal(size=16) for _ in range(5)]
    kept.append(kept[0] + kept[1])  # rank-deficient set is fine
    v = rng.normal(size=16)
    r = project_out(v, kept)
    assert np.allclose([r @ k for k in kept], 0, atol=1e-12)
    assert abs(np.linalg.norm(r) - 1) < 1e-12
    with pytest.raises(EditError, match="span"):
        project_out(kept[0] + 2 * kept[2], kept)


def test_cosine_matrix_matches_reference_values(released):
    names, m = released.cosine(model="pggan_celebahq")
    i = {n: k for k, n in enumerate(names)}
    # REFERENCE.md section 3: PGGAN Z age.gender 0.49, age.glasses 0.38, gender.glasses 0.52
    assert round(m[i["age"], i["gender"]], 2) == 0.49
    assert round(m[i["age"], i["eyeglasses"]], 2) == 0.38
    assert round(m[i["gender"], i["eyeglasses"]], 2) == 0.52
    np.testing.assert_allclose(np.diag(m), 1)
    names_w, mw = released.cosine(model="stylegan_ffhq", space="w")
    assert np.abs(mw - np.eye(len(names_w))).max() <= 0.12
    with pytest.raises(EditError, match="several models"):
        released.cosine()


def test_own_format_roundtrip_and_no_pickles(tmp_path):
    rng = np.random.default_rng(1)
    bank = DirectionBank([
        Direction("smile", rng.normal(size=8), "toy", "w", (0, 1, 2), (), "fit",
                  {"val_accuracy": 0.97, "offset": np.float64(0.5), "n": np.int64(3)}),
        Direction("pose", rng.normal(size=(4, 8)), "toy", "wp", None, (), "idinvert"),
        Direction("age", rng.normal(size=8), "toy", "z", None, ("smile",), "conditional"),
    ])
    npz, js = save_bank(bank, tmp_path / "toy")
    assert npz.name == "toy.npz" and js.name == "toy.json"
    meta = json.loads(js.read_text())
    assert meta["format"] == "realedit-directions" and len(meta["directions"]) == 3
    with np.load(npz, allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype == np.float64 for k in z.files)
    for src in (tmp_path / "toy.npz", tmp_path / "toy.json", tmp_path / "toy"):
        back = load_bank(src)
        assert len(back) == 3
        for d in bank:
            e = back.get(d.name, model="toy", space=d.space, conditions=d.conditions)
            np.testing.assert_array_equal(e.vector, d.vector)
            assert (e.layers, e.source, e.conditions) == (d.layers, d.source, d.conditions)
    assert back.get("smile", model="toy").stats["offset"] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.json", "toy.npz"]


def test_malformed_bank_files_are_clear_errors(tmp_path):
    bank = DirectionBank([Direction("smile", np.ones(4), "toy", "w")])
    save_bank(bank, tmp_path / "b")
    meta = json.loads((tmp_path / "b.json").read_text())
    # arrays and metadata out of sync
    np.savez(tmp_path / "b.npz", d0=np.arange(4.0))
    with pytest.raises(EditError, match="out of sync"):
        load_bank(tmp_path / "b.json")
    # wrong format tag
    (tmp_path / "c.json").write_text(json.dumps({**meta, "format": "other"}))
    np.savez(tmp_path / "c.npz", d0=np.ones(4) / 2)
    with pytest.raises(EditError, match="not a realedit direction bank"):
        load_bank(tmp_path / "c.json")
    # truncated JSON
    (tmp_path / "d.json").write_text("{\"format\": ")
    np.savez(tmp_path / "d.npz", d0=np.ones(4))
    with pytest.raises(EditError, match="not valid JSON"):
        load_bank(tmp_path / "d.json")
    # missing half
    (tmp_path / "e.json").write_text(json.dumps(meta))
    with pytest.raises(EditError, match="missing"):
        load_bank(tmp_path / "e.json")
    # object arrays inside the npz are refused, not unpickled
    (tmp_path / "f.json").write_text(json.dumps(meta))
    np.savez(tmp_path / "f.npz", d0=np.array([{"x": 1}], dtype=object))
    with pytest.raises(EditError, match="unreadable"):
        load_bank(tmp_path / "f.json")
    # a broken InterFaceGAN-named file
    bad = tmp_path / "stylegan_ffhq_age_w_boundary.npy"
    bad.write_bytes(b"not numpy at all")
    with pytest.raises(EditError, match="not a readable"):
        load_bank(bad)
    np.save(bad, np.zeros((1, 512)))
    with pytest.raises(EditError, match="zero vector"):
        load_bank(bad)
    np.save(bad, np.ones((3, 512)))
    with pytest.raises(EditError, match="shape"):
        load_bank(bad)
    with pytest.raises(EditError, match="no direction bank"):
        load_bank("no-such-model-or-file")


def test_idinvert_layerwise_dicts(tmp_path):
    rng = np.random.default_rng(2)
    v = rng.normal(size=(1, 512))
    d = from_idinvert({"boundary": v, "meta_data": {"manipulate_layers": "0-5"}}, name="age")
    assert d.space == "wp" and d.layers == (0, 1, 2, 3, 4, 5) and d.vector.shape == (512,)
    np.testing.assert_allclose(d.vector, v[0] / np.linalg.norm(v))
    per_layer = rng.normal(size=(1, 14, 512))
    d2 = from_idinvert({"boundary": per_layer, "meta_data": {"manipulate_layers": [2, 3, 4]}},
                       name="gender")
    assert d2.layerwise and d2.vector.shape == (14, 512) and d2.layers == (2, 3, 4)
    np.testing.assert_allclose(np.linalg.norm(d2.vector, axis=1), 1)
    # as idinvert saves it: a pickled dict inside a .npy, read through an allow-list
    path = tmp_path / "expression.npy"
    np.save(path, {"boundary": v, "meta_data": {"manipulate_layers": "2-5"}}, allow_pickle=True)
    d3 = load_idinvert_file(path)
    assert d3.name == "expression" and d3.layers == (2, 3, 4, 5)
    assert load_bank(path).get("expression").layers == (2, 3, 4, 5)
    # a pickle that asks for anything else is refused before it runs
    import os
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array({"boundary": v, "hook": os.getcwd}, dtype=object), allow_pickle=True)
    with pytest.raises(UnsafePickleError):
        load_idinvert_file(evil)


def test_parse_layers():
    assert parse_layers("0-2,5") == (0, 1, 2, 5)
    assert parse_layers(None) is None and parse_layers("all") is None
    assert parse_layers(3) == (3,) and parse_layers([4, 1, 1]) == (1, 4)
    with pytest.raises(EditError):
        parse_layers("a-b")


def test_lookup_errors_list_what_is_available(released):
    with pytest.raises(EditError, match=r"unknown attribute 'agee'.*available: age, eyeglasses"):
        released.direction("agee", model="stylegan_ffhq", space="w")
    with pytest.raises(EditError, match="several models"):
        released.direction("age")
    with pytest.raises(EditError, match="several spaces"):
        released.direction("age", model="stylegan_ffhq")
    with pytest.raises(EditError, match=r"no W direction \(only Z\)"):
        released.direction("quality", model="pggan_celebahq", space="w")
    with pytest.raises(EditError, match="both edit and keep"):
        released.direction("age", keep=["age"], model="pggan_celebahq")
    with pytest.raises(EditError, match="no directions for model 'nope'"):
        released.direction("age", model="nope")


def test_condition_refuses_other_model_or_space():
    a = Direction("a", [1.0, 0, 0], "m1", "w")
    with pytest.raises(EditError, match="different model"):
        condition(a, [Direction("b", [1.0, 1, 0], "m2", "w")])
    with pytest.raises(EditError, match="different model"):
        condition(a, [Direction("b", [1.0, 1, 0], "m1", "z")])


@needs_boundaries
def test_registered_model_gets_its_interfacegan_bank_under_its_own_name():
    bank = load_bank("stylegan-ffhq-1024")  # registry: boundaries = "stylegan_ffhq"
    assert bank.models() == ["stylegan-ffhq-1024"] and len(bank) == 14
    assert bank.names(space="w") == ["age", "eyeglasses", "gender", "pose", "smile"]
    raw = np.load(BOUNDARIES / "stylegan_ffhq_smile_w_boundary.npy")[0]
    np.testing.assert_array_equal(bank.get("smile", space="w").vector, raw)


def test_registered_model_with_a_fitted_bank(tmp_path, monkeypatch):
    fitted = DirectionBank([Direction("smile", np.ones(4), "celeba64-run3", "w", source="fit")])
    save_bank(fitted, tmp_path / "fitted")
    reg = tmp_path / "reg.toml"
    reg.write_text('schema = 1\n[weights."toy-gen"]\nfile = "toy.pt"\nkind = "stylegan2"\n'
                   f'directions = "{tmp_path / "fitted"}"\n'
                   '[weights."toy-bare"]\nfile = "bare.pt"\nkind = "stylegan2"\n')
    monkeypatch.setenv("REALEDIT_REGISTRY", str(reg))
    got = load_bank("toy-gen")
    assert got.models() == ["toy-gen"] and got.get("smile").source == "fit"
    with pytest.raises(EditError, match="no direction bank for toy-bare: fit one"):
        load_bank("toy-bare")


def test_stored_conditional_entry_wins_in_a_preferred_space():
    """A W+ entry learned with gender kept is what a W+ edit keeping gender gets; a W edit,
    or a W+ edit that keeps something else, still gets the projection of the W primals."""
    rng = np.random.default_rng(3)
    age, gender, smile = (Direction(n, rng.normal(size=8), "m", "w") for n in ("age", "gender", "smile"))
    learned = Direction("age", rng.normal(size=(4, 8)), "m", "wp", (1, 2), ("gender",), "learned")
    bank = DirectionBank([age, gender, smile, learned])
    assert bank.direction("age", keep=["gender"], model="m", space=("wp", "w")) is learned
    got = bank.direction("age", keep=["gender"], model="m", space="w")
    assert got.source == "conditional" and abs(got.vector @ gender.vector) < 1e-12
    got = bank.direction("age", keep=["smile"], model="m", space=("wp", "w"))
    assert got.space == "w" and abs(got.vector @ smile.vector) < 1e-12
    # Without keep, the primal W direction is used as before.
    assert bank.direction("age", model="m", space=("wp", "w")) is age
