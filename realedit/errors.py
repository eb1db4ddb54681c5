"""Typed exceptions. Every error a user can cause derives from RealeditError, so the CLI can
print one line (str(exc)) and pick an exit code without a traceback.

The exit status of every `realedit` command is EXIT_CODES below (the one table: README and each
command's --help print it from here; tests/test_exit_codes.py checks every code).
"""


EXIT_CODES = {
    0: "done",
    1: "some items of a batch failed (each one reported; photos, or files `weights verify` "
       "checks), interrupted, or an internal error",
    2: "bad arguments: unknown option or value, an attribute the model has no direction for, "
       "an attribute both edited and kept, an amount that is not a (small enough) number",
    3: "a photo cannot be read (missing, not an image, truncated, too many pixels)",
    4: "no usable face: none found, all too small or rejected, or fewer than --faces asks for",
    5: "model or weights problem (missing, corrupt, wrong family, checksum)",
    6: "a direction bank is missing, unreadable or of another model, or an edit fails on a photo",
    7: "an output cannot be written (would overwrite an input, unwritable folder, disk full)",
}


def exit_codes_help(width: int = 76) -> str:
    """The table for a command's --help epilog, wrapped here with a hanging indent (the \b
    line keeps click from re-flowing it into one paragraph)."""
    import textwrap

    rows = [textwrap.fill(text, width, initial_indent=f"  {code}  ", subsequent_indent=" " * 5)
            for code, text in EXIT_CODES.items()]
    return "\b\nExit status:\n" + "\n".join(rows)


class RealeditError(Exception):
    """Base of all user-facing errors. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ImageError(RealeditError):
    """A photo could not be read, or is unusable (empty, truncated, too large, not an image)."""

    exit_code = 3


class NoFaceError(RealeditError):
    """No usable face in a photo (none detected, all too small, or rejected as non-faces)."""

    exit_code = 4


class WeightsError(RealeditError):
    """A weight file is missing, corrupt, of the wrong family, or fails its checksum."""

    exit_code = 5


class WeightsNotFound(WeightsError):
    """A registered file is not in the cache and cannot be downloaded (offline, no URL)."""


class ChecksumError(WeightsError):
    """A file's sha256/md5/size does not match the registry."""


class UnsafePickleError(WeightsError):
    """A pickle asked for a global outside the allow-list; nothing from it was executed."""


class FormatError(WeightsError):
    """A file is not in any format we know, or is of another model family than expected."""


class EditError(RealeditError):
    """An edit cannot be applied: unknown attribute, wrong space, foreign direction, bad amount.

    6 is for a direction bank that is missing, unreadable or made for another model, and for
    edits that fail on a photo; what the user asked wrongly is an EditArgumentError (2)."""

    exit_code = 6


class EditArgumentError(EditError):
    """The edit asked for is wrong whatever the photo: malformed or non-finite amount, an
    attribute the bank has no direction for (in this model and space), one both edited and
    kept, an amount so large the code overflows. A bad argument: exit 2."""

    exit_code = 2


class OutputError(RealeditError):
    """An output cannot be written (would overwrite the input, unwritable folder, ...)."""

    exit_code = 7


class UsageError(RealeditError):
    """Bad arguments to an API call or command."""

    exit_code = 2


class DownloadError(WeightsError):
    """A download failed or stopped early (network, HTTP status); a partial file is kept to resume."""
