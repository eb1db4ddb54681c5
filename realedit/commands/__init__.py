"""CLI subcommands, one module per feature; shared error handling here."""
from __future__ import annotations

import functools

import click

from ..args import DETECTORS
from ..errors import RealeditError


# Every command answers -h as well as --help, however it is invoked (click caches a command's
# help option on first use, so inheriting it from the parent context is not enough).
HELP_SETTINGS = {"help_option_names": ["-h", "--help"]}


class CliError(click.ClickException):
    """A RealeditError shown as one line, exiting with the error's own code."""

    def __init__(self, exc: RealeditError):
        super().__init__(str(exc))
        self.exit_code = exc.exit_code


def one_line_errors(interrupted: str = "interrupted; nothing was written"):
    """Decorator: RealeditError -> one line + its exit code; Ctrl-C -> ``interrupted``."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except RealeditError as exc:
                raise CliError(exc) from None
            except KeyboardInterrupt:
                raise click.ClickException(interrupted) from None
        return wrapper
    return deco


def min_face_option(default):
    """--min-face PX (the detector's smallest face), checked by click: exit 2 before any model
    loads. ``default`` None: the detector's own."""
    from ..align.detect import CNN_MIN_FACE, DEFAULT_MIN_FACE, MIN_FACE_LIMIT

    def check(ctx, param, value):
        if value is not None and not value >= MIN_FACE_LIMIT:  # nan too
            raise click.BadParameter(f"{value} is not a face size of at least "
                                     f"{MIN_FACE_LIMIT:.0f} px", ctx, param)
        return value

    return click.option(
        "--min-face", type=float, default=default, callback=check, metavar="PX",
        show_default=default is not None,
        help=f"Smallest face to look for (dlib box side, photo pixels; default "
             f"{DEFAULT_MIN_FACE:.0f}, {CNN_MIN_FACE:.0f} with --detector cnn, at any photo "
             f"size). Larger is faster on big photos (80: ~5x less time at 12 MP).")


def threads_option():
    """--threads N: torch's CPU threads, fixed (default: chosen per stage from the CPUs free
    at the time, see realedit.threads)."""
    return click.option(
        "--threads", type=click.IntRange(1, 1024), default=None, metavar="N",
        help="CPU threads for the networks. Default: as many as CPUs are free at the time "
             "(fewer while other programs keep the CPUs busy), or $OMP_NUM_THREADS when set. "
             "A fixed count makes reruns bit-identical whatever the machine's load.")


def detector_option():
    """--detector hog|cnn: which dlib face detector finds the faces."""
    return click.option(
        "--detector", type=click.Choice(DETECTORS), default="hog", show_default=True,
        help="Face detector: hog (fast, frontal faces) or cnn (dlib's MMOD CNN: several times "
             "slower, finds turned or partly covered faces, e.g. a hand or sunglasses, that "
             "hog misses).")
