"""With no network and no cache, every command that needs an official file says in one line which
file, where it goes and the command that fetches it, and exits 5 (nothing written)."""
from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from datapaths import ASTRONAUT
from realedit import weights as W
from realedit.cli import cli


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("REALEDIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("REALEDIT_REGISTRY", raising=False)
    monkeypatch.delenv("REALEDIT_BOUNDARIES", raising=False)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(ASTRONAUT, photos / "a.jpg")
    return tmp_path


# (command, registry name of the first file it needs)
COMMANDS = [
    (["{photo}", "--model", "stylegan2-ffhq-1024", "--attr", "age=+3", "-o", "{out}"], "stylegan2-ffhq-1024"),
    (["{photo}", "--model", "e4e-ffhq-encoder", "--attr", "age=+3", "-o", "{out}"], "e4e-ffhq-encoder"),
    (["{photo}", "--model", "stylegan-ffhq-1024", "--attr", "age=+3", "--keep", "gender", "-o", "{out}"],
     "stylegan-ffhq-1024"),
    (["directions", "list", "stylegan2-ffhq-1024"], "e4e-ffhq-age"),
    (["directions", "list", "stylegan-ffhq-1024"], "interfacegan-stylegan_ffhq_age"),
    (["directions", "cosine", "pggan-celebahq-1024"], "interfacegan-pggan_celebahq_age"),
    (["directions", "sefa", "--model", "stylegan2-ffhq-1024"], "stylegan2-ffhq-1024"),
    (["weights", "download", "e4e-ffhq-encoder"], "e4e-ffhq-encoder"),
    (["weights", "download", "stylegan2-ffhq-1024", "--all"], "stylegan2-ffhq-1024"),
    (["weights", "verify", "psp-ffhq-encoder"], "psp-ffhq-encoder"),
    (["eval", "{photos}", "--model", "stylegan2-ffhq-1024", "--attr", "age=+3", "-o", "{out}"],
     "stylegan2-ffhq-1024"),
    (["grid", "{photos}", "--model", "stylegan2-ffhq-1024", "-o", "{out}.jpg"], "stylegan2-ffhq-1024"),
    (["batch", "{photos}", "--model", "stylegan2-ffhq-1024", "--attr", "age=+3", "-o", "{out}"],
     "stylegan2-ffhq-1024"),
    (["train-encoder", "--model", "stylegan2-ffhq-1024", "-o", "{out}.pt"], "stylegan2-ffhq-1024"),
    (["serve", "--model", "stylegan2-ffhq-1024", "--port", "0"], "stylegan2-ffhq-1024"),
]


@pytest.mark.parametrize("args,needs", COMMANDS, ids=[" ".join(c[:3]).replace("{photo}", "PHOTO")
                                                      for c, _ in COMMANDS])
def test_offline_without_cache(world, monkeypatch, args, needs):
    monkeypatch.setenv("REALEDIT_OFFLINE", "1")
    subst = {"{photo}": str(world / "photos" / "a.jpg"), "{photos}": str(world / "photos"),
             "{out}": str(world / "out")}
    argv = []
    for a in args:
        for k, v in subst.items():
            a = a.replace(k, v)
        argv.append(a)
    res = CliRunner().invoke(cli, argv)
    assert res.exit_code == 5, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in res.output, res.output
    line = errors[0] if needs != "stylegan2-ffhq-1024" or "--all" not in args else \
        [ln for ln in res.output.splitlines() if "'stylegan2-ffhq-1024'" in ln][0]
    e = W.entry(needs)
    assert e.file in line                                           # which file
    assert str(world / "home" / "weights" / e.file) in line         # where it goes
    assert f"realedit weights download {needs}" in line             # the command that fetches it
    assert not (world / "out").exists() and not list((world / "home").rglob("*.part"))


def test_no_network(world, monkeypatch):
    """Not offline by choice: the server cannot be reached (a closed port on 127.0.0.1)."""
    e = W.entry("stylegan2-ffhq-1024")
    reg = world / "reg.toml"
    reg.write_text(f'[weights."stylegan2-ffhq-1024"]\nfile = "{e.file}"\nkind = "stylegan2"\n'
                   f'role = "generator"\nencoder = "e4e-ffhq-encoder"\nboundaries = "e4e_ffhq"\n'
                   f'urls = ["http://127.0.0.1:9/ffhq.pkl"]\nlicence = "{e.licence}"\n')
    monkeypatch.setenv("REALEDIT_REGISTRY", str(reg))
    res = CliRunner().invoke(cli, [str(world / "photos" / "a.jpg"), "--model", "stylegan2-ffhq-1024",
                                   "--attr", "age=+3", "-o", str(world / "out")])
    assert res.exit_code == 5, res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert "cannot reach http://127.0.0.1:9/ffhq.pkl" in line and e.file in line
    assert str(world / "home" / "weights" / e.file) in line
    assert "realedit weights download stylegan2-ffhq-1024" in line
    assert "licence NVIDIA-SCL-NC" in res.output  # said before the download was tried
