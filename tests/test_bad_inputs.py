"""Bad input to `realedit PHOTO... --attr ...` and to the Editor API.

Every case checks the four promises: one clear line (never a traceback), the documented exit
code (``exit_code`` of each class in realedit/errors.py; click's usage errors 2; a batch with a
failure 1), nothing half-written (no temp files, no output for a failed photo, no output folder
when the run stops before any photo), and the input files unchanged byte for byte.

The corpus is generated into temp dirs by tests/bad_inputs/make.py. The model is a 32 px
StyleGAN2 with an untrained encoder, so `--steps 0` (encoder only) edits a photo in ~0.2 s.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageOps

from bad_inputs import make
from realedit.cli import cli
from realedit.edit import Direction, apply_edits
from realedit.errors import EditError, ImageError, UsageError


FORMATS = {".png": "PNG", ".jpg": "JPEG", ".tif": "TIFF", ".gif": "GIF", ".webp": "WEBP",
           ".bmp": "BMP"}
TMP_PATTERNS = (re.compile(r"^\..*\.(tmp|part)$"), re.compile(r".*\.tmp$"))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    make.write_photos(folder)
    return folder


@pytest.fixture
def face(tmp_path, corpus) -> Path:
    """A fresh folder holding one good face photo."""
    d = tmp_path / "in"
    d.mkdir()
    p = d / "face.jpg"
    make.face_photo(0).save(p, quality=90)
    return p


# ----------------------------------------------------------------------------- helpers

def digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file() and not p.is_symlink()}


def temp_leftovers(folder: Path) -> list[str]:
    return [str(p) for p in Path(folder).rglob("*")
            if any(rx.match(p.name) for rx in TMP_PATTERNS)]


def run(args, *, watch=(), base=None) -> "object":
    """Invoke `realedit ARGS` in-process; check no traceback, inputs under ``watch`` unchanged
    and no temp files left under them."""
    watch = [Path(w) for w in watch]
    before = {}
    for w in watch:
        before.update(digest(w))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = CliRunner().invoke(cli, [str(a) for a in args] + list(base or []))
    # Pillow's complaints about a photo's metadata would be stray lines on the terminal.
    assert not [w for w in caught if "PIL" in w.filename], [str(w.message) for w in caught]
    exc = res.exception
    assert exc is None or isinstance(exc, SystemExit), f"escaped exception {exc!r}\n{res.output}"
    assert "Traceback" not in res.output, res.output
    for path, h in before.items():
        assert Path(path).is_file(), f"input {path} disappeared"
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == h, f"input {path} changed"
    for w in watch:
        assert temp_leftovers(w) == [], temp_leftovers(w)
    return res


def error_lines(res) -> list[str]:
    return [ln for ln in res.output.splitlines() if re.search(r"(^|: )(Error|error):", ln)]


def assert_fails(res, code: int, pattern: str):
    """Exit ``code`` and exactly one error line matching ``pattern``."""
    lines = error_lines(res)
    assert res.exit_code == code, f"exit {res.exit_code}, want {code}\n{res.output}"
    assert len(lines) == 1, res.output
    assert re.search(pattern, lines[0], re.I), (pattern, lines[0])
    assert "internal error" not in res.output
    return lines[0]


def edit_args(model: Path, *extra) -> list[str]:
    return ["--model", str(model), "--steps", "0", "-q", *extra]


def files_in(folder: Path) -> set[str]:
    return {p.name for p in Path(folder).iterdir()}


# ----------------------------------------------------------------------------- photo files

@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # the test's own look at broken EXIF
@pytest.mark.parametrize("case", make.PHOTO_CASES, ids=[c.name for c in make.PHOTO_CASES])
def test_photo_file(case, corpus, model, tmp_path):
    """`realedit FILE --attr age=+5`: edited (same size and mode) or one line with the
    documented code, nothing written beside the photo."""
    d = tmp_path / "in"
    d.mkdir()
    src = d / case.name
    shutil.copyfile(corpus / case.name, src)
    res = run([src, "--attr", "age=+5", *edit_args(model)], watch=[d])
    out = d / f"{src.stem}_edited{src.suffix}"
    if case.code:
        assert_fails(res, case.code, case.message)
        assert files_in(d) == {case.name}
        return
    assert res.exit_code == 0, res.output
    assert error_lines(res) == []
    assert files_in(d) == {case.name, out.name}
    check_edited_photo(case.name, src, out)


def _pixels(img: Image.Image) -> np.ndarray:
    """HxWxC values on the 0..255 scale; a float ("F") image holds 0..1, which Pillow's RGB
    conversion would truncate to 0 or 1, hiding any edit."""
    if img.mode == "F":
        return np.asarray(img, np.float64)[:, :, None] * 255
    return np.asarray(img.convert("RGB")).astype(int)


def check_edited_photo(name: str, src: Path, out: Path) -> None:
    """Same displayed size and mode as the input; alpha kept; upright; something edited."""
    a, b = Image.open(src), Image.open(out)
    upright = ImageOps.exif_transpose(Image.open(src))
    assert b.size == upright.size
    assert b.getexif().get(0x0112, 1) == 1
    expected_mode = {"gray.png": "L", "gray.jpg": "L", "gray_alpha.png": "LA", "cmyk.jpg": "CMYK",
                     "rgba.png": "RGBA", "palette.png": "P", "palette_transparent.png": "P",
                     "bilevel.png": "1", "float.tif": "F", "animated.gif": "P"}
    if name == "gray16.png":
        assert b.mode in ("I;16", "I"), b.mode
        assert np.asarray(b).max() > 255  # still 16-bit values, not 8-bit ones in a 16-bit box
    else:
        assert b.mode == expected_mode.get(name, "RGB"), b.mode
    assert b.format == FORMATS[out.suffix.lower()]
    if a.mode in ("RGBA", "LA", "PA"):
        assert np.array_equal(np.asarray(a.getchannel("A")), np.asarray(b.getchannel("A")))
    if name == "palette_transparent.png":
        assert b.info.get("transparency") == a.info.get("transparency")
    before, after = _pixels(upright), _pixels(b)
    diff = np.abs(after - before).max(axis=2)
    assert diff.max() > 0, "nothing was edited"
    if name.startswith("exif_rot"):
        # The output matches the upright view, not the stored (turned) pixels.
        stored = np.asarray(a.convert("RGB")).astype(int)
        if stored.shape == after.shape:
            assert np.abs(after - before).mean() < 0.5 * np.abs(after - stored).mean()
    if out.suffix in (".png", ".tif", ".bmp") and not name.startswith("palette"):
        # Lossless output: the edit stays on the face, the border of the canvas is untouched.
        assert not diff[:8].any() and not diff[-8:].any()


def test_corpus_is_big_enough():
    cases = len(make.PHOTO_CASES) + len(make.MODEL_CASES) + len(ARG_CASES) + len(INPUT_CASES)
    assert cases >= 40, cases


@pytest.mark.slow
def test_crowd_of_30_faces(corpus, model, tmp_path):
    """30 faces: the default edits the largest only; --faces all edits every one of them."""
    src = corpus / "crowd30.jpg"
    for faces, n in (("largest", 1), ("all", 30)):
        out = tmp_path / faces
        res = run([src, "--attr", "age=+5", "--faces", faces, "-o", out, *edit_args(model)],
                  watch=[corpus])
        assert res.exit_code == 0, res.output
        assert re.search(rf"\b{n} faces? edited", res.output), res.output
        assert files_in(out) == {"crowd30_edited.jpg"}
        assert Image.open(out / "crowd30_edited.jpg").size == Image.open(src).size
    res = run([src, "--attr", "age=+1", "--faces", "30", "-o", tmp_path / "idx", *edit_args(model)],
              watch=[corpus])
    assert_fails(res, 4, r"face index 30 .* only 30")
    assert not (tmp_path / "idx").exists()


# ----------------------------------------------------------------------------- arguments

# (id, extra arguments, exit code, message pattern). The photo is one good face.
ARG_CASES = [
    ("unknown-attribute", ["--attr", "beard=+1"], 2, r"unknown attribute 'beard'.*age, gender, smile"),
    ("amount-not-a-number", ["--attr", "age=abc"], 2, r"'abc' is not a number"),
    ("amount-empty", ["--attr", "age="], 2, r"not a number"),
    ("amount-nan", ["--attr", "age=nan"], 2, r"finite"),
    ("amount-inf", ["--attr", "age=-inf"], 2, r"finite"),
    ("amount-overflows", ["--attr", "age=1e300"], 2, r"too large"),
    ("amount-far-beyond-the-range", ["--attr", "age=+1000"], 2, r"too large: amounts beyond ±9"),
    ("amount-overflows-float32", ["--attr", "age=1e39", "--attr", "smile=1"], 2, r"too large"),
    ("no-equals", ["--attr", "age"], 2, r"NAME=AMOUNT"),
    ("no-name", ["--attr", "=3"], 2, r"NAME=AMOUNT"),
    ("no-attr", [], 2, r"--attr"),
    ("unknown-keep", ["--attr", "age=+1", "--keep", "hat"], 2, r"hat.*available: age, gender, smile"),
    ("keep-the-edited", ["--attr", "age=+1", "--keep", "age"], 2, r"both edit and keep 'age'"),
    ("keep-the-edited-2", ["--attr", "age=+1", "--attr", "smile=1", "--keep", "smile"], 2,
     r"both edit and keep 'smile'"),
    ("faces-index-too-big", ["--attr", "age=+1", "--faces", "5"], 4, r"face index 5 .* only 1"),
    ("faces-word", ["--attr", "age=+1", "--faces", "abc"], 2, r"'largest', 'all' or an index"),
    ("faces-negative", ["--attr", "age=+1", "--faces", "-1"], 2, r"'largest', 'all' or an index"),
    ("steps-negative", ["--attr", "age=+1", "--steps", "-1"], 2, r"--steps"),
    ("steps-word", ["--attr", "age=+1", "--steps", "many"], 2, r"--steps"),
    ("steps-zero-optimize", ["--attr", "age=+1", "--steps", "0", "--inverter", "optimize"], 2,
     r"at least 1 step"),
    ("space-invalid", ["--attr", "age=+1", "--space", "s"], 2, r"--space"),
    ("space-z-without-z-directions", ["--attr", "age=+1", "--space", "z"], 2, r"no Z direction"),
    ("inverter-invalid", ["--attr", "age=+1", "--inverter", "magic"], 2, r"--inverter"),
    ("blend-invalid", ["--attr", "age=+1", "--blend", "smudge"], 2, r"--blend"),
    ("detail-invalid", ["--attr", "age=+1", "--detail", "more"], 2, r"--detail"),
    ("unknown-option", ["--attr", "age=+1", "--strength", "3"], 2, r"No such option"),
]


@pytest.mark.parametrize("args,code,pattern", [c[1:] for c in ARG_CASES], ids=[c[0] for c in ARG_CASES])
def test_bad_arguments(args, code, pattern, face, model, tmp_path):
    out = tmp_path / "out"
    base = ["--model", str(model), "-q"] + ([] if "--steps" in args else ["--steps", "0"])
    res = run([face, *args, "-o", out], watch=[face.parent], base=base)
    assert_fails(res, code, pattern)
    assert files_in(face.parent) == {"face.jpg"}
    assert not out.exists()  # nothing written: not even the output folder


def test_no_photos_given(model):
    res = run(["edit", "--attr", "age=+1", *edit_args(model)])
    assert_fails(res, 2, r"Missing argument 'PHOTOS")


# (id, how to build the PHOTOS argument in tmp_path, exit code, message pattern)
def _empty_dir(t: Path) -> str:
    (t / "empty").mkdir()
    return str(t / "empty")


def _dir_without_images(t: Path) -> str:
    (t / "docs").mkdir()
    (t / "docs" / "notes.txt").write_text("not a photo")
    (t / "docs" / "sub").mkdir()
    (t / "docs" / "sub" / "deeper.jpg").write_bytes(b"")  # folders are not searched recursively
    return str(t / "docs")


def _folder_named_like_a_photo(t: Path) -> str:
    (t / "album.jpg").mkdir()
    return str(t / "album.jpg")


def _dangling_link(t: Path) -> str:
    (t / "gone.jpg").symlink_to(t / "deleted.jpg")
    return str(t / "gone.jpg")


INPUT_CASES = [
    ("missing-file", lambda t: str(t / "nope.jpg"), 3, r"nope\.jpg: no such file"),
    ("dangling-symlink", _dangling_link, 3, r"gone\.jpg: no such file"),
    ("device-not-a-file", lambda t: os.devnull, 3, r"not a file"),
    ("empty-folder", _empty_dir, 2, r"no photos found"),
    ("folder-without-images", _dir_without_images, 2, r"no photos found"),
    ("glob-matching-nothing", lambda t: str(t / "*.heic"), 2, r"no photos found"),
    ("folder-named-like-a-photo", _folder_named_like_a_photo, 2, r"no photos found"),
]


@pytest.mark.parametrize("build,code,pattern", [c[1:] for c in INPUT_CASES], ids=[c[0] for c in INPUT_CASES])
def test_bad_photo_arguments(build, code, pattern, model, tmp_path):
    target = build(tmp_path)
    res = run([target, "--attr", "age=+1", "-o", tmp_path / "out", *edit_args(model)], watch=[tmp_path])
    assert_fails(res, code, pattern)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- model files

@pytest.fixture(scope="module")
def bad_models(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_models")
    marker = folder / "PWNED"
    return make.write_bad_models(folder, model, marker), marker


@pytest.mark.parametrize("case", make.MODEL_CASES, ids=[c.name for c in make.MODEL_CASES])
def test_bad_model(case, bad_models, face, tmp_path):
    paths, marker = bad_models
    out = tmp_path / "out"
    res = run([face, "--attr", "age=+1", "-o", out, "--model", paths[case.name], "-q"],
              watch=[face.parent, Path(paths["missing"]).parent])
    assert_fails(res, case.code, case.message)
    assert not marker.exists(), "a pickle in a model file was executed"
    assert not out.exists()
    assert files_in(face.parent) == {"face.jpg"}


@pytest.mark.parametrize("name,pattern", [
    ("stylegan2-ffhq-1024", r"not in the cache and REALEDIT_OFFLINE=1 forbids downloading.*place it at"),
    ("dlib-shape-predictor-68", r"not a generator"),
    ("lpips-vgg-head", r"not a generator"),
])
def test_registered_weights_that_cannot_be_used(name, pattern, face, tmp_path, monkeypatch):
    """Official names: not downloaded (offline), or not a generator at all."""
    monkeypatch.setenv("REALEDIT_OFFLINE", "1")
    monkeypatch.setenv("REALEDIT_HOME", str(tmp_path / "home"))
    res = run([face, "--attr", "age=+1", "--model", name, "-o", tmp_path / "out"], watch=[face.parent])
    assert_fails(res, 5, pattern)
    assert not (tmp_path / "out").exists()
    assert not any((tmp_path / "home").rglob("*.part"))


def test_encoder_inverter_without_encoder(model, face, tmp_path):
    noenc = make.copy_model(model, tmp_path / "m", "noenc", bank=True, encoder=False)
    res = run([face, "--attr", "age=+1", "--model", noenc, "--inverter", "encoder",
               "-o", tmp_path / "out"], watch=[face.parent])
    assert_fails(res, 5, r"has no encoder")
    assert not (tmp_path / "out").exists()


def test_z_directions_on_a_wplus_code_cli(face, tmp_path):
    zmodel = make.make_model(tmp_path / "zm", name="zbank", bank_space="z")
    res = run([face, "--attr", "age=+1", "-o", tmp_path / "out", *edit_args(zmodel)], watch=[face.parent])
    assert_fails(res, 2, r"age.*(only Z|Z direction)")


# ----------------------------------------------------------------------------- outputs

def test_output_equal_to_input(face, model):
    for target in (face, f"{face.parent}/../{face.parent.name}/{face.name}"):
        res = run([face, "--attr", "age=+1", "-o", target, *edit_args(model)], watch=[face.parent])
        assert_fails(res, 7, r"refusing to overwrite an input")
        assert files_in(face.parent) == {"face.jpg"}


def test_output_is_a_link_to_the_input(face, model):
    (face.parent / "soft.jpg").symlink_to(face)
    os.link(face, face.parent / "hard.jpg")
    for link in ("soft.jpg", "hard.jpg"):
        res = run([face, "--attr", "age=+1", "-o", face.parent / link, *edit_args(model)],
                  watch=[face.parent])
        assert_fails(res, 7, r"refusing to overwrite an input")
    assert files_in(face.parent) == {"face.jpg", "soft.jpg", "hard.jpg"}


@pytest.mark.parametrize("name", ["edited", "edited.jpg"])
def test_output_folder_is_a_file(name, face, model, tmp_path):
    """Two photos and -o naming an existing file: refused before any work."""
    second = face.parent / "face2.png"
    make.face_photo(1).save(second)
    blocker = tmp_path / name
    blocker.write_bytes(b"keep me")
    res = run([face, second, "--attr", "age=+1", "-o", blocker, *edit_args(model)],
              watch=[face.parent, tmp_path])
    assert_fails(res, 7, r"is a file")
    assert blocker.read_bytes() == b"keep me"


def test_output_folder_below_a_file(face, model, tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder is expected")
    res = run([face, "--attr", "age=+1", "-o", tmp_path / "blocker" / "sub" / "out",
               *edit_args(model)], watch=[face.parent, tmp_path])
    assert_fails(res, 7, r"cannot create output folder")


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_output_folder_in_a_read_only_place(face, model):
    # /proc refuses new folders even to root (chmod does not stop root).
    res = run([face, "--attr", "age=+1", "-o", "/proc/realedit-out", *edit_args(model)],
              watch=[face.parent])
    assert_fails(res, 7, r"/proc/realedit-out")
    assert not Path("/proc/realedit-out").exists()


def test_output_folder_without_write_permission(face, model, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        probe = ro / "probe"
        try:
            probe.write_text("x")
            probe.unlink()
            pytest.skip("running with rights that ignore folder permissions (root)")
        except PermissionError:
            pass
        res = run([face, "--attr", "age=+1", "-o", ro, *edit_args(model)], watch=[face.parent])
        assert_fails(res, 7, r"not writable")
        assert files_in(ro) == set()
    finally:
        ro.chmod(0o700)


@pytest.mark.slow
def test_outputs_never_replace_photos_of_the_batch(face, model):
    """x.jpg and an earlier run's x_edited.jpg given together: x_edited.jpg is an input now."""
    earlier = face.parent / "face_edited.jpg"
    make.face_photo(2).save(earlier, quality=90)
    res = run([face.parent, "--attr", "age=+1", *edit_args(model)], watch=[face.parent])
    assert res.exit_code == 1, res.output
    lines = error_lines(res)
    assert len(lines) == 1 and "face.jpg" in lines[0] and "refusing to overwrite an input" in lines[0]
    assert files_in(face.parent) == {"face.jpg", "face_edited.jpg", "face_edited_edited.jpg"}
    assert "1 of 2 photos edited, 1 failed" in res.output


