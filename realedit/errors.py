"""Typed exceptions. Every error a user can cause derives from RealeditError, so the CLI can
print one line (str(exc)) and pick an exit code without a traceback."""


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
    """An edit cannot be applied: unknown attribute, wrong space, foreign direction, bad amount."""

    exit_code = 6


class OutputError(RealeditError):
    """An output cannot be written (would overwrite the input, unwritable folder, ...)."""

    exit_code = 7


class UsageError(RealeditError):
    """Bad arguments to an API call or command."""

    exit_code = 2


class DownloadError(WeightsError):
    """A download failed or stopped early (network, HTTP status); a partial file is kept to resume."""
