"""What `realedit` can know before inverting a photo it checks before (issue 23): where the
outputs go, faces left out (each reported, with its reason), the detector to try when none is
found, and honest per-photo times in a folder run. Tiny model, encoder only (--steps 0)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bad_inputs import make
from realedit.cli import cli

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "demo" / "photos" / "astronaut.jpg"


def edit_args(model: Path, *extra) -> list[str]:
    return ["--model", str(model), "--steps", "0", "-q", *extra]


def invoke(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


@pytest.fixture
def unwritable(monkeypatch):
    """Folders to treat as read-only (root ignores permission bits, so tests as root could not
    make one): os.access answers no for them, as it does for a read-only mount."""
    folders: set[str] = set()
    real = os.access

    def access(path, mode, *a, **k):
        if mode & os.W_OK and os.path.realpath(path) in folders:
            return False
        return real(path, mode, *a, **k)

    monkeypatch.setattr(os, "access", access)
    return lambda p: folders.add(os.path.realpath(p))


@pytest.fixture
def count_inversions(monkeypatch):
    from realedit.pipeline import Editor

    seen = []
    real = Editor.invert_prepared

    def invert_prepared(self, prepared, **kw):
        seen.extend(str(p.photo.path) for p in prepared)
        return real(self, prepared, **kw)

    monkeypatch.setattr(Editor, "invert_prepared", invert_prepared)
    return seen


def test_photo_in_a_read_only_folder_fails_before_the_model_loads(tmp_path, model, unwritable,
                                                                  count_inversions):
    photo = tmp_path / "ro" / "face.jpg"
    photo.parent.mkdir()
    make.face_photo(0).save(photo, quality=90)
    unwritable(photo.parent)
    res = invoke(photo, "--attr", "age=+1", *edit_args(model))
    assert res.exit_code == 7, res.output
    assert re.search(r"ro.*not writable", res.output)
    assert "model:" not in res.output and count_inversions == []  # nothing loaded or inverted
    assert sorted(p.name for p in photo.parent.iterdir()) == ["face.jpg"]


def test_photo_in_a_folder_without_permission(tmp_path, model):
    """The same with real permission bits (skipped where they do not bind, e.g. as root)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    make.face_photo(0).save(ro / "face.jpg", quality=90)
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running with rights that ignore folder permissions (root)")
        res = invoke(ro / "face.jpg", "--attr", "age=+1", *edit_args(model))
        assert res.exit_code == 7 and "model:" not in res.output, res.output
    finally:
        ro.chmod(0o700)


def test_a_batch_photo_in_a_read_only_folder_fails_alone_without_inversion(
        tmp_path, model, unwritable, count_inversions):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        make.face_photo(0).save(tmp_path / sub / "face.jpg", quality=90)
    unwritable(tmp_path / "a")
    res = invoke(tmp_path / "a" / "face.jpg", tmp_path / "b" / "face.jpg", "--attr", "age=+1",
                 *edit_args(model))
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.output.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "[1/2]" in errors[0] and "not writable" in errors[0]
    assert count_inversions == [str(tmp_path / "b" / "face.jpg")]
    assert (tmp_path / "b" / "face_edited.jpg").is_file()
    assert not (tmp_path / "a" / "face_edited.jpg").exists()


def test_folder_run_reports_each_photos_share_of_the_batch(tmp_path, model):
    """Before: the first photo was charged the whole batch's inversion ("61.8 s") and the others
    their paste ("0.1 s"). Same photos, same work: about the same time each."""
    for i in range(4):
        make.face_photo(0).save(tmp_path / f"p{i}.jpg", quality=90)
    res = invoke(tmp_path, "--attr", "age=+1", "-o", tmp_path / "out",
                 *edit_args(model, "--batch", "4"))
    assert res.exit_code == 0, res.output
    times = [float(t) for t in re.findall(r"edited in ([0-9.]+) s", res.output)]
    assert len(times) == 4 and min(times) > 0, res.output
    # The bug charged one photo ~99 % of the total. Equal shares are 25 %; a loaded machine can
    # stretch one photo's own paste (a 3x-of-the-fastest rule failed at load 11-13).
    assert max(times) < 0.6 * sum(times), times
    assert "its share of" in res.output and "4 faces inverted together" in res.output


def test_faces_left_out_are_reported_with_their_reason(tmp_path, model):
    """The astronaut's mission patch is detected and rejected as a non-face: with --faces all
    that is said, not silently dropped."""
    src = tmp_path / "astronaut.jpg"
    shutil.copy(ASTRONAUT, src)
    res = invoke(src, "--attr", "age=+1", "--faces", "all", *edit_args(model))
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if "rejected as a non-face" in ln]
    assert len(lines) == 1 and "landmark quality" in lines[0] and "not edited" in lines[0]


def test_faces_the_policy_did_not_pick_are_counted(tmp_path, model):
    from PIL import Image

    pair = Image.new("RGB", (512, 256), (90, 100, 110))
    pair.paste(make.face_photo(0), (0, 0))
    pair.paste(make.face_photo(1), (256, 0))
    pair.save(tmp_path / "pair.jpg", quality=92)
    res = invoke(tmp_path / "pair.jpg", "--attr", "age=+1", *edit_args(model))
    assert res.exit_code == 0, res.output
    assert "1 other face not edited (--faces all" in res.output


def test_no_face_points_to_the_cnn_detector(tmp_path, model):
    from PIL import Image

    Image.new("RGB", (300, 200), (120, 130, 140)).save(tmp_path / "wall.jpg")
    res = invoke(tmp_path / "wall.jpg", "--attr", "age=+1", *edit_args(model))
    assert res.exit_code == 4, res.output
    assert "no face found" in res.output and "--detector cnn" in res.output
    res = invoke(tmp_path / "wall.jpg", "--attr", "age=+1", "--detector", "cnn", *edit_args(model))
    assert res.exit_code == 4 and "--detector cnn" not in res.output, res.output


@pytest.mark.parametrize("command", ["edit", "batch", "serve"])
def test_detector_option_everywhere(command):
    res = CliRunner().invoke(cli, [command, "--help"])
    assert res.exit_code == 0 and "--detector [hog|cnn]" in res.output


def test_api_takes_a_detector_kind(model):
    from realedit.align import Detector
    from realedit.errors import UsageError
    from realedit.pipeline import Editor

    ed = Editor.from_pretrained(str(model), inverter="encoder", detector="cnn")
    assert isinstance(ed.detector, Detector) and ed.detector.kind == "cnn"
    with pytest.raises(UsageError):
        Editor.from_pretrained(str(model), inverter="encoder", detector="haar")


def _shared_photo(name: str) -> Path:
    from datapaths import SHARED

    p = SHARED / "data" / "celebahq" / name
    if not p.is_file():
        pytest.skip("needs ../shared/data/celebahq")
    return p


@pytest.mark.slow
def test_cnn_finds_a_face_hog_misses(tmp_path, model):
    """CelebA-HQ 000434 (a face filling the frame, hard side light): HOG finds nothing, the
    CNN finds the face, and `--detector cnn` edits it."""
    from PIL import Image

    src = tmp_path / "000434.jpg"
    Image.open(_shared_photo("000434.jpg")).resize((512, 512), Image.LANCZOS).save(src, quality=92)
    res = invoke(src, "--attr", "age=+1", *edit_args(model))
    assert res.exit_code == 4 and "--detector cnn" in res.output, res.output
    res = invoke(src, "--attr", "age=+1", "--detector", "cnn", *edit_args(model))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "000434_edited.jpg").is_file()