@pytest.mark.slow
def test_two_photos_with_the_same_output_name(model, tmp_path):
    for sub, i in (("a", 0), ("b", 1)):
        (tmp_path / sub).mkdir()
        make.face_photo(i).save(tmp_path / sub / "x.jpg", quality=90)
    out = tmp_path / "out"
    res = run([tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", "--attr", "age=+1", "-o", out,
               *edit_args(model)], watch=[tmp_path / "a", tmp_path / "b"])
    assert res.exit_code == 1
    lines = error_lines(res)
    assert len(lines) == 1 and "already written for" in lines[0], res.output
    assert files_in(out) == {"x_edited.jpg"}
    # When the first x.jpg fails, its output name is free for the second.
    (tmp_path / "a" / "x.jpg").write_bytes(b"")
    shutil.rmtree(out)
    res = run([tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", "--attr", "age=+1", "-o", out,
               *edit_args(model)], watch=[tmp_path / "a", tmp_path / "b"])
    assert res.exit_code == 1
    lines = error_lines(res)
    assert len(lines) == 1 and "not an image" in lines[0], res.output
    assert files_in(out) == {"x_edited.jpg"}


def test_long_file_names(model, tmp_path):
    """A 240-character name is legal and its outputs (temp files included) fit; at 250 the
    output name would pass the 255-byte limit: one line, code 7, nothing written."""
    d = tmp_path / "in"
    d.mkdir()
    ok, too_long = d / ("x" * 240 + ".png"), d / ("y" * 250 + ".png")
    make.face_photo(0).save(ok)
    shutil.copyfile(ok, too_long)
    out = tmp_path / "out"
    res = run([ok, "--attr", "age=+1", "-o", out, "--compare", "--save-latent", *edit_args(model)],
              watch=[d])
    assert res.exit_code == 0, res.output
    assert {n[240:] for n in files_in(out)} == {"_edited.png", "_compare.png", "_latent.npz"}
    res = run([too_long, "--attr", "age=+1", "-o", tmp_path / "out2", *edit_args(model)], watch=[d])
    assert_fails(res, 7, r"cannot write \(File name too long\)")
    assert not (tmp_path / "out2").exists()  # nothing written: no folder either


