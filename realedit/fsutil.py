"""Writing files so that a reader never sees half of one.

Every output realedit writes (photos, crops, JSON, latents, banks, weights, checkpoints) goes
through :func:`atomic_write`: the bytes go to a uniquely named temporary file in the target's
folder, are flushed to disk, and the temporary then replaces the target in one ``os.replace``.
A crash, a full disk or Ctrl-C leaves either the old file or the new one, never a torn one,
and two processes writing into one folder cannot clobber each other's temporaries.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

# Temporaries are hidden, and their names short enough that a long but legal target name
# still leaves room for the random part (file systems limit a name to 255 bytes).
_TMP_NAME_CHARS = 64
TMP_SUFFIX = ".tmp"


def temp_name(path: Path) -> Path:
    """A fresh hidden temporary name beside ``path`` (not created)."""
    return path.with_name(f".{path.name[:_TMP_NAME_CHARS]}.{secrets.token_hex(6)}{TMP_SUFFIX}")


def _create_temp(path: Path) -> tuple[int, Path]:
    # os.open with mode 0666 lets the kernel apply the umask (and any default ACL), so the
    # result has exactly the mode an ordinary new file would get; mkstemp would force 0600,
    # and reading the umask with os.umask() is racy in a threaded program.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(16):
        tmp = temp_name(path)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # 48 random bits taken: try another name
            continue
    raise FileExistsError(f"{path.parent}: no free temporary name")


@contextmanager
def atomic_write(path, mode: str = "wb", *, encoding: str | None = None,
                 fsync: bool = True) -> Iterator[IO]:
    """Open ``path`` for writing so that it appears complete or not at all.

    Yields a file object (``mode`` ``"wb"`` or ``"w"``; text defaults to UTF-8). When the block
    ends without an exception the data is flushed (and fsync'ed unless ``fsync=False``), then
    moved over ``path``; if the block raises, the temporary is deleted and ``path`` is left
    as it was. The target's folder must exist. New files get mode ``0o666 & ~umask``.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    fd, tmp = _create_temp(path)
    try:
        if mode == "w":
            fh = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline="")
        else:
            fh = os.fdopen(fd, "wb")
        with fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def atomic_copy(src, dst, chunk: int = 1 << 20) -> Path:
    """Copy ``src`` to ``dst`` atomically (``dst`` appears complete or not at all)."""
    import shutil

    with open(src, "rb") as inp, atomic_write(dst, "wb") as out:
        shutil.copyfileobj(inp, out, chunk)
    return Path(dst)
