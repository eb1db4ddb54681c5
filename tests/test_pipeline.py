"""Editor API end to end on a real photo (astronaut) with a tiny self-built model.

The model is random, so these tests check the plumbing and the guarantees (size, mode, pixels
outside the mask, no re-inversion, clear errors), not edit quality: that is measured on the
embedded model in test_embedded_model.py and by `realedit eval`.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from realedit.errors import EditError, NoFaceError
from realedit.pipeline import Editor, parse_edits, transfer_detail

from tiny_model import make_tiny_model

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def editor(tiny_model):
    return Editor.from_pretrained(str(tiny_model), inverter="optimize", steps=3)


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    p = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(p, quality=95)
    return p


def test_edit_keeps_size_mode_and_outside_pixels(editor, astronaut):
    before = np.asarray(Image.open(astronaut).convert("RGB"))
    res = editor.edit(astronaut, {"age": 3.0}, keep=["gender"])
    out = np.asarray(res.image.convert("RGB"))
    assert res.image.size == Image.open(astronaut).size
    assert res.image.mode == "RGB"
    assert len(res.faces) == 1
    outside = res.mask == 0
    assert outside.mean() > 0.5
    assert np.array_equal(out[outside], before[outside])
    inside = res.mask > 0.5
    assert np.abs(out[inside].astype(int) - before[inside]).mean() > 0.5


def test_zero_edit_changes_nothing(editor, astronaut):
    before = np.asarray(Image.open(astronaut).convert("RGB"))
    res = editor.edit(astronaut, {"smile": 0.0})
    assert np.array_equal(np.asarray(res.image), before)


def test_apply_reuses_the_inversion(editor, astronaut, monkeypatch):
    inverted = editor.invert(astronaut)
    calls = []
    monkeypatch.setattr(editor.inverter, "invert", lambda *a, **k: calls.append(1))
    # residual: its change is linear in the generator's, so opposite edits are opposite
    # (warp's motion on this random model is noise; test_flow checks its direction)
    r1 = editor.apply(inverted, {"age": 1.0}, detail="residual")
    r2 = editor.apply(inverted, {"age": -1.0}, detail="residual")
    assert calls == []
    a, b = np.asarray(r1.image), np.asarray(r2.image)
    assert not np.array_equal(a, b)
    # Opposite edits move the face in opposite directions around the photo.
    src = inverted.photo.rgb.astype(int)
    inside = r1.mask > 0.5
    d1 = (a.astype(int) - src)[inside].astype(float)
    d2 = (b.astype(int) - src)[inside].astype(float)
    corr = np.corrcoef(d1.ravel(), d2.ravel())[0, 1]
    assert corr < -0.5, corr


def count_synthesis(G) -> list:
    """A list that grows by one at every forward of G's synthesis network."""
    calls: list = []
    G.synthesis.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_apply_synthesises_the_before_image_once(editor, astronaut):
    import copy

    inverted = editor.invert(astronaut)
    src = inverted.photo.rgb
    G = copy.deepcopy(editor.G)  # counted, and the hook leaves the shared editor's G alone
    inverted.faces[0].generator = G
    calls = count_synthesis(G)
    first = editor.apply(inverted, {"age": 1.0})
    assert len(calls) == 2  # before and after
    again = editor.apply(inverted, {"age": 1.0})
    assert len(calls) == 3  # only the edited image: the before image is kept
    assert np.allclose(np.asarray(first.image, np.float32), np.asarray(again.image, np.float32),
                       atol=1)
    zero = editor.apply(inverted, {"age": 0.0})
    assert len(calls) == 3  # a zero edit synthesises nothing, and changes nothing
    assert np.array_equal(zero.photo.rgb, src)
    # another generator for the same face has its own before image
    other = copy.deepcopy(editor.G)
    inverted.faces[0].generator = other
    other_calls = count_synthesis(other)
    editor.apply(inverted, {"age": 1.0})
    assert len(other_calls) == 2 and len(calls) == 3


def test_unknown_attribute_lists_available(editor, astronaut):
    with pytest.raises(EditError, match="age"):
        editor.edit(astronaut, {"beard": 1.0})
    with pytest.raises(EditError):
        editor.edit(astronaut, {"age": 1.0}, keep=["hat"])


def test_no_face_is_a_clear_error(editor, tmp_path):
    p = tmp_path / "blank.png"
    Image.new("RGB", (200, 150), (120, 130, 140)).save(p)
    with pytest.raises(NoFaceError, match="no face"):
        editor.edit(p, {"age": 1.0})


def test_rgba_photo_keeps_alpha(editor, tmp_path):
    rgba = np.dstack([skimage_data.astronaut(), np.full((512, 512), 200, np.uint8)])
    p = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(p)
    res = editor.edit(p, {"age": 5.0})
    assert res.image.mode == "RGBA"
    assert np.array_equal(np.asarray(res.image)[:, :, 3], rgba[:, :, 3])


def test_parse_edits():
    assert parse_edits(["age=+3", "smile=-1.5", "age=1"]) == {"age": 4.0, "smile": -1.5}
    for bad in ["age", "age=abc", "=3", "age=nan"]:
        with pytest.raises(EditError):
            parse_edits([bad])


def test_transfer_detail_residual_is_exact_for_no_change():
    crop = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    g = torch.rand(3, 32, 32) * 2 - 1
    assert np.array_equal(transfer_detail(crop, g, g), crop)
    brighter = transfer_detail(crop, g, g + 0.2)
    assert brighter.astype(int).mean() > crop.astype(int).mean() + 20
    replaced = transfer_detail(crop, g, g, mode="replace")
    assert replaced.shape == crop.shape


def test_inverter_choice_and_its_fallbacks():
    """realedit.assemble.choose_inverter: the default per model, the fallbacks its parts force,
    and the combinations refused before anything loads."""
    from realedit.assemble import choose_inverter
    from realedit.errors import UsageError, WeightsError

    def pick(asked, enc=True, psp=False, steps=None):
        return choose_inverter(asked, has_encoder=enc, psp_encoder=psp, steps=steps, name="m")

    assert pick(None) == "hybrid" and pick(None, psp=True) == "encoder"
    assert pick(None, enc=False) == "optimize" and pick("hybrid", enc=False) == "optimize"
    assert pick("hybrid", steps=0) == "encoder" and pick("pti", steps=0) == "pti"
    assert pick("optimize", steps=3) == "optimize"
    with pytest.raises(UsageError, match="needs at least 1 step"):
        pick("optimize", steps=0)
    with pytest.raises(UsageError, match="no encoder: give at least 1 step"):
        pick("pti", enc=False, steps=0)
    with pytest.raises(UsageError, match="steps must be >= 0"):
        pick(None, steps=-1)
    with pytest.raises(WeightsError, match="has no encoder"):
        pick("encoder", enc=False)


def test_every_detail_mode_has_one_paste_strategy(editor):
    """The names the CLI offers (realedit.args) are exactly the strategies blend/transfer.py
    has, and an unknown mode or blend is refused before any work."""
    from realedit.args import DETAIL_MODES
    from realedit.blend import transfer
    from realedit.errors import UsageError

    assert set(transfer.STRATEGIES) == set(DETAIL_MODES)
    for bad in (dict(detail="blur"), dict(blend="feather")):
        with pytest.raises(UsageError, match="unknown"):
            transfer.strategy(**{"detail": "warp", "blend": "alpha", **bad})
        with pytest.raises(UsageError, match="unknown"):
            editor.apply(None, {"age": 1.0}, **bad)  # refused before the inversion is read
