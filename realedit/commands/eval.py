"""`realedit eval PHOTOS --attr smile=+3 --keep gender`: measure an edit on a set of photos."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from . import HELP_SETTINGS, one_line_errors
from ..args import DETAIL_MODES, INVERTERS, check_choice
from ..errors import UsageError


@click.command("eval", context_settings=HELP_SETTINGS)
@click.argument("photos", nargs=-1, required=True)
@click.option("--attr", "attrs", multiple=True, metavar="NAME=±X",
              help="The edit to measure (repeatable). pose=+X turns the head towards the "
                   "image's right (the subject's left), measured as head yaw in degrees.")
@click.option("--keep", multiple=True, metavar="NAME", help="Attributes that should not move.")
@click.option("--edit", "runs", multiple=True, metavar="EDITS[/KEEP]",
              help="Measure several edits on one inversion per photo, e.g. --edit smile=+3/gender "
                   "--edit pose=+3 (edits and kept names comma-separated); each gets its own "
                   "subfolder of --out. Instead of --attr/--keep.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("eval"), show_default=True,
              help="Folder for report.json and grid.png.")
@click.option("--model", default=None, help="Registry name or model file (default: as for edit).")
@click.option("--inverter", type=click.Choice(INVERTERS),
              default=None, help="Default: encoder for pSp / e4e models, else hybrid.")
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
@click.option("--detail", default=None, metavar="MODE",
              help="How the edit reaches the photo (as for edit; default: edit's default).")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE",
              help="Where the networks run: auto (a GPU when there is one), cpu, cuda, cuda:N or mps.")
@one_line_errors("interrupted; only the reports listed as written are complete")
def cli(photos, attrs, keep, runs, out, model, inverter, steps, scorer_opts, scorer_dir, drift_opts,
        limit, detail, device):
    """Edit PHOTOS (files, folders, globs) and report, per attribute and overall: the size of
    the change with its spread (mean, median, quartiles, min, max; logits for smile, years for
    age, degrees of head yaw for pose), the share moved the asked way, kept-attribute drift,
    success rate, identity distance (share under 0.45), face sharpness after/before, change
    in the paste mask outside the face (ghosts), and change outside the paste mask."""
    _run(photos, attrs, keep, runs, out, model, inverter, steps, scorer_opts, scorer_dir,
         drift_opts, limit, detail, device)


def _attr_pairs(items, option: str, form: str) -> dict[str, str]:
    """{ATTR: VALUE} from repeated ``ATTR=VALUE`` options; a malformed one is a UsageError."""
    out = {}
    for item in items:
        attr, sep, value = item.partition("=")
        if not sep or not attr or not value:
            raise UsageError(f"bad {option} {item!r}: write {form}")
        out[attr] = value
    return out


def parse_run(spec: str) -> tuple[dict[str, float], list[str]]:
    """``"smile=+3,age=-1/gender"`` -> ({"smile": 3.0, "age": -1.0}, ["gender"])."""
    from ..args import parse_edits

    edits_s, _, keep_s = spec.partition("/")
    items = [x.strip() for x in edits_s.split(",") if x.strip()]
    if not items:
        raise UsageError(f"bad --edit {spec!r}: write NAME=X[,NAME=X][/KEEP[,KEEP]]")
    return parse_edits(items), [k.strip() for k in keep_s.split(",") if k.strip()]


def check_detail(detail) -> None:
    """UsageError unless ``detail`` is None (edit's default) or one of the transfer modes."""
    if detail is not None:
        check_choice("--detail", detail, DETAIL_MODES)


def input_photos(photos, limit) -> list[Path]:
    """The first ``limit`` photos PHOTOS names (as for edit); UsageError when there are none."""
    from ..io import expand_inputs

    files = expand_inputs(photos)[:limit]
    if not files:
        raise UsageError("no photos found in " + ", ".join(photos))
    return files


def load_editor(model, inverter, steps, plan, n_photos: int, device="auto"):
    """The Editor of eval and grid, with a warning per amount beyond its sensible range in any
    run of ``plan`` and a line naming what was loaded."""
    from ..pipeline import Editor

    editor = Editor.from_pretrained(model, inverter=inverter, steps=steps, device=device)
    for edits, kept in plan:
        for warning in editor.check_edits(edits, kept) or ():
            click.echo(f"Warning: {warning}", err=True)
    click.echo(f"model: {editor.model_name}; inverter: {getattr(editor.inverter, 'name', inverter)}; "
               f"{n_photos} photos", err=True)
    return editor


def run_folder(edits, keep) -> str:
    """A folder name for one run: smile+3_keep-gender."""
    name = "_".join(f"{a}{x:+g}" for a, x in edits.items())
    return name + ("_keep-" + "-".join(keep) if keep else "")


def _run(photos, attrs, keep, runs, out, model, inverter, steps, scorer_opts, scorer_dir,
         drift_opts, limit, detail, device="auto"):
    from ..device import resolve_device
    from ..evaluate import evaluate_runs, format_summary, save_report
    from ..args import parse_edits

    if runs and (attrs or keep):
        raise UsageError("use either --attr/--keep or --edit, not both")
    if not runs and not attrs:
        raise UsageError("nothing to measure: pass --attr NAME=X (or --edit EDITS[/KEEP])")
    check_detail(detail)
    plan = [parse_run(r) for r in runs] if runs else [(parse_edits(attrs), list(keep))]
    device = resolve_device(device)
    scorers = _attr_pairs(scorer_opts, "--scorer", "ATTR=NAME_OR_PATH")
    max_drift = {}
    for attr, value in _attr_pairs(drift_opts, "--max-drift", "ATTR=NUMBER (> 0)").items():
        try:
            max_drift[attr] = float(value)
        except ValueError:
            max_drift[attr] = float("nan")
        if not max_drift[attr] > 0:
            raise UsageError(f"bad --max-drift {attr + '=' + value!r}: write ATTR=NUMBER (> 0)")
    files = input_photos(photos, limit)
    editor = load_editor(model, inverter, steps, plan, len(files), device)
    with click.progressbar(length=len(files), label="evaluating", file=sys.stderr) as bar:
        reports = evaluate_runs(editor, files, plan, scorers=scorers, scorer_dir=scorer_dir,
                                progress=lambda i, n: bar.update(1), max_drift=max_drift,
                                apply_options={"detail": detail} if detail else None)
    for (edits, kept), report in zip(plan, reports):
        folder = out / run_folder(edits, kept) if runs else out
        js, png = save_report(report, folder)
        if runs:
            click.echo(f"== {', '.join(f'{a}={x:+g}' for a, x in edits.items())}"
                       + (f" keep {', '.join(kept)}" if kept else ""))
        for line in format_summary(report["summary"]):
            click.echo(line)
        click.echo(f"wrote {js} and {png}", err=True)
