"""`realedit grid PHOTOS -o demo/edit_grid.jpg`: a before | after grid, one row per photo."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from . import HELP_SETTINGS, one_line_errors
from ..args import INVERTERS
from ..errors import OutputError, UsageError


@click.command("grid", context_settings=HELP_SETTINGS)
@click.argument("photos", nargs=-1, required=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("edit_grid.jpg"), show_default=True, help="Image to write (.jpg/.png).")
@click.option("--edit", "runs", multiple=True, metavar="EDITS[/KEEP]",
              help="One column per --edit, e.g. --edit smile=+3/gender --edit pose=+3 (edits and "
                   "kept names comma-separated). Default: smile=+3/gender, smile=-3/gender, "
                   "age=+3/gender, pose=+3.")
@click.option("--limit", type=click.IntRange(1), default=8, show_default=True,
              help="At most this many photos (folders are read in sorted order).")
@click.option("--cell", type=click.IntRange(64, 1024), default=256, show_default=True,
              help="Side of each face crop in pixels.")
@click.option("--model", default=None, help="Registry name or model file (default: as for edit).")
@click.option("--inverter", type=click.Choice(INVERTERS), default=None,
              help="Default: encoder for pSp / e4e models, else hybrid.")
@click.option("--steps", type=click.IntRange(0, 100000), default=None)
@click.option("--detail", default=None, metavar="MODE",
              help="How the edit reaches the photo (as for edit; default: edit's default).")
@one_line_errors()
def cli(photos, out, runs, limit, cell, model, inverter, steps, detail):
    """Edit PHOTOS (files, folders, globs; largest face) and write one picture: a row per
    photo, the original face then one column per edit, labelled, each cell the same aligned
    crop of the photo as realedit wrote it. Photos without a usable face are listed and left
    out."""
    _run(photos, out, runs, limit, cell, model, inverter, steps, detail)


def _run(photos, out, runs, limit, cell, model, inverter, steps, detail):
    from PIL import Image

    from ..errors import NoFaceError
    from ..grid import DEFAULT_GRID_EDITS, edit_grid
    from ..io import write_image
    from .eval import check_detail, input_photos, load_editor, parse_run

    if out.suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise UsageError(f"bad --out {str(out)!r}: name a .jpg or .png file")
    check_detail(detail)
    plan = [parse_run(r) for r in runs] if runs else list(DEFAULT_GRID_EDITS)
    files = input_photos(photos, limit)
    if any(f.resolve() == out.resolve() for f in files if f.exists()):
        raise OutputError(f"--out {str(out)!r} is one of the input photos; it is never overwritten")
    editor = load_editor(model, inverter, steps, plan, len(files))
    with click.progressbar(length=len(files), label="editing", file=sys.stderr) as bar:
        image, skipped = edit_grid(editor, files, plan, cell=cell,
                                   apply_options={"detail": detail} if detail else None,
                                   progress=lambda i, n: bar.update(1))
    for photo, reason in skipped:
        click.echo(f"skipped {photo}: {reason}", err=True)
    if image is None:
        raise NoFaceError("no photo had a face to edit; nothing written")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_image(out, Image.fromarray(image), quality=92)
    click.echo(f"wrote {out} ({len(files) - len(skipped)} photos x {len(plan)} edits)")