def test_failed_write_leaves_nothing(face, model, tmp_path, monkeypatch):
    """The disk fills up half-way through the JPEG: no temp file, no output, code 7."""
    real_save = Image.Image.save

    def full_disk(self, fp, *a, **k):
        if hasattr(fp, "write"):
            fp.write(b"\xff\xd8 partial")
            raise OSError(28, "No space left on device")
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", full_disk)
    out = tmp_path / "out"
    res = run([face, "--attr", "age=+1", "-o", out, *edit_args(model)], watch=[face.parent, out.parent])
    assert_fails(res, 7, r"No space left on device")
    assert not out.exists()  # the folder made for it is gone too


def test_failed_extra_output_removes_the_photo_s_other_outputs(face, model, tmp_path, monkeypatch):
    """--compare fails after the edited photo was written: the photo counts as failed and
    leaves no half set of outputs."""
    import realedit.io as rio
    real = rio.write_image

    def flaky(path, *a, **k):
        if "_compare" in Path(path).name:
            raise rio.OutputError(f"{path}: cannot write PNG (disk quota exceeded)")
        return real(path, *a, **k)

    monkeypatch.setattr(rio, "write_image", flaky)
    out = tmp_path / "out"
    res = run([face, "--attr", "age=+1", "-o", out, "--compare", "--save-latent", *edit_args(model)],
              watch=[face.parent])
    assert_fails(res, 7, r"quota")
    assert not out.exists()


