"""`realedit PHOTO... --attr age=+3 --keep gender`: edit faces in photos, one or many."""
from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

import click

from . import HELP_SETTINGS, detector_option, min_face_option, threads_option

from ..args import BLEND_MODES, DEFAULT_DETAIL, DETAIL_MODES, INVERTERS, SPACES
from ..errors import ImageError, OutputError, RealeditError, UsageError
from ..io import IMAGE_SUFFIXES, expand_inputs


def output_path(photo: Path, out: Path | None, kind: str, single: bool = False) -> Path:
    """NAME_edited.EXT (realedit.batch.job.output_name, as `realedit batch` names them) beside
    the photo, or inside --out (a folder), or --out itself when it names a file for a single
    photo (its compare and latent files beside it, named after it)."""
    from ..batch.job import output_name

    if out is None:
        return photo.with_name(output_name(photo, kind))
    if single and out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir():
        if kind == "edited":
            return out
        ext = Path(output_name(photo, kind)).suffix
        if kind == "compare" and ext == photo.suffix:  # a comparison like the photo: like -o
            ext = out.suffix
        return out.with_name(f"{out.stem}_{kind}{ext}")
    return out / output_name(photo, kind)


class _Bar:
    """Per-photo step bar on stderr (the inverter's steps), quiet when not a terminal."""

    def __init__(self, label: str, enabled: bool):
        self.label, self.enabled, self.bar = label, enabled, None

    def __call__(self, step, total, loss):
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(step - self.bar.pos)

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _attr_help() -> str:
    """--attr's help, its numbers read from the embedded bank's own calibration record (the
    bank JSON; nothing else loads), so the help says what the bank last measured."""
    from ..args import AMOUNT_LIMIT, measured_effects, sensible_ranges
    from ..manifest import bank_entries

    entries = bank_entries("realedit-celeba64")
    ranges = {n: r for n, r in sensible_ranges(entries).items()
              if any(e["name"] == n and e.get("range") is not None for e in entries)}
    embedded = ""
    if ranges:
        spans = sorted(set(ranges.values()))
        embedded = (" Embedded model: sensible range " + ", ".join(
            f"±{s:g} for " + ", ".join(n for n in sorted(ranges) if ranges[n] == s) for s in spans))
        effects = measured_effects(entries)
        embedded += f"; {effects}." if effects else "."
    return ("Move an attribute, e.g. age=+3, smile=-1.5 (repeatable). Amounts are in each "
            "direction's calibrated units (a scale stored in the bank); `realedit directions "
            "list [MODEL]` shows each one's scale, sensible range and measured effect. Beyond "
            "the range a warning is printed; beyond " f"{AMOUNT_LIMIT:g}x the range the amount is "
            "refused (exit 2)." + embedded + " Uncalibrated directions: multiples of the unit "
            "normal, range ±3. pose=+X turns the head towards the image's right, i.e. the "
            "subject's own left (head yaw up, as realedit eval measures it).")


@click.command("edit", context_settings=HELP_SETTINGS)
@click.argument("photos", nargs=-1, required=True)
@click.option("--attr", "attrs", multiple=True, metavar="NAME=±X", help=_attr_help())
@click.option("--keep", multiple=True, metavar="NAME",
              help="Hold an attribute fixed while editing (conditional direction; repeatable).")
@click.option("-o", "--out", type=click.Path(path_type=Path),
              help="Output folder (created), or a file name for a single photo. "
                   "Default: NAME_edited.EXT beside each photo.")
@click.option("--model", default=None,
              help="Registry name or model file. Default: an official model if cached, else the "
                   "embedded realedit-celeba64.")
@click.option("--inverter", type=click.Choice(INVERTERS),
              default=None,
              help="How photos are turned into latent codes. Default: encoder for models whose "
                   "encoder is a pSp / e4e file (the official StyleGAN2 FFHQ models: e4e), "
                   "hybrid otherwise. hybrid and pti start from the encoder's code (pti: then a "
                   "copy of the generator fine-tuned on each face; closer to the photo, slower).")
@click.option("--space", type=click.Choice(SPACES), default=None,
              help="Latent space to invert into (default: wp, or z for PGGAN).")
@click.option("--steps", type=click.IntRange(0, 100000), default=None,
              help="Refinement / optimisation steps (default: the inverter's; 0 with "
                   "hybrid: the encoder's answer alone, fastest).")
