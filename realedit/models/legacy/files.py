"""Opening foreign files safely: torch files through the weights-only unpickler (zip files
memory-mapped), pickles through realedit.models.unpickle; named tensors with clear errors."""
from __future__ import annotations

import argparse
import pathlib
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from ...errors import FormatError, UnsafePickleError, WeightsError, WeightsNotFound
from ..unpickle import restricted_load


ZIP_MAGIC = b"PK\x03\x04"
# torch.save's pre-1.6 format starts with the pickled magic number 0x1950a86a20f9469cfc6c.
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def _first_line(exc: BaseException) -> str:
    lines = [s for s in str(exc).strip().splitlines() if s.strip()]
    return lines[0].strip() if lines else type(exc).__name__


def _torch_load(path: Path, mmap: bool = False):
    """torch.load with the weights-only unpickler; ``mmap`` maps a zip file instead of reading it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # rosinality and pSp/e4e checkpoints also hold their argparse options (inert data;
            # a training script may have stored a path as a path object).
            with torch.serialization.safe_globals([argparse.Namespace, pathlib.PosixPath,
                                                   pathlib.PurePosixPath]):
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except pickle.UnpicklingError as exc:
            m = re.search(r"GLOBAL ([\w.]+)", str(exc))
            if m:
                raise UnsafePickleError(
                    f"{path}: the file asks for {m.group(1)}, which is not on the allow-list; "
                    f"refused, nothing from the file was executed") from None
            raise FormatError(f"{path}: corrupt torch file ({_first_line(exc)})") from None
        except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, KeyError,
                IndexError, TypeError, AttributeError) as exc:
            raise FormatError(f"{path}: truncated or corrupt torch file ({_first_line(exc)})") from None


def read_head(path: Path, size: int = 16) -> bytes:
    """The first ``size`` bytes of a weights file, which tell its format apart.
    WeightsNotFound if it is missing, WeightsError if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except FileNotFoundError:
        raise WeightsNotFound(f"{path}: no such file") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_torch_object(path, what: str = "model") -> object:
    """The object in a torch file (weights-only unpickler; a zip file is memory-mapped).
    FormatError for anything that is not a readable torch file."""
    path = Path(path)
    head = read_head(path)
    if not (head.startswith(ZIP_MAGIC) or head.startswith(LEGACY_TORCH_MAGIC)):
        raise FormatError(f"{path}: not a readable {what} file (not a torch file)")
    return _torch_load(path, mmap=head.startswith(ZIP_MAGIC))


def _pickle_load(path: Path):
    with open(path, "rb") as f:
        try:
            return restricted_load(f)
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{path}: {exc}") from None
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, MemoryError, OverflowError, RuntimeError) as exc:
            raise FormatError(f"{path}: truncated or corrupt pickle ({_first_line(exc)})") from None


def _is_tensor_dict(obj) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _tensor(x, name: str, path: Path) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float32).contiguous()
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise FormatError(f"{path}: variable {name!r} is not numeric ({a.dtype})")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class _Source:
    """Named foreign tensors; a missing name becomes one clear WeightsError. Remembers the
    names taken, so a converter can refuse a file with tensors it did not expect."""

    def __init__(self, tensors: dict, path: Path, what: str):
        self.t, self.path, self.what = tensors, path, what
        self.used: set[str] = set()

    def __contains__(self, name):
        return name in self.t

    def __call__(self, name: str) -> torch.Tensor:
        try:
            value = self.t[name]
        except KeyError:
            raise WeightsError(f"{self.path}: {self.what} lacks the variable {name!r}") from None
        self.used.add(name)
        return _tensor(value, name, self.path)

    def check_all_used(self, ignore: re.Pattern, hint: str = "") -> None:
        """FormatError naming the first tensor neither taken nor matched by ``ignore``."""
        extra = [k for k in self.t if k not in self.used and not ignore.match(k)]
        if extra:
            raise FormatError(f"{self.path}: {self.what} has unexpected tensor {extra[0]!r}"
                              + (f" ({hint})" if hint else ""))


# How a foreign tensor becomes ours, named for the tables of the converters (None: as stored).
def tf_conv(w):  # TF's [kh, kw, in, out] -> torch's [out, in, kh, kw]
    return w.permute(3, 2, 0, 1)


def tf_up_conv(w):  # TF's up-sampling conv is a transposed conv: its kernel flipped
    return w.flip(0, 1).permute(3, 2, 0, 1)


def transposed(w):  # TF's dense [in, out] -> torch's [out, in]
    return w.t()


def first(w):  # a leading axis of one (a batch of one, a conv of one sample)
    return w[0]


def plane(w):  # a [1, 1, H, W] noise image -> [H, W]
    return w[0, 0]


def scalar(w):
    return w.reshape([])


def flat(w):
    return w.reshape(-1)


def plus_one(b):  # a bias TF adds 1 to at run time
    return b + 1


def take(src: "_Source", rows, **names) -> dict:
    """Our tensors from a foreign file by a table: each row ``(ours, theirs, how)`` names a
    tensor of realedit's layout and the foreign one it comes from, both with ``{placeholders}``
    filled from ``names``; ``how`` re-lays it out (None: as stored)."""
    out = {}
    for ours, theirs, how in rows:
        t = src(theirs.format(**names))
        out[ours.format(**names)] = how(t) if how is not None else t
    return out


def _plain_kwargs(kw: dict) -> dict:
    """Only plain scalars/strings/lists survive into meta (meta must stay weights_only-safe)."""
    out = {}
    for k, val in kw.items():
        if isinstance(val, (bool, int, float, str)) or val is None:
            out[str(k)] = val
        elif isinstance(val, (list, tuple)) and all(isinstance(x, (bool, int, float, str)) for x in val):
            out[str(k)] = list(val)
        elif isinstance(val, np.generic):
            out[str(k)] = val.item()
    return out
