"""The before | after grid: layout on known cells, and the command end to end on a tiny model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from realedit.cli import cli
from realedit.grid import BORDER, HEADER, compose_grid, edit_label
from tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def test_edit_label():
    assert edit_label({"smile": 3.0}, ["gender"]) == "smile +3, keep gender"
    assert edit_label({"age": -1.5, "pose": 2}) == "age -1.5, pose +2"


def test_compose_grid_places_cells_labels_and_failures():
    cell = 64
    red = np.zeros((cell, cell, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((cell, cell, 3), np.uint8)
    blue[..., 2] = 255
    g = compose_grid([[red, blue], [blue, None]], ["original", "smile +3"], ["a.jpg", ""], cell)
    step = cell + BORDER
    assert g.shape == (HEADER + 2 * step + BORDER, 2 * step + BORDER, 3) and g.dtype == np.uint8

    def cell_at(r, c):
        y, x = HEADER + BORDER + r * step, BORDER + c * step
        return g[y:y + cell, x:x + cell]
    # cells where they belong (bottom-right corners: away from the row label)
    assert (cell_at(0, 1)[-10:, -10:] == blue[-10:, -10:]).all()
    assert (cell_at(1, 0)[-10:, -10:] == blue[-10:, -10:]).all()
    assert (cell_at(0, 0)[-10:, -10:] == red[-10:, -10:]).all()
    # the row label is drawn on the first cell of its row only
    assert (cell_at(0, 0)[:12, :12] != red[:12, :12]).any()
    assert (cell_at(1, 0)[:12, :12] == blue[:12, :12]).all()
    # a failed edit is a grey cell with text, not an empty hole
    failed = cell_at(1, 1)
    assert abs(np.median(failed) - 128) < 2 and failed.max() > 200
    # column labels are in the header strip, which is otherwise white
    head = g[:HEADER]
    assert head.min() < 100 and np.median(head) == 255


@pytest.mark.slow
def test_grid_command_writes_a_labelled_grid_and_lists_skipped(tmp_path):
    model = make_tiny_model(tmp_path)
    noface = tmp_path / "wall.png"
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(noface)
    out = tmp_path / "g" / "grid.png"
    res = CliRunner().invoke(cli, ["grid", str(ROOT / "demo" / "photos" / "astronaut.jpg"), str(noface),
                                   "--edit", "smile=+3/gender", "--edit", "age=-2", "--model", str(model),
                                   "--inverter", "optimize", "--steps", "2", "--cell", "96",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "wall.png" in res.output
    assert "1 photos x 2 edits" in res.output
    g = np.asarray(Image.open(out))
    step = 96 + BORDER
    assert g.shape == (HEADER + step + BORDER, 3 * step + BORDER, 3)
    orig = g[HEADER + BORDER + 40:HEADER + BORDER + 96, BORDER:BORDER + 96].astype(int)
    edited = g[HEADER + BORDER + 40:HEADER + BORDER + 96, BORDER + step:BORDER + step + 96].astype(int)
    assert np.abs(orig - edited).mean() > 0.5      # the edit shows in its column


def test_grid_command_refuses_without_writing(tmp_path):
    noface = tmp_path / "wall.png"
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(noface)
    model = make_tiny_model(tmp_path)
    for args, msg in [(["-o", str(tmp_path / "g.gif")], "bad --out"),
                      (["--edit", "/gender", "-o", str(tmp_path / "g.jpg")], "bad --edit"),
                      (["-o", str(tmp_path / "g.jpg")], "no photo had a face")]:
        res = CliRunner().invoke(cli, ["grid", str(noface), "--model", str(model), "--edit",
                                       "smile=+1", *args] if "--edit" not in args else
                                 ["grid", str(noface), "--model", str(model), *args])
        assert res.exit_code != 0 and msg in res.output and "Traceback" not in res.output, res.output
        assert not list(tmp_path.glob("g.*"))


def test_grid_command_never_overwrites_an_input(tmp_path):
    photo = tmp_path / "me.jpg"
    photo.write_bytes((ROOT / "demo" / "photos" / "astronaut.jpg").read_bytes())
    before = photo.read_bytes()
    res = CliRunner().invoke(cli, ["grid", str(photo), "--model", str(make_tiny_model(tmp_path)),
                                   "-o", str(photo)])
    assert res.exit_code == 7 and "never overwritten" in res.output  # the table: output error
    assert photo.read_bytes() == before