@click.option("--faces", default="largest", show_default=True,
              help="Which faces: largest, all, or an index (0 = largest).")
@click.option("--blend", type=click.Choice(BLEND_MODES), default=BLEND_MODES[0], show_default=True,
              help="How the edited face goes back into the photo: alpha (feathered mask) or "
                   "poisson (seamless cloning).")
@click.option("--detail", type=click.Choice(DETAIL_MODES), default=DEFAULT_DETAIL,
              show_default=True, help="warp: move the photo's own pixels as the generator moved "
                                      "its face (a turn turns the face, no ghost), plus the rest "
                                      "of the change; residual: add the generator's change to the "
                                      "photo's pixels; replace: paste the generator's face.")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE",
              help="Where the networks run: auto (a GPU when there is one), cpu, cuda, cuda:N "
                   "or mps.")
@click.option("--batch", type=click.IntRange(1, 4096), default=None,
              help="Faces inverted together when several photos are given (default: 32 on a "
                   "GPU, 8 on the CPU). Each face keeps its own schedule; another batch size sums "
                   "floats in another order, which the optimisation can grow into a slightly "
                   "different result (README, Reproducibility).")
@click.option("--workers", type=click.IntRange(0, 64), default=None,
              help="Threads that read, detect and align photos while faces are inverted "
                   "(default: most cores with a GPU, 1 on the CPU; 0: none).")
@detector_option()
@min_face_option(None)
@threads_option()
@click.option("--save-latent", is_flag=True, help="Also write NAME_latent.npz (codes, space, model).")
@click.option("--compare", is_flag=True, help="Also write NAME_compare.EXT (before | after).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def cli(photos, attrs, keep, out, model, inverter, space, steps, faces, blend, detail, device,
        batch, workers, detector, min_face, threads, save_latent, compare, debug, quiet):
    """Edit the faces in PHOTOS (files, folders or globs) and write the whole photos back.

    \b
    Examples:
      realedit photo.jpg --attr age=+3 --keep gender
      realedit shots/ --attr smile=+2 -o edited/ --compare
      realedit group.jpg --attr age=-2 --faces all

    Outside the face's paste mask a lossless output (PNG, TIFF, BMP; -o NAME.png for a JPEG
    photo) is bit-identical to the input. A JPEG output is re-encoded with the input's own
    quantisation tables and chroma subsampling: outside the 16-px blocks the mask touches it
    equals the input re-saved that way, which moves a few pixels by a few levels (README).

    A single photo that fails exits with its error's code (3, 4, 6, 7); a batch where
    some photos fail exits 1.
    """
    try:
        code = _run(photos, attrs, keep, out, model, inverter, space, steps, faces, blend, detail,
                    save_latent, compare, debug, quiet, device=device, batch=batch, workers=workers,
                    min_face=min_face, threads=threads, detector=detector)
    except RealeditError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code)