@pytest.mark.slow
def test_unexpected_bug_is_one_line_and_the_batch_goes_on(face, model, tmp_path, monkeypatch):
    from realedit import pipeline

    second = face.parent / "b.png"
    make.face_photo(1).save(second)
    real_apply = pipeline.Editor.apply

    def buggy(self, inverted, *a, **k):
        if inverted.photo.path and inverted.photo.path.name == "face.jpg":
            raise RuntimeError("boom")
        return real_apply(self, inverted, *a, **k)

    monkeypatch.setattr(pipeline.Editor, "apply", buggy)
    out = tmp_path / "out"
    res = run([face, second, "--attr", "age=+1", "-o", out, *edit_args(model)], watch=[face.parent])
    assert res.exit_code == 1
    assert re.search(r"face\.jpg: internal error: RuntimeError: boom \(rerun with --debug", res.output)
    assert files_in(out) == {"b_edited.png"}


def test_debug_shows_the_traceback(face, model, tmp_path):
    bad = face.parent / "bad.jpg"
    bad.write_bytes(b"")
    res = CliRunner().invoke(cli, [str(bad), "--attr", "age=+1", "--debug", *edit_args(model)])
    assert res.exit_code == 3
    assert "Traceback" in res.output and "ImageError" in res.output


# ----------------------------------------------------------------------------- Python API

