"""detail="warp" through Editor.apply and `realedit --detail warp` (tiny random model: plumbing
and guarantees), and the broken-face refusal on the embedded model (age=+1000)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realedit.errors import EditError
from realedit.pipeline import Editor

from tiny_model import make_tiny_model

skimage_data = pytest.importorskip("skimage.data")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def editor(tmp_path_factory):
    return Editor.from_pretrained(str(make_tiny_model(tmp_path_factory.mktemp("model"))),
                                  inverter="optimize", steps=2)


@pytest.fixture(scope="module")
def inverted(editor):
    return editor.invert(skimage_data.astronaut())


def test_warp_mode_edits_inside_the_mask_only(editor, inverted):
    src = inverted.photo.rgb
    res = editor.apply(inverted, {"age": 3.0}, detail="warp")
    out = res.photo.rgb
    outside = res.mask == 0
    assert outside.mean() > 0.5
    assert np.array_equal(out[outside], src[outside])
    assert np.abs(out[res.mask > 0.5].astype(int) - src[res.mask > 0.5]).mean() > 0.5
    face = res.faces[0]
    assert face.crop_after.size == face.crop_before.size
    # beyond the face mask that residual mode pastes through, warp pastes only where its flow
    # moves pixels (an ear or hair moving with the face), and only close to the face
    import cv2

    residual = editor.apply(inverted, {"age": 3.0}, detail="residual")
    extra = res.mask > residual.mask + 0.02
    assert extra.mean() < 0.1  # a tiny random model here: its flow spreads wider than a face model's
    if extra.any():
        gap = cv2.distanceTransform((residual.mask == 0).astype(np.uint8), cv2.DIST_L2, 5)
        assert gap[extra].max() < 0.3 * face.face.size  # face.size: the crop's side, photo px


def test_warp_mode_zero_edit_is_the_same_photo(editor, inverted):
    res = editor.apply(inverted, {"smile": 0.0}, detail="warp")
    assert np.array_equal(res.photo.rgb, inverted.photo.rgb)
    assert not res.mask.any()


def test_warp_with_poisson_blend_keeps_outside_pixels(editor, inverted):
    res = editor.apply(inverted, {"age": 3.0}, detail="warp", blend="poisson")
    outside = res.mask == 0
    assert np.array_equal(res.photo.rgb[outside], inverted.photo.rgb[outside])
    assert not np.array_equal(res.photo.rgb, inverted.photo.rgb)


def test_cli_detail_warp(editor, tmp_path):
    from click.testing import CliRunner

    from realedit.cli import cli

    photo = tmp_path / "astro.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    model = editor.model_name
    res = CliRunner().invoke(cli, [str(photo), "--attr", "age=+3", "--detail", "warp", "--model", model,
                                   "--inverter", "optimize", "--steps", "1", "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    out = np.asarray(Image.open(tmp_path / "o" / "astro_edited.png"))
    assert out.shape == skimage_data.astronaut().shape
    assert not np.array_equal(out, skimage_data.astronaut())
    res = CliRunner().invoke(cli, ["edit", "--help"])
    assert "warp" in res.output


@pytest.fixture(scope="module")
def embedded():
    if not (ROOT / "weights" / "realedit-celeba64.pt").is_file():
        pytest.skip("embedded model not in this checkout")
    ed = Editor.from_pretrained("realedit-celeba64", inverter="encoder")
    return ed, ed.invert(ROOT / "demo" / "photos" / "astronaut.jpg")


@pytest.mark.parametrize("amount", [1000.0, -1000.0])
def test_huge_edit_is_refused_not_pasted(embedded, amount):
    ed, inv = embedded
    for detail in ("residual", "warp"):
        with pytest.raises(EditError, match=r"too large: the generated face is broken"):
            ed.apply(inv, {"age": amount}, detail=detail)


@pytest.mark.parametrize("edit", [{"age": 3.0}, {"age": -6.0}, {"smile": 6.0}, {"pose": 3.0},
                                  {"gender": -6.0}, {"pose": -6.0}])
def test_normal_edits_pass_the_guard(embedded, edit):
    ed, inv = embedded
    res = ed.apply(inv, edit, detail="warp")
    assert not np.array_equal(res.photo.rgb, inv.photo.rgb)


def test_the_refusal_names_the_calibrated_range(embedded):
    ed, inv = embedded
    with pytest.raises(EditError) as exc:
        ed.apply(inv, {"pose": 1000.0})
    limit = ed.bank.direction("pose", model=ed.model_name).sensible_range
    assert f"pose within ±{limit:g}" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_cli_refuses_a_huge_edit_with_exit_6_and_writes_nothing(embedded, tmp_path):
    from click.testing import CliRunner

    from realedit.cli import cli

    dst = tmp_path / "out.jpg"
    res = CliRunner().invoke(cli, [str(ROOT / "demo" / "photos" / "astronaut.jpg"), "--attr", "age=+1000",
                                   "--inverter", "encoder", "--model", "realedit-celeba64", "-o", str(dst), "-q"])
    assert res.exit_code == 6, res.output
    assert "generated face is broken" in res.output and "Traceback" not in res.output
    assert not dst.exists()