def _run(photos, attrs, keep, out, model, inverter, space, steps, faces, blend, detail,
         save_latent, compare, debug, quiet, *, device="auto", batch=None, workers=None,
         min_face=None, threads=None, detector="hog") -> int:
    from ..align.select import parse_policy, skipped_lines
    from ..args import check_amounts, check_keep, parse_edits, sensible_ranges
    from ..manifest import bank_entries

    # What the command line alone can tell is checked before torch is imported and the model
    # loads (seconds): a typo fails at once, as a bad argument (exit 2); so does an amount far
    # beyond the sensible range the bank records (its JSON is read, nothing loaded).
    edits = parse_edits(attrs)
    check_keep(edits, keep)
    if not edits:
        raise UsageError("nothing to do: give at least one --attr NAME=AMOUNT (e.g. --attr age=+3)")
    check_amounts(edits, sensible_ranges(bank_entries(model)))
    policy = parse_policy(faces)
    files = expand_inputs(photos)
    if not files:
        raise UsageError("no photos found in " + ", ".join(photos))
    single = len(files) == 1
    if single and not files[0].is_file():  # same words as read_image; a batch reports it per photo
        raise ImageError(f"{files[0]}: " + ("not a file" if files[0].exists() else "no such file"))
    out_is_folder = out is not None and not (single and out.suffix.lower() in IMAGE_SUFFIXES)
    if out_is_folder:
        _check_out_folder(out)  # cheap checks now; the folder is made when a photo is written
    # Where each photo's outputs go must be writable before it is inverted: a single photo
    # fails now (exit 7), a photo of a batch fails alone without being inverted.
    unwritable: dict[Path, OutputError] = {}
    if not out_is_folder:
        for folder in {output_path(p, out, "edited", single=single).parent for p in files}:
            try:
                _check_out_folder(folder)
            except OutputError as exc:
                unwritable[folder] = exc
        if single and unwritable:
            raise next(iter(unwritable.values()))
    blocked = {p: unwritable[output_path(p, out, "edited", single=single).parent]
               for p in files if output_path(p, out, "edited", single=single).parent in unwritable}

    from ..threads import start_monitor

    start_monitor()  # other programs' CPU use, measured while torch and the model load
    from ..align import Detector
    from ..device import resolve_device  # imports torch: after the checks above
    from ..io import write_image
    from ..pipeline import Editor

    device = resolve_device(device)
    t0 = time.perf_counter()
    if detector != "hog" or min_face is not None:
        detector = Detector(detector, min_face=min_face)
    else:
        detector = None  # the process-wide default
    editor = Editor.from_pretrained(model, inverter=inverter, space=space, steps=steps,
                                    device=device, detector=detector, threads=threads)
    for line in editor.check_edits(edits, keep):  # names the bank lacks: EditArgumentError (2)
        click.echo(f"Warning: {line}", err=True)
    click.echo(f"model: {editor.model_name} ({editor.G.kind}, {editor.G.resolution} px"
               + (f", licence {editor.licence}" if editor.licence else "")
               + f"); inverter: {getattr(editor.inverter, 'name', inverter)}; space: {editor.space}; "
               f"device: {editor.device}; loaded in {time.perf_counter() - t0:.1f} s", err=True)
    made: list[Path] = []  # folders this run created (deepest first): removed if left empty
    failed, last_code = 0, 1
    show = not quiet and sys.stderr.isatty()
    # Outputs must never replace a photo of this batch (e.g. an earlier run's x_edited.jpg given
    # again as input) nor an output written earlier in the same run (a/x.jpg and b/x.jpg -> out/).
    inputs = {os.path.realpath(p) for p in files}
    claimed: dict[str, Path] = {}

    def claim(dst: Path, path: Path) -> Path:
        key = os.path.realpath(dst)
        try:
            same = path.exists() and dst.exists() and os.path.samefile(dst, path)
        except OSError as exc:  # e.g. a name longer than the file system allows
            raise OutputError(f"{dst}: cannot write ({exc.strerror or exc})") from None
        if key in inputs or same:
            raise OutputError(f"{dst}: refusing to overwrite an input photo")
        if key in claimed and claimed[key] != path:
            raise OutputError(f"{dst}: already written for {claimed[key]} in this run; "
                              "give the photos different names or use separate output folders")
        claimed[key] = path
        return dst

    def release(path: Path) -> None:  # a failed photo wrote nothing: its names are free again
        for key in [k for k, v in claimed.items() if v == path]:
            del claimed[key]

    # Several photos: their faces are inverted in batches while worker threads read, detect
    # and align the next ones; results come back in order, each photo's error with it.
    stream = None
    if not single:
        from ..stream import default_workers
        workers = default_workers(editor.device) if workers is None else workers
        stream = editor.invert_many([p for p in files if p not in blocked], policy, batch=batch,
                                    workers=workers)
    for n, path in enumerate(files, 1):
        label = f"[{n}/{len(files)}] {path.name}"
        bar = _Bar(label, show and single)
        written = []
        t1 = time.perf_counter()
        try:
            if path in blocked:
                raise OutputError(f"{blocked[path]}")
            inverted = next(stream)[1] if stream is not None else None
            t1 = time.perf_counter()  # a batch's inversion is shared out below, not charged here
            dst = claim(output_path(path, out, "edited", single=single), path)
            cmp_dst = claim(output_path(path, out, "compare", single), path) if compare else None
            lat_dst = claim(output_path(path, out, "latent", single), path) if save_latent else None
            if inverted is None:
                inverted = editor.invert(path, policy, progress=bar)
            elif isinstance(inverted, BaseException):
                raise inverted
            result = editor.apply(inverted, edits, keep, blend=blend, detail=detail)
            bar.close()
            _make_folder(dst.parent, made)
            written.append(result.save(dst))
            if compare:
                written.append(write_image(cmp_dst, result.compare_image()))
            if save_latent:
                written.append(_save_latent(lat_dst, result, inverted))
            faces_txt = f"{len(result.faces)} face" + ("s" if len(result.faces) != 1 else "")
            click.echo(f"{label}: {faces_txt} edited in {_seconds(inverted, t1, stream)} -> "
                       + ", ".join(str(w) for w in written), err=True)
            for line in skipped_lines(result.skipped):
                click.echo(f"{label}: {line}", err=True)
        except RealeditError as exc:
            bar.close()
            _remove(written)
            release(path)
            failed, last_code = failed + 1, exc.exit_code
            if debug:
                traceback.print_exc()
            click.echo(f"{label}: error: {exc}", err=True)
        except KeyboardInterrupt:
            bar.close()
            _remove(written)
            _remove_empty(made)
            raise
        except Exception as exc:  # an unexpected bug on one photo must not kill the batch
            bar.close()
            _remove(written)
            release(path)
            failed, last_code = failed + 1, 1
            if debug:
                traceback.print_exc()
            click.echo(f"{label}: internal error: {type(exc).__name__}: {exc} "
                       "(rerun with --debug for details)", err=True)
    _remove_empty(made)
    if len(files) > 1:
        click.echo(f"done: {len(files) - failed} of {len(files)} photos edited"
                   + (f", {failed} failed" if failed else ""), err=True)
    if failed == 0:
        return 0
    # One photo: its error's own code (3 unreadable, 4 no face, ...); a batch: 1.
    return last_code if len(files) == 1 else 1