@pytest.fixture(scope="module")
def editor(model):
    from realedit.pipeline import Editor
    return Editor.from_pretrained(str(model), inverter="hybrid", steps=0)


def test_api_z_direction_on_a_wplus_code(tmp_path):
    """A bank whose directions live in Z cannot move a W+ code: EditError naming the space."""
    from realedit.pipeline import Editor

    zmodel = make.make_model(tmp_path, name="zbank", bank_space="z")
    ed = Editor.from_pretrained(str(zmodel), inverter="hybrid", steps=0)
    photo = make.face_photo(0)
    with pytest.raises(EditError, match=r"(?i)\bZ\b"):
        ed.edit(photo, {"age": 1.0})
    d = ed.bank.get("age", space="z")
    with pytest.raises(EditError, match="is a Z direction"):
        apply_edits(torch.zeros(1, ed.G.num_ws, ed.G.w_dim), "wp", {d: 1.0}, model=ed.model_name)
    with pytest.raises(EditError, match="is a Z direction"):
        ed.edit(photo, {d: 1.0})


def test_api_direction_from_another_model(editor):
    other = Direction("age", np.ones(32), "some-other-model", "w", source="test")
    with pytest.raises(EditError, match="belongs to model 'some-other-model'"):
        editor.edit(make.face_photo(0), {other: 1.0})
    wrong_dim = Direction("age", np.ones(48), editor.model_name, "w", source="test")
    with pytest.raises(EditError, match="another model"):
        editor.edit(make.face_photo(0), {wrong_dim: 1.0})


