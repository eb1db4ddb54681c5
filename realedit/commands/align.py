"""`realedit align PHOTO... -o DIR`: FFHQ-aligned crops plus a JSON per photo.

For each photo P, writes DIR/<P stem>_<k>.png for every kept face and DIR/<P stem>.json with
the photo's size, every kept face (crop file, box, 68 landmarks, quad, crop->photo matrix,
detector score, quality) and every skipped detection with its reason. Photos without a usable
face get a JSON with an empty face list and a one-line message on stderr; the exit status is
then non-zero (that of the first error), after all photos were processed.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from . import HELP_SETTINGS, detector_option, min_face_option
from ..errors import OutputError, RealeditError
from ..fsutil import atomic_write


def _write_json_atomic(path: Path, obj) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh)
        fh.write("\n")


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, k = path.stem, 2
    while stem in used:
        stem, k = f"{path.stem}_{k}", k + 1
    used.add(stem)
    return stem


def align_photo(path: Path, out_dir: Path, stem: str, *, size: int, faces: str | int,
                min_size: float, detector, ext: str, supersample: int, pad: bool,
                inputs: set[Path]) -> dict:
    """Align one photo; returns the JSON record (raises RealeditError on unusable input)."""
    from ..align import align_face, detect_faces, select_faces
    from ..align.select import no_face_message
    from ..io import read_image, write_image

    photo = read_image(path)
    found = detect_faces(photo, detector=detector, keep_rejected=True)
    kept, skipped = select_faces(found, faces, min_size=min_size)
    meta = replace(photo, exif=None, path=None)  # crops keep the ICC profile, not camera EXIF
    record = {
        "photo": str(path),
        "width": photo.width,
        "height": photo.height,
        "size": size,
        "faces": [],
        "skipped": [{"index": s.index, "reason": s.reason, **s.face.to_dict()} for s in skipped],
    }
    for k, face in enumerate(kept):
        aligned = align_face(photo, face, size, supersample=supersample, pad=pad)
        crop_path = out_dir / f"{stem}_{k}{ext}"
        if crop_path.resolve() in inputs:
            raise OutputError(f"{crop_path}: refusing to overwrite an input photo")
        write_image(crop_path, aligned.image, like=meta)
        record["faces"].append({"crop": crop_path.name, **aligned.to_dict()})
    if not kept:
        record["error"] = no_face_message(skipped, str(path), detector=detector,
                                          shape=(photo.height, photo.width))
    return record


@click.command("align", context_settings=HELP_SETTINGS)
@click.argument("photos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for crops and JSON files (created if missing).")
@click.option("--size", default=256, show_default=True, type=click.IntRange(8, 4096),
              help="Side of the aligned crops in pixels.")
@click.option("--faces", "faces", default="largest", show_default=True,
              help="Which faces: largest, all, or an index (0 = largest).")
@click.option("--min-size", default=64.0, show_default=True, type=click.FloatRange(0),
              help="Skip faces whose FFHQ quad is smaller than this (photo pixels).")
@detector_option()
@min_face_option(None)
@click.option("--format", "fmt", type=click.Choice(["png", "jpg", "webp"]), default="png",
              show_default=True, help="Crop file format.")
@click.option("--supersample", default=4, show_default=True, type=click.IntRange(1, 8),
              help="Render the warp at this multiple of --size, then downsample (FFHQ: 4).")
@click.option("--no-pad", is_flag=True, help="Skip the FFHQ reflect-padding where a face touches the border.")
def cli(photos, out_dir, size, faces, min_size, detector, min_face, fmt, supersample, no_pad):
    """Detect and FFHQ-align faces in PHOTO...; write crops and a JSON per photo into DIR."""
    from ..align import parse_policy
    from ..align.detect import default_detector

    try:
        policy = parse_policy(faces)
    except RealeditError as exc:
        raise click.BadParameter(str(exc), param_hint="--faces") from None
    from .edit import _make_folder, _remove_empty

    made: list[Path] = []  # folders made here: removed again if no photo could be read
    try:
        _make_folder(out_dir, made)
    except RealeditError as exc:
        raise click.ClickException(str(exc)) from None
    det = default_detector(detector, min_face)
    inputs = {p.resolve() for p in photos}
    used: set[str] = set()
    first_error: RealeditError | None = None
    n_crops = 0
    stderr = sys.stderr
    with click.progressbar(photos, label="aligning", file=stderr,
                           show_pos=True) if len(photos) > 1 else _NoBar(photos) as bar:
        for path in bar:
            stem = _unique_stem(path, used)
            try:
                record = align_photo(path, out_dir, stem, size=size, faces=policy,
                                     min_size=min_size, detector=det, ext=f".{fmt}",
                                     supersample=supersample, pad=not no_pad, inputs=inputs)
                _write_json_atomic(out_dir / f"{stem}.json", record)
            except RealeditError as exc:
                click.echo(f"\n{exc}" if len(photos) > 1 else str(exc), err=True)
                first_error = first_error or exc
                continue
            except OSError as exc:
                click.echo(f"{out_dir}: cannot write ({exc.strerror or exc})", err=True)
                first_error = first_error or OutputError(str(exc))
                continue
            n_crops += len(record["faces"])
            if not record["faces"]:
                click.echo(f"\n{record['error']}" if len(photos) > 1 else record["error"], err=True)
                if first_error is None:
                    from ..errors import NoFaceError

                    first_error = NoFaceError(record["error"])
    _remove_empty(made)
    click.echo(f"{n_crops} crop(s) from {len(photos)} photo(s) written to {out_dir}", err=True)
    if first_error is not None:
        sys.exit(first_error.exit_code)


class _NoBar:
    """Same context-manager shape as click.progressbar, for a single photo (no bar)."""

    def __init__(self, items):
        self.items = items

    def __enter__(self):
        return iter(self.items)

    def __exit__(self, *exc):
        return False