def _seconds(inverted, t1: float, stream) -> str:
    """'6.3 s' for one photo (its wall time); for a photo of a batch, its own stages plus its
    share of the batch's inversion, and how many faces shared it."""
    own = time.perf_counter() - t1
    if stream is None:
        return f"{own:.1f} s"
    tm = inverted.timings
    secs = own + sum(float(tm.get(k, 0.0)) for k in ("read", "detect", "align", "invert"))
    n, batch_s = tm.get("batch_faces"), tm.get("batch_seconds")
    if n and n > 1:
        return (f"{secs:.1f} s (its share of {batch_s:.1f} s for {n} faces inverted together, "
                "plus its own reading, detection, alignment and edit)")
    return f"{secs:.1f} s"


def _check_out_folder(out: Path) -> None:
    """OutputError now, before any work, if ``out`` cannot become a writable folder."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file, not an output folder")
    parent = out
    while not parent.exists():  # the nearest existing ancestor must be a writable folder
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{out}: cannot create output folder ({parent} is a file)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: output folder is not writable" if parent == out
                          else f"{out}: cannot create output folder ({parent} is not writable)")


def _make_folder(folder: Path, made: list[Path]) -> None:
    """Create ``folder`` (and missing parents) just before the first file goes into it, so a
    run that writes nothing leaves no folder behind."""
    if folder.is_dir():
        return
    missing, p = [], folder
    while not p.exists() and p.parent != p:
        missing.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create output folder ({exc.strerror})") from None
    made.extend(missing)


def _remove_empty(folders) -> None:
    """rmdir the folders this run made that hold nothing (a failed photo's outputs are gone)."""
    for d in folders:
        try:
            d.rmdir()  # refuses a non-empty folder: never removes anything written
        except OSError:
            pass


def _remove(paths) -> None:
    """Delete what a failed photo had already written: no half set of outputs is left."""
    for p in paths:
        try:
            Path(p).unlink()
        except OSError:
            pass


def _save_latent(path: Path, result, inverted) -> Path:
    import json

    import numpy as np

    from ..fsutil import atomic_write

    arrays = {}
    for f in result.faces:
        arrays[f"face{f.index}_latent"] = f.latent.cpu().numpy()
        arrays[f"face{f.index}_edited"] = f.edited_latent.cpu().numpy()
    meta = {"model": result.model, "space": result.space, "inverter": result.inverter,
            "edits": result.edits, "keep": list(result.keep)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    try:
        with atomic_write(path) as fh:
            np.savez(fh, **arrays)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path
