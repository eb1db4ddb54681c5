"""``read_checkpoint``: any supported model file -> :class:`Checkpoint`, the format told by the
file's content, then by the objects and keys inside (the tables below, tried in order)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable


from ...errors import FormatError
from ..checkpoint import Checkpoint, _float_dict
from ..own_format import OWN_FORMAT, _from_own
from ..unpickle import PersistentStub, TFNetworkStub
from . import psp
from .ada import from_ada
from .files import (LEGACY_TORCH_MAGIC, ZIP_MAGIC, _is_tensor_dict, _pickle_load, _torch_load,
                    read_head)
from .genforce import from_genforce_pggan, from_genforce_stylegan
from .layouts import stylegan2_config_from_state
from .nvidia_tf import from_tf
from .rosinality import from_rosinality


def read_checkpoint(path, kind: str | None = None) -> Checkpoint:
    """Read any supported file into a :class:`Checkpoint` (format detected from content).

    ``kind``, if given, is the family the caller expects; a file of another family raises
    FormatError. Errors: FormatError (unknown/corrupt/wrong family), UnsafePickleError
    (a global outside the allow-list), WeightsError (missing or misshapen tensors).
    """
    path = Path(path)
    head = read_head(path)
    if not head:
        raise FormatError(f"{path}: empty file, not a model")
    if head.startswith(ZIP_MAGIC) or head.startswith(LEGACY_TORCH_MAGIC):
        # A zip file is mapped, not read: of a 1.2 GB e4e file only the decoder is copied.
        ckpt = _from_torch_object(_torch_load(path, mmap=head.startswith(ZIP_MAGIC)), path)
    elif head[:1] == b"\x80" or head[:1] in (b"(", b"c", b"}", b"]"):
        ckpt = _from_pickle_object(_pickle_load(path), path)
    else:
        raise FormatError(f"{path}: not a model file (neither a torch file nor a pickle)")
    if kind is not None and ckpt.kind != kind:
        raise FormatError(f"{path}: holds a {ckpt.kind} generator, expected {kind}")
    return ckpt


def _realedit_state_dict(obj: dict, path: Path) -> Checkpoint:
    sd = _float_dict(obj, path)
    return Checkpoint("stylegan2", stylegan2_config_from_state(sd, path), sd,
                      meta={"source_format": "state_dict"})


def _psp_decoder(obj: dict, path: Path) -> Checkpoint:
    return psp.decoder_checkpoint(psp.parse_psp(obj, path))


def _state_dict_with(*keys: str, prefix: str | None = None) -> Callable[[dict], bool]:
    """Test: a bare state dict (str -> tensor) holding any of ``keys`` (and, with ``prefix``,
    a key starting with it)."""
    def test(obj: dict) -> bool:
        return (_is_tensor_dict(obj) and any(k in obj for k in keys)
                and (prefix is None or any(k.startswith(prefix) for k in obj)))
    return test


Reader = Callable[[object, Path], Checkpoint]

# What a torch file's top-level dict is, tried in order: (format, test of the dict, reader).
# A new torch-file format is one row here and one module beside this one.
TORCH_FORMATS: tuple[tuple[str, Callable[[dict], bool], Reader], ...] = (
    (OWN_FORMAT, lambda o: o.get("format") == OWN_FORMAT, _from_own),
    ("psp / e4e", psp.is_psp_object, _psp_decoder),
    ("rosinality", lambda o: "g_ema" in o, from_rosinality),
    ("rosinality g_ema state dict", _state_dict_with("style.1.weight"),
     lambda o, path: from_rosinality({"g_ema": o}, path)),
    ("genforce stylegan",
     _state_dict_with("synthesis.layer0.first_layer", "mapping.dense0.linear.weight"),
     from_genforce_stylegan),
    ("genforce pggan", _state_dict_with("layer0.conv.weight", prefix="output"), from_genforce_pggan),
    ("state dict (realedit / ada layout)", _state_dict_with("synthesis.b4.const"),
     _realedit_state_dict),
)


def _tf_triple(obj) -> bool:
    return isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(n, TFNetworkStub) for n in obj)


# What a pickle's top-level object is, tried in order: (format, test, reader).
PICKLE_FORMATS: tuple[tuple[str, Callable[[object], bool], Reader], ...] = (
    ("tf (G, D, Gs)", _tf_triple, lambda o, path: from_tf(o[2], path, tf_D=o[1])),
    ("tf Gs", lambda o: isinstance(o, TFNetworkStub), from_tf),
    ("stylegan2-ada", lambda o: isinstance(o, dict) and isinstance(o.get("G_ema"), PersistentStub),
     from_ada),
)


def _from_torch_object(obj, path: Path) -> Checkpoint:
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: a torch file holding {type(obj).__name__}, not a generator")
    for _, test, reader in TORCH_FORMATS:
        if test(obj):
            return reader(obj, path)
    sample = ", ".join(repr(k) for k in list(obj)[:3])
    raise FormatError(f"{path}: a torch file, but not a generator of a known family "
                      f"(keys {sample})")


def _from_pickle_object(obj, path: Path) -> Checkpoint:
    for _, test, reader in PICKLE_FORMATS:
        if test(obj):
            return reader(obj, path)
    raise FormatError(f"{path}: a pickle, but not a network pickle of a known kind "
                      f"(top-level {type(obj).__name__})")