def test_api_inversion_from_another_model(editor, tmp_path):
    from realedit.pipeline import Editor

    other = make.copy_model(Path(editor.model_name), tmp_path, "other", encoder=True)
    ed2 = Editor.from_pretrained(str(other), inverter="hybrid", steps=0)
    inverted = ed2.invert(make.face_photo(0))
    with pytest.raises(EditError, match="made with"):
        editor.apply(inverted, {"age": 1.0})


@pytest.mark.parametrize("photo,exc,pattern", [
    (b"", ImageError, "0 bytes"),
    (b"GIF89a-but-not-really", ImageError, "not an image|cannot decode"),
    (np.zeros((0, 10, 3), np.uint8), ImageError, "empty"),
    (np.zeros((10, 10, 2), np.uint8), ImageError, "array"),
    (np.zeros((10, 10, 3), np.int64), ImageError, "pixel type"),
    (12345, UsageError, "int"),
    ("/no/such/photo.jpg", ImageError, "no such file"),
], ids=["empty-bytes", "junk-bytes", "empty-array", "two-channels", "int64", "int", "missing"])
def test_api_bad_photo_objects(editor, photo, exc, pattern):
    with pytest.raises(exc, match=pattern):
        editor.edit(photo, {"age": 1.0})


def test_api_bad_options(editor, model):
    from realedit.pipeline import Editor

    inverted = editor.invert(make.face_photo(0))
    with pytest.raises(UsageError, match="blend"):
        editor.apply(inverted, {"age": 1.0}, blend="smudge")
    with pytest.raises(UsageError, match="detail"):
        editor.apply(inverted, {"age": 1.0}, detail="more")
    with pytest.raises(UsageError, match="face selection"):
        editor.invert(make.face_photo(0), faces="most")
    with pytest.raises(UsageError, match="steps"):
        Editor.from_pretrained(str(model), steps=-1)
    with pytest.raises(UsageError, match="space"):
        Editor.from_pretrained(str(model), space="s")
    with pytest.raises(EditError, match="no edit"):
        editor.edit(make.face_photo(0), {})


