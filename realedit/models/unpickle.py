"""Restricted unpickling of foreign model pickles (NVIDIA TF1 and stylegan2-ada-pytorch).

A plain ``pickle.load`` of those files would import ``dnnlib``/``torch_utils`` and *execute the
network source code stored inside the pickle*. Here every global the stream asks for goes
through an explicit allow-list: the foreign network classes are replaced by inert stand-ins
that only record their pickled state, array/tensor rebuilding goes through numpy/torch
functions that cannot reach anything else, and any other global raises
:class:`~realedit.errors.UnsafePickleError` before it is even imported.
"""
from __future__ import annotations

import collections
import io
import pickle
import warnings
from typing import Any, BinaryIO

import numpy as np
import torch

from ..errors import UnsafePickleError


class TFNetworkStub:
    """Stand-in for ``dnnlib.tflib.network.Network`` / PGGAN's ``tfutil.Network``.

    Pickled state (``__getstate__`` of the TF1 code): version, name, static_kwargs,
    components (sub-networks, StyleGAN 1/2 only), build_module_src (never executed),
    build_func_name, variables (list of (name, numpy array)).
    """

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise UnsafePickleError("TF network pickle has a malformed state (not a dict)")
        self.state = state

    @property
    def name(self) -> str:
        return str(self.state.get("name", ""))

    @property
    def version(self) -> int:
        return int(self.state.get("version", 0))

    @property
    def build_func_name(self) -> str:
        return str(self.state.get("build_func_name", ""))

    @property
    def static_kwargs(self) -> dict:
        return dict(self.state.get("static_kwargs") or {})

    @property
    def components(self) -> dict:
        return dict(self.state.get("components") or {})

    @property
    def variables(self) -> list:
        return list(self.state.get("variables") or [])

    def all_variables(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Own variables plus those of every component, keyed 'component/var' (as TF scopes)."""
        out = {prefix + str(k): v for k, v in self.variables}
        for cname, comp in self.components.items():
            if isinstance(comp, TFNetworkStub):
                out.update(comp.all_variables(prefix + str(cname) + "/"))
        return out

    def __repr__(self):
        return f"TFNetworkStub(name={self.name!r}, build_func_name={self.build_func_name!r})"


class PersistentStub:
    """Stand-in for an object rebuilt by ``torch_utils.persistence._reconstruct_persistent_obj``.

    The pickled ``meta`` carries the class name, the module source (dropped here, never
    executed) and the object's ``__dict__``: for a ``torch.nn.Module`` that holds
    ``_parameters``, ``_buffers``, ``_modules`` and the recorded ``_init_kwargs``.
    """

    def __init__(self, class_name: str, state: dict):
        self.class_name = class_name
        self.state = state

    @property
    def init_kwargs(self) -> dict:
        return _plain(self.state.get("_init_kwargs") or {})

    def named_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and buffers of this module and its submodules, named like a state_dict."""
        out: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, t in (self.state.get(group) or {}).items():
                if t is not None:
                    out[prefix + name] = t
        for name, sub in (self.state.get("_modules") or {}).items():
            if isinstance(sub, PersistentStub):
                out.update(sub.named_tensors(prefix + name + "."))
        return out

    def __repr__(self):
        return f"PersistentStub({self.class_name!r})"


class EasyDictStub(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access; data only)."""


def _plain(x):
    """EasyDict stand-ins -> plain dicts, recursively (kwargs we store must be plain data)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    return x


# ----------------------------------------------------------------------------- safe callables

def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise UnsafePickleError("persistent object in the pickle has a malformed description")
    return PersistentStub(str(meta.get("class_name")), meta["state"])


def _copyreg_reconstructor(cls, base, state):
    # Protocol 0/1 form of object creation; only ever for our own inert stand-ins.
    if cls not in _STUB_CLASSES or base is not object or state is not None:
        raise UnsafePickleError(f"pickle asks copyreg._reconstructor for {cls!r}; refused")
    return object.__new__(cls)


def _codecs_encode(obj, encoding="utf-8"):
    # Protocol <= 2 stores bytes as latin-1 text; decoding that is all this may do.
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("pickle asks _codecs.encode for something other than latin-1 text; refused")
    return obj.encode("latin1")


def _np_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"pickle asks for an array of type {subtype!r}; refused")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("pickle asks for a numpy object scalar; refused")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _load_storage_from_bytes(b):
    # torch pickles a storage as a nested torch.save stream; read it with torch's own
    # weights-only unpickler instead of the unrestricted one torch would use.
    if not isinstance(b, (bytes, bytearray)):
        raise UnsafePickleError("pickle has a malformed tensor storage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            storage = torch.load(io.BytesIO(b), weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as exc:
            raise UnsafePickleError(f"tensor storage inside the pickle is not plain data: {_first_line(exc)}") from None
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError("pickle has a tensor storage that is not a storage")
    return storage


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError("pickle rebuilds a tensor from something that is not a storage")
    if backward_hooks:
        raise UnsafePickleError("pickle attaches backward hooks to a tensor; refused")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = torch._utils._rebuild_tensor(storage, storage_offset, tuple(size), tuple(stride))
    return t


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, *rest):
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("pickle rebuilds a parameter from something that is not a tensor")
    if backward_hooks:
        raise UnsafePickleError("pickle attaches backward hooks to a parameter; refused")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


_TORCH_DTYPES = {name: getattr(torch, name) for name in (
    "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")}

_STUB_CLASSES = (TFNetworkStub, EasyDictStub)

# (module, name) -> object handed to the pickle machinery. Nothing else is ever imported.
ALLOWED: dict[tuple[str, str], Any] = {
    ("dnnlib.tflib.network", "Network"): TFNetworkStub,
    ("tfutil", "Network"): TFNetworkStub,                     # PGGAN (tkarras) pickles
    ("dnnlib.util", "EasyDict"): EasyDictStub,
    ("dnnlib", "EasyDict"): EasyDictStub,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "object"): object,
    ("copyreg", "_reconstructor"): _copyreg_reconstructor,
    ("_codecs", "encode"): _codecs_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("torch", "Size"): torch.Size,
    **{("torch", k): v for k, v in _TORCH_DTYPES.items()},
}


# What a numpy-pickled dict of arrays needs, and nothing else (idinvert's direction files).
NUMPY_ONLY: dict[tuple[str, str], Any] = {
    k: v for k, v in ALLOWED.items() if k[0].split(".")[0] == "numpy"
    or k == ("collections", "OrderedDict")}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come only from an allow-list (:data:`ALLOWED`, or a
    part of it such as :data:`NUMPY_ONLY`): realedit's one way to read a foreign pickle."""

    def __init__(self, f, allowed: dict | None = None, what: str = "inert model classes"):
        super().__init__(f)
        self.allowed = ALLOWED if allowed is None else allowed
        self.what = what

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"pickle asks for {module}.{name}, which is not on the allow-list of {self.what}; "
                f"refused, nothing from the file was executed") from None

    def persistent_load(self, pid):
        raise UnsafePickleError("pickle uses persistent ids (not a plain network pickle); refused")


def restricted_load(f: BinaryIO, allowed: dict | None = None, what: str = "inert model classes"):
    """Unpickle ``f`` with :class:`RestrictedUnpickler` (raises UnsafePickleError on a refused
    global); ``allowed``: the allow-list (default :data:`ALLOWED`), ``what`` names it in errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RestrictedUnpickler(f, allowed, what).load()


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip().splitlines()
    return s[0] if s else type(exc).__name__
