"""`realedit batch SRC... --attr smile=+2 -o OUT [--engine local|ray]`: a resumable job."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from . import HELP_SETTINGS, detector_option, min_face_option, one_line_errors
from ..args import DETAIL_MODES, INVERTERS

# pti fine-tunes a copy of the generator per face: not offered for folders of photos.
BATCH_INVERTERS = tuple(m for m in INVERTERS if m != "pti")


@click.command("batch", context_settings=HELP_SETTINGS)
@click.argument("sources", nargs=-1, required=True)
@click.option("--attr", "attrs", multiple=True, required=True, metavar="NAME=±X",
              help="Edit, as for `realedit edit` (repeatable).")
@click.option("--keep", multiple=True, metavar="NAME", help="Attributes held fixed (repeatable).")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: edited photos mirror the inputs' folders; manifest.jsonl "
                   "records every photo.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine, no Ray. ray: a Ray cluster (--address, else a new "
                   "local one).")
@click.option("--address", default=None, metavar="HOST:PORT|auto",
              help="Ray cluster to join (e.g. auto, or ray://head:10001).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Network workers, each holding one loaded model (Ray actors).")
@click.option("--cpu-workers", type=click.IntRange(0), default=1, show_default=True,
              help="local engine: threads that decode, detect and align beside the network (0: one).")
@click.option("--cpus-per-worker", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Ray: CPUs reserved per network worker.")
@click.option("--gpus-per-worker", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Ray: GPUs reserved per network worker (use with --device cuda).")
@click.option("--batch", "batch_size", type=click.IntRange(1), default=8, show_default=True,
              help="Faces of several photos inverted together.")
@click.option("--retry-failed", is_flag=True, help="Retry photos that failed in an earlier run.")
@click.option("--model", default=None, help="Registry name or model file.")
@click.option("--inverter", type=click.Choice(BATCH_INVERTERS), default=None,
              help="Default: encoder for pSp / e4e models, else hybrid.")
@click.option("--steps", type=click.IntRange(0, 100000), default=None)
@click.option("--faces", default="largest", show_default=True, help="largest, all, or an index.")
@click.option("--detail", type=click.Choice(DETAIL_MODES), default=None,
              help="How the edit reaches the photo, as for `realedit edit` (default: its default).")
@click.option("--compare", is_flag=True, help="Also write NAME_compare.EXT (before | after).")
@click.option("--device", default="cpu", show_default=True, help="Device of the network workers.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch threads per network worker (default: as many as CPUs are free at the "
                   "time, at most the worker's CPUs; $OMP_NUM_THREADS when set). A fixed count "
                   "makes reruns bit-identical.")
@detector_option()
@min_face_option(None)
@click.option("-q", "--quiet", is_flag=True, help="Only the final summary.")
@one_line_errors("interrupted; photos finished so far are recorded, rerun to go on")
def cli(sources, attrs, keep, out, engine, address, workers, cpu_workers, cpus_per_worker,
        gpus_per_worker, batch_size, retry_failed, model, inverter, steps, faces, detail, compare,
        device, threads, detector, min_face, quiet):
    """Edit every photo of SOURCES (folders, recursive; globs; or .txt/.csv lists of paths)
    into OUT, resumably: rerunning the same command skips photos already done (outputs checked
    against the manifest's hashes), retries none of the failed ones unless --retry-failed
    (but redoes those the output folder refused: a folder that cannot be written stops the
    job at the first photo, exit 7), and never leaves a partial file. Every photo finished
    has a line in OUT/manifest.jsonl (output paths relative to OUT)."""
    from ..align.select import parse_policy
    from ..batch import JobSpec, run_job
    from ..args import parse_edits

    edits = parse_edits(attrs)
    if inverter is None:  # the model's own default, written into the job's settings
        from ..manifest import default_inverter
        inverter = default_inverter(model)
    spec = JobSpec(edits=edits, keep=tuple(keep), faces=parse_policy(faces), model=model,
                   inverter=inverter, steps=steps, detail=detail, compare=compare, device=device,
                   threads=threads, min_face=min_face, detector=detector)
    t0 = time.perf_counter()

    def on_start(total, already, skipped):
        click.echo(f"{total} photos: {already} already done, {skipped} failed before "
                   f"({'retrying' if retry_failed else 'skipped; --retry-failed to retry'}), "
                   f"{total - already - skipped} to do; engine {engine}", err=True)

    def on_record(rec):
        if not quiet and rec.status != "ok":
            click.echo(f"{rec.key}: error: {rec.error}", err=True)
        if not quiet:  # faces rejected or too small, each with its reason (also in the manifest)
            for line in rec.skipped:
                if "other face" not in line:
                    click.echo(f"{rec.key}: {line}", err=True)

    def on_warning(text):
        click.echo(f"warning: {text}", err=True)

    def on_progress(p):
        if not quiet:
            eta = f", ETA {p['eta_s']:.0f} s" if p.get("eta_s") is not None and p["remaining"] else ""
            click.echo(f"progress: {p['done']} done, {p['failed']} failed, {p['remaining']} left, "
                       f"{p['photos_per_s']:.2f} photos/s{eta}", err=True)

    s = run_job(sources, out, spec, engine=engine, address=address, workers=workers,
                cpu_workers=cpu_workers, batch=batch_size, retry_failed=retry_failed,
                cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                on_start=on_start, on_record=on_record, on_progress=on_progress,
                on_warning=on_warning)
    click.echo(f"done: {s.done} edited, {s.failed} failed this run; {s.already_done} done before; "
               f"{time.perf_counter() - t0:.1f} s; manifest {s.manifest}", err=True)
    sys.exit(0 if s.complete else 1)