# ----------------------------------------------------------------------------- a big mixed batch

@pytest.mark.slow
def test_batch_of_200_mixed_photos(corpus, model, tmp_path):
    """100 good and 100 bad photos in one folder: every good one is edited, every bad one is
    reported by name on its own line, the batch exits 1 and nothing else is written."""
    src = tmp_path / "batch"
    src.mkdir()
    bad_cases = [c for c in make.PHOTO_CASES if c.code and c.name != "tiny_face.png"]
    good, bad = [], []
    for k, i in enumerate(make.good_faces(100)):
        p = src / f"good_{k:03d}{'.png' if k % 4 == 0 else '.jpg'}"
        img = make.face_photo(i)
        img.save(p) if p.suffix == ".png" else img.save(p, quality=85)
        good.append(p)
        case = bad_cases[k % len(bad_cases)]
        q = src / f"bad_{k:03d}_{case.name}"
        shutil.copyfile(corpus / case.name, q)
        bad.append(q)
    out = tmp_path / "out"
    res = run([src, "--attr", "age=+2", "-o", out, *edit_args(model)], watch=[src])
    assert res.exit_code == 1
    assert "done: 100 of 200 photos edited, 100 failed" in res.output
    lines = error_lines(res)
    assert len(lines) == 100
    reported = {re.match(r"\[\d+/200\] (\S+): error:", ln).group(1) for ln in lines}
    assert reported == {p.name for p in bad}
    assert files_in(out) == {f"{p.stem}_edited{p.suffix}" for p in good}
    for p in good[:5]:
        assert Image.open(out / f"{p.stem}_edited{p.suffix}").size == (256, 256)
