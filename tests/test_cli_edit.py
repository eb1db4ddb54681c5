"""`realedit PHOTO... --attr ...` when things go right, help texts, and a few end-to-end runs in
a separate process (real exit codes, stdout/stderr, no tracebacks).

Bad input is covered in test_bad_inputs.py; the model here is the same tiny self-made one
(tests/bad_inputs/make.py), so these tests check plumbing and file handling, not edit quality.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bad_inputs import make
from realedit.cli import SUBCOMMANDS, cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def photos(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    make.face_photo(0).save(d / "a.jpg", quality=92)
    make.face_photo(1).save(d / "b.png")
    return d


def invoke(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    assert "Traceback" not in res.output
    return res


def fast(model, *extra):
    return ["--model", str(model), "--steps", "0", "-q", *extra]


# ----------------------------------------------------------------------------- help

def test_top_level_help_lists_every_command():
    res = invoke("--help")
    assert res.exit_code == 0
    assert "Usage: " in res.output and "Examples:" in res.output
    for name in SUBCOMMANDS:
        assert f"  {name} " in res.output


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_subcommand_help_reads_well(name):
    group = cli
    with click.Context(group) as ctx:
        if group.get_command(ctx, name) is None:
            pytest.skip(f"{name} not built in this checkout")
    res = invoke(name, "--help")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("Usage: ") and name in lines[0]
    # a description paragraph between the usage line and the options
    body = res.output.split("Options:")[0].splitlines()[1:]
    assert sum(len(ln.split()) for ln in body) >= 5, res.output
    assert "Options:" in res.output and "-h, --help" in res.output
    rest = res.output.split("Options:")[1]
    # a group lists its commands; a command lists options beyond --help
    assert "Commands:" in rest or "--" in rest.replace("--help", ""), res.output


def test_every_edit_option_is_explained():
    from realedit.commands import edit

    for p in edit.cli.params:
        if isinstance(p, click.Option):
            assert p.help and len(p.help.split()) >= 2, p.name
    text = invoke("edit", "--help").output
    for opt in ("--attr", "--keep", "--out", "--model", "--inverter", "--space", "--steps",
                "--faces", "--blend", "--compare", "--save-latent", "--debug", "Exit status"):
        assert opt in text


def test_version_and_no_arguments():
    res = invoke("--version")
    assert res.exit_code == 0 and "realedit" in res.output
    res = invoke()
    assert res.exit_code in (0, 2) and "Usage:" in res.output


# ----------------------------------------------------------------------------- outputs

def test_default_output_is_beside_the_photo(photos, model):
    before = (photos / "a.jpg").read_bytes()
    res = invoke(photos / "a.jpg", "--attr", "age=+3", *fast(model))
    assert res.exit_code == 0, res.output
    assert "1 face edited" in res.output
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg", "a_edited.jpg", "b.png"]
    assert (photos / "a.jpg").read_bytes() == before
    out = Image.open(photos / "a_edited.jpg")
    assert out.format == "JPEG" and out.size == (256, 256)


def test_routing_without_the_edit_word(photos, model):
    for args in ([photos / "b.png", "--attr", "age=+1", *fast(model)],
                 ["--attr", "age=+1", photos / "b.png", *fast(model)],
                 [*fast(model), "-o", photos, photos / "b.png", "--attr", "age=+1"]):
        res = invoke(*args)
        assert res.exit_code == 0, res.output
        assert (photos / "b_edited.png").is_file()
        (photos / "b_edited.png").unlink()


@pytest.mark.slow
def test_folder_glob_and_duplicates(photos, model, tmp_path):
    out = tmp_path / "nested" / "out"
    res = invoke(photos, str(photos / "*.png"), photos / "a.jpg", "--attr", "smile=-1",
                 "--keep", "gender", "-o", out, *fast(model))
    assert res.exit_code == 0, res.output
    assert "done: 2 of 2 photos edited" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["a_edited.jpg", "b_edited.png"]


def test_edit_and_batch_list_a_folder_by_the_same_rules(tmp_path):
    from realedit.batch import list_inputs
    from realedit.io import expand_inputs

    d = tmp_path / "mixed"
    for name in ("b.jpg", "A.JPG", "c.Png", ".hidden.jpg", "._b.jpg", "notes.txt", "jpg",
                 "sub/d.png", "sub/.e.jpg", ".git/f.jpg"):
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(b"x")
    (d / "folder.jpg").mkdir()  # a folder with a photo's name is not a photo

    def names(paths):
        return [p.relative_to(d).as_posix() for p in paths]
    edit, batch = names(expand_inputs([d])), names(list_inputs([str(d)]))
    assert edit == ["A.JPG", "b.jpg", "c.Png"]
    # the same files; batch also enters subfolders (README: "a folder (recursive)")
    assert batch == ["A.JPG", "b.jpg", "c.Png", "sub/d.png"]
    for pattern in ("*.jpg", "**/*.png", "*"):
        assert expand_inputs([str(d / pattern)]) == list_inputs([str(d / pattern)])
    assert names(expand_inputs([str(d / "**/*.png")])) == ["sub/d.png"]


def test_output_file_name_for_one_photo(photos, model, tmp_path):
    target = tmp_path / "result.png"
    res = invoke(photos / "a.jpg", "--attr", "age=+2", "-o", target, "--compare", *fast(model))
    assert res.exit_code == 0, res.output
    assert Image.open(target).format == "PNG"  # the name's extension decides the format
    assert Image.open(tmp_path / "result_compare.png").size == (512, 256)


def test_rerun_replaces_its_own_earlier_output(photos, model, tmp_path):
    out = tmp_path / "out"
    for _ in range(2):
        res = invoke(photos / "b.png", "--attr", "age=+2", "-o", out, *fast(model))
        assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["b_edited.png"]


def test_zero_edit_leaves_the_photo_bit_identical(photos, model, tmp_path):
    res = invoke(photos / "b.png", "--attr", "age=0", "-o", tmp_path, *fast(model))
    assert res.exit_code == 0, res.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b_edited.png")),
                          np.asarray(Image.open(photos / "b.png")))


def test_compare_and_latent_files(photos, model, tmp_path):
    out = tmp_path / "out"
    res = invoke(photos / "b.png", "--attr", "age=+2", "--attr", "smile=1", "-o", out,
                 "--compare", "--save-latent", *fast(model))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["b_compare.png", "b_edited.png", "b_latent.npz"]
    cmp = np.asarray(Image.open(out / "b_compare.png").convert("RGB"))
    assert cmp.shape == (256, 512, 3)
    assert np.array_equal(cmp[:, :256], np.asarray(Image.open(photos / "b.png").convert("RGB")))
    assert np.array_equal(cmp[:, 256:], np.asarray(Image.open(out / "b_edited.png").convert("RGB")))
    with np.load(out / "b_latent.npz") as z:
        lat = z["face0_latent"]
        assert lat.ndim == 3 and lat.shape[0] == 1 and lat.shape[2] == 32  # (1, num_ws, w_dim)
        assert z["face0_edited"].shape == z["face0_latent"].shape
        assert not np.allclose(z["face0_edited"], z["face0_latent"])
        meta = json.loads(z["meta"].tobytes().decode())
    assert meta["edits"] == {"age": 2.0, "smile": 1.0} and meta["space"] == "wp"
    assert meta["model"] == str(model)


@pytest.mark.parametrize("opts", [["--blend", "poisson"], ["--detail", "replace"],
                                  ["--inverter", "optimize", "--steps", "2"]],
                         ids=["poisson", "replace", "optimize"])
def test_other_modes_run(opts, photos, model, tmp_path):
    base = ["--model", str(model), "-q"] + ([] if "--steps" in opts else ["--steps", "0"])
    res = invoke(photos / "b.png", "--attr", "age=+3", "-o", tmp_path, *opts, *base)
    assert res.exit_code == 0, res.output
    out = np.asarray(Image.open(tmp_path / "b_edited.png"))
    src = np.asarray(Image.open(photos / "b.png"))
    assert out.shape == src.shape and not np.array_equal(out, src)


def test_pggan_model_edits_in_z_by_default(photos, tmp_path):
    """PGGAN has only Z: without --space the edit runs in Z (W+ is the StyleGAN default)."""
    pg = make.make_pggan_model(tmp_path / "pg")
    res = invoke(photos / "b.png", "--attr", "age=+3", "-o", tmp_path / "out", *fast(pg))
    assert res.exit_code == 0, res.output
    assert "space: z" in res.output
    assert (tmp_path / "out" / "b_edited.png").is_file()
    res = invoke(photos / "b.png", "--attr", "age=+3", "--space", "wp", "-o", tmp_path / "o2", *fast(pg))
    assert res.exit_code == 2 and "no 'wp' space" in res.output
    assert not (tmp_path / "o2").exists()


# ----------------------------------------------------------------------------- real processes

def _run(*args, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("REALEDIT_DEBUG", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "realedit.cli", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_process_success_and_batch_failure(photos, model, tmp_path):
    """Messages go to stderr (stdout stays clean for pipes); a batch with one bad file edits
    the rest and exits 1."""
    (photos / "c.jpg").write_text("not a jpeg")
    p = _run(photos, "--attr", "age=+2", "-o", tmp_path / "out", *fast(model))
    assert p.returncode == 1, p.stderr
    assert p.stdout == ""
    assert "Traceback" not in p.stderr
    assert "c.jpg: error: " in p.stderr and "done: 2 of 3 photos edited, 1 failed" in p.stderr
    # nothing else on the terminal: no library warnings, no stray lines
    for line in p.stderr.splitlines():
        assert line.startswith(("model: ", "[1/3] ", "[2/3] ", "[3/3] ", "done: ")), line
    assert sorted(q.name for q in (tmp_path / "out").iterdir()) == ["a_edited.jpg", "b_edited.png"]


@pytest.mark.parametrize("args,code,text", [
    (["{bad}", "--attr", "age=+1"], 3, "cannot decode"),
    (["{good}", "--attr", "age=+1", "--model", "{missing}"], 5, "no such weights file"),
    (["{good}", "--attr", "age=lots"], 2, "not a number"),
    (["{good}", "--attr", "age=+1", "--frobnicate"], 2, "No such option"),
], ids=["bad-photo", "missing-model", "bad-amount", "unknown-option"])
def test_process_exit_codes(args, code, text, photos, model, tmp_path):
    bad = photos / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    fill = {"bad": bad, "good": photos / "a.jpg", "missing": tmp_path / "gone.pt"}
    argv = [a.format(**fill) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(model)]
    p = _run(*argv, "--steps", "0", "-q")
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    err = [ln for ln in p.stderr.splitlines() if "rror:" in ln]
    assert len(err) == 1 and text in err[0], p.stderr
    assert sorted(q.name for q in photos.iterdir()) == ["a.jpg", "b.png", "bad.jpg"]


def test_process_debug_shows_the_traceback(photos, model):
    bad = photos / "bad.jpg"
    bad.write_bytes(b"")
    p = _run(bad, "--attr", "age=+1", "--model", model, "--debug")
    assert p.returncode == 3
    assert "Traceback" in p.stderr and "ImageError" in p.stderr


def test_device_option(photos, model, tmp_path):
    res = invoke(photos / "a.jpg", "--attr", "age=+1", "-o", tmp_path / "o", "--device", "cpu",
                 *fast(model))
    assert res.exit_code == 0 and "device: cpu" in res.output, res.output
    for bad in ("tpu", "cuda:x") + (() if torch_cuda() else ("cuda", "cuda:1")):
        res = invoke(photos / "a.jpg", "--attr", "age=+1", "--device", bad, *fast(model))
        assert res.exit_code == 2, res.output
        assert "device" in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "o2").exists()


def torch_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


@pytest.mark.parametrize("extra", [["--batch", "1", "--workers", "0"], ["--batch", "3", "--workers", "1"]],
                         ids=["one-at-a-time", "batched-with-a-worker"])
@pytest.mark.slow
def test_folder_batches_match_one_photo_runs(extra, photos, model, tmp_path):
    make.face_photo(2).save(photos / "c.jpg", quality=92)
    (photos / "d.jpg").write_bytes(b"broken")
    res = invoke(photos, "--attr", "smile=+2", "-o", tmp_path / "out", *fast(model), *extra)
    assert res.exit_code == 1 and "d.jpg: error: " in res.output, res.output
    assert "done: 3 of 4 photos edited, 1 failed" in res.output
    for name, out_name in (("a.jpg", "a_edited.jpg"), ("b.png", "b_edited.png"), ("c.jpg", "c_edited.jpg")):
        alone = tmp_path / "alone" / name
        r = invoke(photos / name, "--attr", "smile=+2", "-o", alone.parent, *fast(model))
        assert r.exit_code == 0, r.output
        a = np.asarray(Image.open(tmp_path / "out" / out_name), dtype=int)
        b = np.asarray(Image.open(alone.parent / out_name), dtype=int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1, name  # float order only
