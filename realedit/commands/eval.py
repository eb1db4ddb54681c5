"""`realedit eval PHOTOS --attr smile=+3 --keep gender`: measure an edit on a set of photos."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from . import HELP_SETTINGS

from ..errors import RealeditError, UsageError


@click.command("eval", context_settings=HELP_SETTINGS)
@click.argument("photos", nargs=-1, required=True)
@click.option("--attr", "attrs", multiple=True, required=True, metavar="NAME=±X",
              help="The edit to measure (repeatable).")
@click.option("--keep", multiple=True, metavar="NAME", help="Attributes that should not move.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("eval"), show_default=True,
              help="Folder for report.json and grid.png.")
@click.option("--model", default=None, help="Registry name or model file (default: as for edit).")
@click.option("--inverter", type=click.Choice(["hybrid", "encoder", "optimize"]), default="hybrid",
              show_default=True)
@click.option("--steps", type=click.IntRange(0, 100000), default=None)
@click.option("--scorer", "scorer_opts", multiple=True, metavar="ATTR=NAME_OR_PATH",
              help="Scorer for an attribute (default: age/gender net for age and gender, CelebA "
                   "classifier for smile, landmarks for pose).")
@click.option("--scorer-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="REALEDIT_SCORER_DIR", help="Folder holding the attribute networks.")
@click.option("--max-drift", "drift_opts", multiple=True, metavar="ATTR=X",
              help="How far a kept attribute may move for a photo to count as a success "
                   "(default gender=0.1, age=3, smile=1).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use at most this many photos.")
def cli(photos, attrs, keep, out, model, inverter, steps, scorer_opts, scorer_dir, drift_opts, limit):
    """Edit PHOTOS (files, folders, globs) and report how far the target attribute moved, how
    much kept attributes drifted, identity distance, and change outside the paste mask."""
    try:
        _run(photos, attrs, keep, out, model, inverter, steps, scorer_opts, scorer_dir, drift_opts,
             limit)
    except RealeditError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)


def _attr_pairs(items, option: str, form: str) -> dict[str, str]:
    """{ATTR: VALUE} from repeated ``ATTR=VALUE`` options; a malformed one is a UsageError."""
    out = {}
    for item in items:
        attr, sep, value = item.partition("=")
        if not sep or not attr or not value:
            raise UsageError(f"bad {option} {item!r}: write {form}")
        out[attr] = value
    return out


def _run(photos, attrs, keep, out, model, inverter, steps, scorer_opts, scorer_dir, drift_opts,
         limit):
    from ..evaluate import evaluate, save_report
    from ..pipeline import Editor, parse_edits
    from .edit import expand_inputs

    edits = parse_edits(attrs)
    scorers = _attr_pairs(scorer_opts, "--scorer", "ATTR=NAME_OR_PATH")
    max_drift = {}
    for attr, value in _attr_pairs(drift_opts, "--max-drift", "ATTR=NUMBER (> 0)").items():
        try:
            max_drift[attr] = float(value)
        except ValueError:
            max_drift[attr] = float("nan")
        if not max_drift[attr] > 0:
            raise UsageError(f"bad --max-drift {attr + '=' + value!r}: write ATTR=NUMBER (> 0)")
    files = expand_inputs(photos)[:limit]
    if not files:
        raise UsageError("no photos found in " + ", ".join(photos))
    editor = Editor.from_pretrained(model, inverter=inverter, steps=steps)
    editor.check_edits(edits, keep)
    click.echo(f"model: {editor.model_name}; inverter: {getattr(editor.inverter, 'name', inverter)}; "
               f"{len(files)} photos", err=True)
    with click.progressbar(length=len(files), label="evaluating", file=sys.stderr) as bar:
        report = evaluate(editor, files, edits, keep, scorers=scorers, scorer_dir=scorer_dir,
                          progress=lambda i, n: bar.update(1), max_drift=max_drift)
    js, png = save_report(report, out)
    for k, v in report["summary"].items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}<{t:g}" for a, t in v.items() if t is not None) or "-"
        click.echo(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    click.echo(f"wrote {js} and {png}", err=True)
