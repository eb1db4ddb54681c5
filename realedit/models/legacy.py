"""Every foreign weight format, converted into realedit's own layouts in this one place.

``read_checkpoint(path)`` looks at the file's *content* (zip magic, legacy torch magic,
pickle opcodes, then the objects and keys inside) and returns a :class:`Checkpoint`: the
family, the constructor config and a state dict named like realedit's modules. Formats:

- realedit's own ``{"format": "realedit-model", ...}`` torch file;
- NVIDIA TF1 pickles ``(G, D, Gs)``: PGGAN (``tfutil.Network``, build func ``G_paper``),
  StyleGAN (``G_style``), StyleGAN2 (``G_main`` + ``G_synthesis_stylegan2``); read through
  :mod:`realedit.models.unpickle`, never executing the source stored in them;
- stylegan2-ada-pytorch pickles (``{"G", "D", "G_ema", ...}`` of persistent objects): only
  the stored parameter/buffer tensors and ``init_kwargs`` are used;
- rosinality ``.pt`` (``{"g_ema": state_dict, "latent_avg": w, ...}``);
- pSp / e4e checkpoints (their ``decoder.*`` is a rosinality generator; the encoder is read by
  ``realedit.invert.psp``; the file layout is in :mod:`realedit.models.psp_format`);
- genforce/interfacegan converted ``.pth`` state dicts (PGGAN and StyleGAN ports);
- a bare state dict already in realedit's StyleGAN2 layout (= ada-pytorch names).

The name tables follow the official converters (stylegan2-ada-pytorch ``legacy.py``,
rosinality ``convert_weight.py``, interfacegan ``*_generator_model.py``); the layout
transforms (transposes, kernel flips, bias offsets) are applied exactly as they do.
"""
from __future__ import annotations

import argparse
import math
import pathlib
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import FormatError, UnsafePickleError, WeightsError, WeightsNotFound
from .unpickle import PersistentStub, TFNetworkStub, restricted_load

OWN_FORMAT = "realedit-model"
OWN_VERSION = 1
KINDS = ("pggan", "stylegan", "stylegan2")

ZIP_MAGIC = b"PK\x03\x04"
# torch.save's pre-1.6 format starts with the pickled magic number 0x1950a86a20f9469cfc6c.
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


@dataclass
class Checkpoint:
    """A generator (and maybe a discriminator) in realedit's layout, not yet instantiated."""

    kind: str
    config: dict
    G: dict[str, torch.Tensor]
    D: dict[str, torch.Tensor] | None = None
    D_config: dict | None = None
    meta: dict = field(default_factory=dict)
    # Foreign discriminators are converted only when asked for, so that a problem with D
    # never stops the generator from loading.
    D_thunk: Callable[[], tuple[dict | None, dict | None]] | None = field(default=None, repr=False)

    def discriminator(self) -> tuple[dict[str, torch.Tensor] | None, dict | None]:
        """(state dict, config) of the stored discriminator in realedit's layout, or (None, None)."""
        if self.D is None and self.D_thunk is not None:
            self.D, self.D_config = self.D_thunk()
            self.D_thunk = None
        return self.D, self.D_config


# ============================================================================ detection

def read_checkpoint(path, kind: str | None = None) -> Checkpoint:
    """Read any supported file into a :class:`Checkpoint` (format detected from content).

    ``kind``, if given, is the family the caller expects; a file of another family raises
    FormatError. Errors: FormatError (unknown/corrupt/wrong family), UnsafePickleError
    (a global outside the allow-list), WeightsError (missing or misshapen tensors).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise WeightsNotFound(f"{path}: no such file") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror or exc})") from None
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


def read_torch_object(path, what: str = "model") -> object:
    """The object in a torch file (weights-only unpickler; a zip file is memory-mapped).
    FormatError for anything that is not a readable torch file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise WeightsNotFound(f"{path}: no such file") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror or exc})") from None
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


def _from_torch_object(obj, path: Path) -> Checkpoint:
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: a torch file holding {type(obj).__name__}, not a generator")
    if obj.get("format") == OWN_FORMAT:
        return _from_own(obj, path)
    from . import psp_format
    if psp_format.is_psp_object(obj):
        return psp_format.decoder_checkpoint(psp_format.parse_psp(obj, path))
    if "g_ema" in obj:
        return from_rosinality(obj, path)
    keys = set(obj)
    if _is_tensor_dict(obj):
        if "style.1.weight" in keys:
            return from_rosinality({"g_ema": obj}, path)
        if "synthesis.layer0.first_layer" in keys or "mapping.dense0.linear.weight" in keys:
            return from_genforce_stylegan(obj, path)
        if "layer0.conv.weight" in keys and any(k.startswith("output") for k in keys):
            return from_genforce_pggan(obj, path)
        if "synthesis.b4.const" in keys:
            sd = _float_dict(obj, path)
            return Checkpoint("stylegan2", stylegan2_config_from_state(sd, path), sd,
                              meta={"source_format": "state_dict"})
    sample = ", ".join(repr(k) for k in list(keys)[:3])
    raise FormatError(f"{path}: a torch file, but not a generator of a known family (keys {sample})")


def _from_pickle_object(obj, path: Path) -> Checkpoint:
    if isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(n, TFNetworkStub) for n in obj):
        return from_tf(obj[2], path, tf_D=obj[1])
    if isinstance(obj, TFNetworkStub):
        return from_tf(obj, path)
    if isinstance(obj, dict) and isinstance(obj.get("G_ema"), PersistentStub):
        return from_ada(obj, path)
    raise FormatError(f"{path}: a pickle, but not a network pickle of a known kind "
                      f"(top-level {type(obj).__name__})")


def _is_tensor_dict(obj) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _float_dict(sd: dict, path: Path) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise FormatError(f"{path}: entry {k!r} is not a tensor")
        out[k] = v.detach().to(torch.float32).contiguous()
    return out


def _tensor(x, name: str, path: Path) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float32).contiguous()
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise FormatError(f"{path}: variable {name!r} is not numeric ({a.dtype})")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class _Source:
    """Named foreign tensors; a missing name becomes one clear WeightsError."""

    def __init__(self, tensors: dict, path: Path, what: str):
        self.t, self.path, self.what = tensors, path, what

    def __contains__(self, name):
        return name in self.t

    def __call__(self, name: str) -> torch.Tensor:
        try:
            value = self.t[name]
        except KeyError:
            raise WeightsError(f"{self.path}: {self.what} lacks the variable {name!r}") from None
        return _tensor(value, name, self.path)


# ============================================================================ own format

def _from_own(obj: dict, path: Path) -> Checkpoint:
    version = obj.get("version")
    if version != OWN_VERSION:
        raise FormatError(f"{path}: realedit model format version {version!r} is not supported "
                          f"(this realedit reads version {OWN_VERSION})")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise FormatError(f"{path}: unknown generator kind {kind!r}")
    config, G = obj.get("config"), obj.get("G")
    if not isinstance(config, dict) or not isinstance(G, dict) or not G:
        raise FormatError(f"{path}: realedit model file without a config or generator weights")
    D, D_config = obj.get("D"), obj.get("D_config")
    return Checkpoint(kind, dict(config), _float_dict(G, path),
                      _float_dict(D, path) if isinstance(D, dict) else None,
                      dict(D_config) if isinstance(D_config, dict) else None,
                      dict(obj.get("meta") or {}, source_format=OWN_FORMAT))


def to_own(kind: str, config: dict, G_state: dict, D_state=None, D_config=None, meta=None) -> dict:
    """The dict realedit writes (see ``realedit.models.save``); loadable with weights_only=True."""
    return {"format": OWN_FORMAT, "version": OWN_VERSION, "kind": kind, "config": dict(config),
            "G": {k: v.detach().cpu().contiguous() for k, v in G_state.items()},
            "D": ({k: v.detach().cpu().contiguous() for k, v in D_state.items()}
                  if D_state is not None else None),
            "D_config": dict(D_config) if D_config is not None else None,
            "meta": dict(meta or {})}


# ============================================================================ config inference

def fit_channels(ch: dict[int, int], path: Path, what: str = "generator") -> tuple[int, int]:
    """(channel_base, channel_max) with ``min(channel_base // res, channel_max) == ch[res]``."""
    cmax = max(ch.values())
    below = [r for r in sorted(ch) if ch[r] < cmax]
    base = ch[below[0]] * below[0] if below else cmax * max(ch)
    if any(min(base // r, cmax) != c for r, c in ch.items()):
        raise FormatError(f"{path}: the {what}'s channel widths {dict(sorted(ch.items()))} do not "
                          f"follow min(base / res, max); not supported")
    return base, cmax


def _resolutions(keys, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys for m in [rx.match(k)] if m})


def stylegan2_config_from_state(sd: dict, path: Path, **overrides) -> dict:
    """StyleGAN2 generator config implied by the shapes of a realedit-layout state dict."""
    if "mapping.embed.weight" in sd:
        raise FormatError(f"{path}: class-conditional generators are not supported")
    res = _resolutions(sd, r"synthesis\.b(\d+)\.")
    n_map = len(_resolutions(sd, r"mapping\.fc(\d+)\.weight"))
    if not res or res[0] != 4 or "synthesis.b4.const" not in sd or n_map == 0:
        raise FormatError(f"{path}: not a StyleGAN2 generator (no synthesis.b4.const / mapping.fc0)")
    if any(f"synthesis.b{r}.skip.weight" in sd for r in res):
        raise FormatError(f"{path}: a 'resnet' StyleGAN2 generator; only the 'skip' one (config-f) is supported")
    z_dim = sd["mapping.fc0.weight"].shape[1]
    w_dim = sd[f"mapping.fc{n_map - 1}.weight"].shape[0]
    if any(sd[f"mapping.fc{i}.weight"].shape[0] != w_dim for i in range(n_map)):
        raise FormatError(f"{path}: mapping layers wider or narrower than w_dim are not supported")
    ch = {4: sd["synthesis.b4.const"].shape[0]}
    for r in res[1:]:
        key = f"synthesis.b{r}.conv1.weight"
        if key not in sd:
            raise WeightsError(f"{path}: StyleGAN2 generator lacks {key!r}")
        ch[r] = sd[key].shape[0]
    base, cmax = fit_channels(ch, path)
    cfg = dict(resolution=res[-1], z_dim=int(z_dim), w_dim=int(w_dim), mapping_layers=n_map,
               channel_base=base, channel_max=cmax,
               img_channels=int(sd[f"synthesis.b{res[-1]}.torgb.weight"].shape[0])
               if f"synthesis.b{res[-1]}.torgb.weight" in sd else 3)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def stylegan2_d_config_from_state(sd: dict, path: Path, **overrides) -> dict:
    res = _resolutions(sd, r"b(\d+)\.")
    if not res or "b4.conv.weight" not in sd:
        raise FormatError(f"{path}: not a StyleGAN2 discriminator (no b4.conv)")
    top = res[-1]
    if f"b{top}.fromrgb.weight" not in sd:
        raise FormatError(f"{path}: only the 'resnet' StyleGAN2 discriminator is supported")
    ch = {4: sd["b4.conv.weight"].shape[0]}
    for r in res[1:]:
        ch[r] = sd[f"b{r}.conv0.weight"].shape[0]
    if sd["b4.conv.weight"].shape[1] != ch[4] + 1:
        raise FormatError(f"{path}: discriminator minibatch-stddev with more than one feature is not supported")
    base, cmax = fit_channels(ch, path, "discriminator")
    cfg = dict(resolution=top, img_channels=int(sd[f"b{top}.fromrgb.weight"].shape[1]),
               channel_base=base, channel_max=cmax)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


# ============================================================================ TF1 pickles

def from_tf(Gs: TFNetworkStub, path: Path, tf_D: TFNetworkStub | None = None) -> Checkpoint:
    func = Gs.build_func_name
    if func == "G_main":
        synth = Gs.components.get("synthesis")
        sfunc = synth.build_func_name if isinstance(synth, TFNetworkStub) else ""
        if sfunc != "G_synthesis_stylegan2":
            raise FormatError(f"{path}: StyleGAN2 TF pickle with synthesis {sfunc!r}; only "
                              f"'G_synthesis_stylegan2' (configs E/F) is supported")
        return _from_tf_stylegan2(Gs, path, tf_D)
    if func == "G_style":
        return _from_tf_stylegan(Gs, path)
    if func == "G_paper":
        return _from_tf_pggan(Gs, path)
    raise FormatError(f"{path}: TF network pickle built by {func!r}, not a known generator")


def _tf_kwargs(net: TFNetworkStub) -> dict:
    kw = dict(net.static_kwargs)
    for comp in net.components.values():
        if isinstance(comp, TFNetworkStub):
            for k, v in comp.static_kwargs.items():
                kw.setdefault(k, v)
    return kw


def _check_tf_kwargs(kw: dict, path: Path):
    if kw.get("label_size", 0):
        raise FormatError(f"{path}: class-conditional generators are not supported")
    if kw.get("num_channels", 3) not in (1, 3):
        raise FormatError(f"{path}: {kw['num_channels']} image channels are not supported")


def _from_tf_stylegan2(Gs: TFNetworkStub, path: Path, tf_D) -> Checkpoint:
    v = _Source(Gs.all_variables(), path, "StyleGAN2 TF network")
    kw = _tf_kwargs(Gs)
    _check_tf_kwargs(kw, path)
    if kw.get("architecture", "skip") != "skip":
        raise FormatError(f"{path}: StyleGAN2 generator architecture {kw['architecture']!r}; only 'skip' is supported")
    res = _resolutions(v.t, r"synthesis/(\d+)x\d+/")
    n_map = len(_resolutions(v.t, r"mapping/Dense(\d+)/weight"))
    sd = {"mapping.w_avg": v("dlatent_avg")}
    for i in range(n_map):
        sd[f"mapping.fc{i}.weight"] = v(f"mapping/Dense{i}/weight").t()
        sd[f"mapping.fc{i}.bias"] = v(f"mapping/Dense{i}/bias")
    sd["synthesis.b4.const"] = v("synthesis/4x4/Const/const")[0]

    def modconv(ours, tf, noise, flip=False):
        w = v(f"{tf}/weight")                                    # [kh, kw, in, out]
        if flip:  # TF's upsampling conv is a transposed conv with the kernel flipped
            w = w.flip(0, 1)
        sd[f"{ours}.weight"] = w.permute(3, 2, 0, 1)
        sd[f"{ours}.bias"] = v(f"{tf}/bias")
        sd[f"{ours}.affine.weight"] = v(f"{tf}/mod_weight").t()
        sd[f"{ours}.affine.bias"] = v(f"{tf}/mod_bias") + 1    # TF adds the 1 at run time
        if noise is not None:
            sd[f"{ours}.noise_strength"] = v(f"{tf}/noise_strength").reshape([])
            sd[f"{ours}.noise_const"] = v(f"synthesis/noise{noise}")[0, 0]

    modconv("synthesis.b4.conv1", "synthesis/4x4/Conv", 0)
    modconv("synthesis.b4.torgb", "synthesis/4x4/ToRGB", None)
    for r in res[1:]:
        l2 = int(math.log2(r))
        modconv(f"synthesis.b{r}.conv0", f"synthesis/{r}x{r}/Conv0_up", 2 * l2 - 5, flip=True)
        modconv(f"synthesis.b{r}.conv1", f"synthesis/{r}x{r}/Conv1", 2 * l2 - 4)
        modconv(f"synthesis.b{r}.torgb", f"synthesis/{r}x{r}/ToRGB", None)
    sd = {k: t.contiguous() for k, t in sd.items()}
    cfg = stylegan2_config_from_state(sd, path, mapping_lr_multiplier=kw.get("mapping_lrmul"),
                                      w_avg_beta=kw.get("dlatent_avg_beta"))
    thunk = None
    if tf_D is not None and tf_D.build_func_name == "D_stylegan2":
        thunk = lambda: _from_tf_stylegan2_D(tf_D, path)  # noqa: E731
    return Checkpoint("stylegan2", cfg, sd, meta={"source_format": "tf-stylegan2", "tf_kwargs": _plain_kwargs(kw)},
                      D_thunk=thunk)


def _from_tf_stylegan2_D(tf_D: TFNetworkStub, path: Path):
    kw = dict(tf_D.static_kwargs)
    if kw.get("architecture", "resnet") != "resnet" or kw.get("label_size", 0):
        return None, None  # only the config-f discriminator maps onto ours; G still loads
    v = _Source(tf_D.all_variables(), path, "StyleGAN2 TF discriminator")
    res = _resolutions(v.t, r"(\d+)x\d+/")
    if not res:
        raise WeightsError(f"{path}: the StyleGAN2 TF discriminator has no variables")
    top = res[-1]
    conv = lambda name: v(name).permute(3, 2, 0, 1)  # noqa: E731
    sd = {f"b{top}.fromrgb.weight": conv(f"{top}x{top}/FromRGB/weight"),
          f"b{top}.fromrgb.bias": v(f"{top}x{top}/FromRGB/bias")}
    for r in res[1:]:
        sd[f"b{r}.conv0.weight"] = conv(f"{r}x{r}/Conv0/weight")
        sd[f"b{r}.conv0.bias"] = v(f"{r}x{r}/Conv0/bias")
        sd[f"b{r}.conv1.weight"] = conv(f"{r}x{r}/Conv1_down/weight")
        sd[f"b{r}.conv1.bias"] = v(f"{r}x{r}/Conv1_down/bias")
        sd[f"b{r}.skip.weight"] = conv(f"{r}x{r}/Skip/weight")
    sd["b4.conv.weight"] = conv("4x4/Conv/weight")
    sd["b4.conv.bias"] = v("4x4/Conv/bias")
    sd["b4.fc.weight"] = v("4x4/Dense0/weight").t()
    sd["b4.fc.bias"] = v("4x4/Dense0/bias")
    sd["b4.out.weight"] = v("Output/weight").t()
    sd["b4.out.bias"] = v("Output/bias")
    sd = {k: t.contiguous() for k, t in sd.items()}
    return sd, stylegan2_d_config_from_state(sd, path, mbstd_group_size=kw.get("mbstd_group_size"))


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


# ============================================================================ ada-pytorch pickles

_ADA_IGNORED = re.compile(r"(.*\.)?resample_filter$")


def from_ada(data: dict, path: Path) -> Checkpoint:
    G = data["G_ema"]
    if G.class_name != "Generator":
        raise FormatError(f"{path}: G_ema is a {G.class_name!r}, not a StyleGAN2 Generator")
    kw = G.init_kwargs
    if kw.get("c_dim", 0):
        raise FormatError(f"{path}: class-conditional generators are not supported")
    mk, sk = dict(kw.get("mapping_kwargs") or {}), dict(kw.get("synthesis_kwargs") or {})
    if sk.get("architecture", "skip") != "skip":
        raise FormatError(f"{path}: StyleGAN2 generator architecture {sk['architecture']!r}; only 'skip' is supported")
    if list(sk.get("resample_filter", [1, 3, 3, 1])) != [1, 3, 3, 1]:
        raise FormatError(f"{path}: resample filter {sk['resample_filter']} is not supported")
    sd = {k: _tensor(t, k, path) for k, t in G.named_tensors().items() if not _ADA_IGNORED.match(k)}
    if not any(k.startswith("synthesis.b4.") for k in sd):
        raise FormatError(f"{path}: G_ema is not a StyleGAN2 generator (StyleGAN3 and others are not supported)")
    cfg = stylegan2_config_from_state(sd, path, mapping_lr_multiplier=mk.get("lr_multiplier"),
                                      w_avg_beta=mk.get("w_avg_beta"), conv_clamp=sk.get("conv_clamp"))
    meta = {"source_format": "ada-pytorch", "init_kwargs": _plain_nested(kw)}
    Dstub = data.get("D")
    thunk = (lambda: _from_ada_D(Dstub, path)) if isinstance(Dstub, PersistentStub) else None
    return Checkpoint("stylegan2", cfg, sd, meta=meta, D_thunk=thunk)


def _from_ada_D(Dstub: PersistentStub, path: Path):
    dkw = Dstub.init_kwargs
    ek = dict(dkw.get("epilogue_kwargs") or {})
    if (Dstub.class_name != "Discriminator" or dkw.get("architecture", "resnet") != "resnet"
            or dkw.get("c_dim", 0) or ek.get("mbstd_num_channels", 1) != 1):
        return None, None  # a discriminator realedit has no module for
    D = {k: _tensor(t, k, path) for k, t in Dstub.named_tensors().items() if not _ADA_IGNORED.match(k)}
    return D, stylegan2_d_config_from_state(D, path, mbstd_group_size=ek.get("mbstd_group_size"))


def _plain_nested(kw: dict) -> dict:
    out = _plain_kwargs(kw)
    for k, val in kw.items():
        if isinstance(val, dict):
            out[str(k)] = _plain_nested(val)
    return out


# ============================================================================ rosinality

_ROSI_IGNORED = re.compile(r"(convs\.\d+\.conv\.blur\.kernel|to_rgbs\.\d+\.upsample\.kernel)$")


def from_rosinality(obj: dict, path: Path) -> Checkpoint:
    g = obj["g_ema"]
    if not _is_tensor_dict(g):
        raise FormatError(f"{path}: 'g_ema' is not a state dict of tensors")
    src = _Source(g, path, "rosinality g_ema")
    n_map = len(_resolutions(g, r"style\.(\d+)\.weight"))
    n_convs = len(_resolutions(g, r"convs\.(\d+)\.conv\.weight"))
    if n_map == 0 or "input.input" not in g or n_convs % 2:
        raise FormatError(f"{path}: not a rosinality StyleGAN2 generator (no style.1 / input.input)")
    used = set()

    def get(name):
        used.add(name)
        return src(name)

    sd = {}
    for i in range(n_map):  # style.0 is the PixelNorm; EqualLinear stores weight/lr_mul as ada does
        sd[f"mapping.fc{i}.weight"] = get(f"style.{i + 1}.weight")
        sd[f"mapping.fc{i}.bias"] = get(f"style.{i + 1}.bias")
    sd["synthesis.b4.const"] = get("input.input")[0]

    def styled(ours, theirs, noise_idx):
        # rosinality scales the conv weight by 1/sqrt(fan_in) before demodulating; ada does not.
        # Demodulation cancels any constant factor, so the stored values carry over unchanged.
        sd[f"{ours}.weight"] = get(f"{theirs}.conv.weight")[0]
        sd[f"{ours}.affine.weight"] = get(f"{theirs}.conv.modulation.weight")
        sd[f"{ours}.affine.bias"] = get(f"{theirs}.conv.modulation.bias")
        sd[f"{ours}.noise_strength"] = get(f"{theirs}.noise.weight").reshape([])
        sd[f"{ours}.bias"] = get(f"{theirs}.activate.bias")
        sd[f"{ours}.noise_const"] = get(f"noises.noise_{noise_idx}")[0, 0]

    def torgb(ours, theirs):
        # ToRGB: rosinality's 1/sqrt(in) on the weight == ada's weight_gain on the styles.
        sd[f"{ours}.weight"] = get(f"{theirs}.conv.weight")[0]
        sd[f"{ours}.affine.weight"] = get(f"{theirs}.conv.modulation.weight")
        sd[f"{ours}.affine.bias"] = get(f"{theirs}.conv.modulation.bias")
        sd[f"{ours}.bias"] = get(f"{theirs}.bias").reshape(-1)

    styled("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for k in range(n_convs // 2):
        r = 2 ** (k + 3)
        styled(f"synthesis.b{r}.conv0", f"convs.{2 * k}", 2 * k + 1)
        styled(f"synthesis.b{r}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        torgb(f"synthesis.b{r}.torgb", f"to_rgbs.{k}")
    extra = [k for k in g if k not in used and not _ROSI_IGNORED.match(k)]
    if extra:
        raise FormatError(f"{path}: rosinality g_ema has unexpected tensor {extra[0]!r} "
                          f"(not a StyleGAN2 'skip' generator?)")
    meta = {"source_format": "rosinality"}
    la = obj.get("latent_avg")
    if isinstance(la, torch.Tensor):
        sd["mapping.w_avg"] = la.detach().to(torch.float32).reshape(-1)
    else:
        meta["w_avg"] = "estimated"  # filled in by estimate_w_avg() after the model is built
    sd = {k: t.contiguous() for k, t in sd.items()}
    cfg = stylegan2_config_from_state(sd, path)
    if "mapping.w_avg" not in sd:
        sd["mapping.w_avg"] = torch.zeros(cfg["w_dim"])
    return Checkpoint("stylegan2", cfg, sd, meta=meta)


def estimate_w_avg(G, n: int = 4096, seed: int = 0) -> torch.Tensor:
    """Mean of mapping(z) over a fixed set of z (for files that do not store w_avg)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=gen)
    with torch.no_grad():
        saved = G.w_avg.clone()
        ws = G.mapping(z)
        G.w_avg.copy_(saved)
    return ws[:, 0].mean(0)


# ============================================================================ StyleGAN (v1)

_SG1_FIXED_KWARGS = {"use_noise": True, "use_styles": True, "const_input_layer": True,
                     "use_pixel_norm": False, "use_instance_norm": True, "use_wscale": True,
                     "randomize_noise": None, "nonlinearity": "lrelu", "mapping_nonlinearity": "lrelu",
                     "normalize_latents": True, "fmap_decay": 1.0}


def _check_fixed(kw: dict, fixed: dict, path: Path, family: str):
    for k, want in fixed.items():
        if want is not None and k in kw and kw[k] != want:
            raise FormatError(f"{path}: {family} with {k}={kw[k]!r} is not supported (only {want!r})")


def _lod_zero(v: _Source, names, path: Path):
    for n in names:
        if n in v and float(np.asarray(v.t[n]).reshape(-1)[0]) != 0.0:
            raise FormatError(f"{path}: the network is still growing ({n} = {float(np.asarray(v.t[n]))}); "
                              f"only finished networks (lod 0) are supported")


def _sg1_layer_scope(i: int) -> str:
    if i < 2:
        return ("4x4/Const", "4x4/Conv")[i]
    r = 2 ** (i // 2 + 2)
    return f"{r}x{r}/{'Conv0_up' if i % 2 == 0 else 'Conv1'}"


def stylegan_config_from_state(sd: dict, path: Path, **overrides) -> dict:
    """StyleGAN (v1) generator config implied by the shapes of a realedit-layout state dict."""
    n_map = len(_resolutions(sd, r"mapping\.dense(\d+)\.weight"))
    n_layers = len(_resolutions(sd, r"synthesis\.layer(\d+)\.bias"))
    if n_map == 0 or "synthesis.const" not in sd or n_layers < 2 or n_layers % 2:
        raise FormatError(f"{path}: not a StyleGAN generator (no mapping.dense0 / synthesis.const)")
    resolution = 2 ** (n_layers // 2 + 1)
    ch = {}
    for i in range(n_layers):
        ch[2 ** (i // 2 + 2)] = sd[f"synthesis.layer{i}.bias"].shape[0]
    base, cmax = fit_channels(ch, path)
    z_dim = int(sd["mapping.dense0.weight"].shape[1])
    w_dim = int(sd[f"mapping.dense{n_map - 1}.weight"].shape[0])
    hidden = int(sd["mapping.dense0.weight"].shape[0]) if n_map > 1 else w_dim
    cfg = dict(resolution=resolution, z_dim=z_dim, w_dim=w_dim, mapping_layers=n_map,
               mapping_fmaps=None if hidden == w_dim else hidden, fmap_base=base // 2, fmap_max=cmax,
               img_channels=int(sd["synthesis.torgb.weight"].shape[0]) if "synthesis.torgb.weight" in sd else 3)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def _from_tf_stylegan(Gs: TFNetworkStub, path: Path) -> Checkpoint:
    v = _Source(Gs.all_variables(), path, "StyleGAN TF network")
    kw = _tf_kwargs(Gs)
    _check_tf_kwargs(kw, path)
    _check_fixed(kw, _SG1_FIXED_KWARGS, path, "StyleGAN")
    _lod_zero(v, ("lod", "synthesis/lod"), path)
    n_map = len(_resolutions(v.t, r"mapping/Dense(\d+)/weight"))
    res = _resolutions(v.t, r"synthesis/(\d+)x\d+/")
    n_layers = 2 * len(res)
    sd = {"mapping.w_avg": v("dlatent_avg"), "synthesis.const": v("synthesis/4x4/Const/const")[0]}
    for j in range(n_map):
        sd[f"mapping.dense{j}.weight"] = v(f"mapping/Dense{j}/weight").t()
        sd[f"mapping.dense{j}.bias"] = v(f"mapping/Dense{j}/bias")
    for i in range(n_layers):
        t, p = f"synthesis/{_sg1_layer_scope(i)}", f"synthesis.layer{i}"
        if i:
            # TF [kh, kw, in, out] also for the fused Conv0_up (it transposes at run time).
            sd[f"{p}.weight"] = v(f"{t}/weight").permute(3, 2, 0, 1)
        sd[f"{p}.bias"] = v(f"{t}/bias")
        sd[f"{p}.noise_strength"] = v(f"{t}/Noise/weight")
        sd[f"{p}.noise_const"] = v(f"synthesis/noise{i}")[0, 0]
        sd[f"{p}.style.weight"] = v(f"{t}/StyleMod/weight").t()
        sd[f"{p}.style.bias"] = v(f"{t}/StyleMod/bias")
    sd["synthesis.torgb.weight"] = v("synthesis/ToRGB_lod0/weight").permute(3, 2, 0, 1)
    sd["synthesis.torgb.bias"] = v("synthesis/ToRGB_lod0/bias")
    sd = {k: t.contiguous() for k, t in sd.items()}
    blur = kw.get("blur_filter", [1, 2, 1])
    cfg = stylegan_config_from_state(
        sd, path, mapping_lr_multiplier=kw.get("mapping_lrmul"), w_avg_beta=kw.get("dlatent_avg_beta"),
        fused_scale=kw.get("fused_scale"), truncation_cutoff=kw.get("truncation_cutoff"))
    cfg["blur_taps"] = list(blur) if blur is not None else None
    return Checkpoint("stylegan", cfg, sd, meta={"source_format": "tf-stylegan", "tf_kwargs": _plain_kwargs(kw)})


def _fused_setting(fused_res: set, up_res: list, path: Path):
    """genforce stores fused up-convs under another name: recover fused_scale from which are."""
    if not fused_res:
        return False
    if fused_res == set(up_res):
        return True
    if fused_res == {r for r in up_res if r >= 128}:
        return "auto"
    raise FormatError(f"{path}: fused up-convolutions at {sorted(fused_res)} follow no known fused_scale setting")


def _drop_known(sd: dict, used: set, ignore: re.Pattern, path: Path, what: str):
    extra = [k for k in sd if k not in used and not ignore.match(k)]
    if extra:
        raise FormatError(f"{path}: {what} has unexpected tensor {extra[0]!r}")


_GF_SG1_IGNORED = re.compile(r"(truncation\.truncation|synthesis\.lod|synthesis\.layer\d+\.blur\.kernel|synthesis\.output\d+\..*)$")


def from_genforce_stylegan(g: dict, path: Path) -> Checkpoint:
    src = _Source(g, path, "genforce StyleGAN state dict")
    used = set()

    def get(name):
        used.add(name)
        return src(name)

    n_map = len(_resolutions(g, r"mapping\.dense(\d+)\.linear\.weight"))
    n_layers = len(_resolutions(g, r"synthesis\.layer(\d+)\.epilogue\.bias"))
    if n_map == 0 or n_layers < 2 or n_layers % 2:
        raise FormatError(f"{path}: not a genforce StyleGAN generator (no mapping.dense0 / synthesis.layer0)")
    if "synthesis.lod" in g and float(g["synthesis.lod"]) != 0:
        raise FormatError(f"{path}: the network is still growing (synthesis.lod = {float(g['synthesis.lod'])})")
    sd = {"mapping.w_avg": get("truncation.w_avg"),
          "synthesis.const": get("synthesis.layer0.first_layer")[0]}
    for j in range(n_map):
        sd[f"mapping.dense{j}.weight"] = get(f"mapping.dense{j}.linear.weight")
        sd[f"mapping.dense{j}.bias"] = get(f"mapping.dense{j}.wscale.bias")
    fused = set()
    for i in range(n_layers):
        p = f"synthesis.layer{i}"
        if i:
            if f"{p}.weight" in g:  # fused up-conv, kept in TF layout [kh, kw, in, out]
                sd[f"{p}.weight"] = get(f"{p}.weight").permute(3, 2, 0, 1)
                fused.add(2 ** (i // 2 + 2))
            else:
                sd[f"{p}.weight"] = get(f"{p}.conv.weight")
        e = f"{p}.epilogue"
        sd[f"{p}.bias"] = get(f"{e}.bias")
        sd[f"{p}.noise_strength"] = get(f"{e}.apply_noise.weight")
        sd[f"{p}.noise_const"] = get(f"{e}.apply_noise.noise")[0, 0]
        sd[f"{p}.style.weight"] = get(f"{e}.style_mod.dense.linear.weight")
        sd[f"{p}.style.bias"] = get(f"{e}.style_mod.dense.wscale.bias")
    last = n_layers // 2 - 1  # output{k} is the ToRGB of resolution 4 * 2**k
    sd["synthesis.torgb.weight"] = get(f"synthesis.output{last}.conv.weight")
    sd["synthesis.torgb.bias"] = get(f"synthesis.output{last}.bias")
    _drop_known(g, used, _GF_SG1_IGNORED, path, "genforce StyleGAN state dict")
    sd = {k: t.contiguous() for k, t in sd.items()}
    up_res = [2 ** (i // 2 + 2) for i in range(2, n_layers, 2)]
    cfg = stylegan_config_from_state(sd, path)
    cfg["fused_scale"] = _fused_setting(fused, up_res, path)
    return Checkpoint("stylegan", cfg, sd, meta={"source_format": "genforce-stylegan"})


# ============================================================================ PGGAN

_PGGAN_FIXED_KWARGS = {"use_wscale": True, "use_leakyrelu": True, "fmap_decay": 1.0}


def pggan_config_from_state(sd: dict, path: Path, **overrides) -> dict:
    n_layers = len(_resolutions(sd, r"layer(\d+)\.bias"))
    if "layer0.weight" not in sd or n_layers < 2 or n_layers % 2:
        raise FormatError(f"{path}: not a PGGAN generator (no layer0 dense)")
    ch = {2 ** (i // 2 + 2): sd[f"layer{i}.bias"].shape[0] for i in range(n_layers)}
    base, cmax = fit_channels(ch, path)
    if sd["layer0.weight"].shape[0] != 16 * ch[4]:
        raise WeightsError(f"{path}: PGGAN dense layer has {sd['layer0.weight'].shape[0]} outputs, expected {16 * ch[4]}")
    cfg = dict(resolution=2 ** (n_layers // 2 + 1), z_dim=int(sd["layer0.weight"].shape[1]),
               fmap_base=base // 2, fmap_max=cmax,
               img_channels=int(sd["torgb.weight"].shape[0]) if "torgb.weight" in sd else 3)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def _from_tf_pggan(Gs: TFNetworkStub, path: Path) -> Checkpoint:
    v = _Source(Gs.all_variables(), path, "PGGAN TF network")
    kw = dict(Gs.static_kwargs)
    _check_tf_kwargs(kw, path)
    _check_fixed(kw, _PGGAN_FIXED_KWARGS, path, "PGGAN")
    _lod_zero(v, ("lod",), path)
    res = _resolutions(v.t, r"(\d+)x\d+/")
    fused = any(k.endswith("/Conv0_up/weight") for k in v.t)
    sd = {"layer0.weight": v("4x4/Dense/weight").t(),           # TF [z, 16*C], row c*16 + h*4 + w
          "layer0.bias": v("4x4/Dense/bias"),
          "layer1.weight": v("4x4/Conv/weight").permute(3, 2, 0, 1),
          "layer1.bias": v("4x4/Conv/bias")}
    for k, r in enumerate(res[1:]):
        i = 2 * k + 2
        if fused:  # G_paper's fused Conv0_up stores [kh, kw, out, in]
            sd[f"layer{i}.weight"] = v(f"{r}x{r}/Conv0_up/weight").permute(2, 3, 0, 1)
            sd[f"layer{i}.bias"] = v(f"{r}x{r}/Conv0_up/bias")
        else:
            sd[f"layer{i}.weight"] = v(f"{r}x{r}/Conv0/weight").permute(3, 2, 0, 1)
            sd[f"layer{i}.bias"] = v(f"{r}x{r}/Conv0/bias")
        sd[f"layer{i + 1}.weight"] = v(f"{r}x{r}/Conv1/weight").permute(3, 2, 0, 1)
        sd[f"layer{i + 1}.bias"] = v(f"{r}x{r}/Conv1/bias")
    sd["torgb.weight"] = v("ToRGB_lod0/weight").permute(3, 2, 0, 1)
    sd["torgb.bias"] = v("ToRGB_lod0/bias")
    sd = {k: t.contiguous() for k, t in sd.items()}
    cfg = pggan_config_from_state(sd, path, fused_scale=fused,
                                  normalize_latents=kw.get("normalize_latents"),
                                  use_pixelnorm=kw.get("use_pixelnorm"),
                                  pixelnorm_epsilon=kw.get("pixelnorm_epsilon"))
    return Checkpoint("pggan", cfg, sd, meta={"source_format": "tf-pggan", "tf_kwargs": _plain_kwargs(kw)})


_GF_PGGAN_IGNORED = re.compile(r"(lod|output\d+\..*)$")


def from_genforce_pggan(g: dict, path: Path) -> Checkpoint:
    src = _Source(g, path, "genforce PGGAN state dict")
    used = set()

    def get(name):
        used.add(name)
        return src(name)

    n_layers = len(_resolutions(g, r"layer(\d+)\.wscale\.bias"))
    if n_layers < 2 or n_layers % 2:
        raise FormatError(f"{path}: not a genforce PGGAN generator")
    if "lod" in g and float(g["lod"]) != 0:
        raise FormatError(f"{path}: the network is still growing (lod = {float(g['lod'])})")
    w0 = get("layer0.conv.weight")  # [C, z, 4, 4]: the TF dense as a flipped 4x4 conv on a 1x1 input
    sd = {"layer0.weight": w0.flip(2, 3).permute(0, 2, 3, 1).reshape(-1, w0.shape[1]),
          "layer0.bias": get("layer0.wscale.bias")}
    fused = set()
    for i in range(1, n_layers):
        if f"layer{i}.weight" in g:  # fused up-conv kept as [kh, kw, in, out]
            sd[f"layer{i}.weight"] = get(f"layer{i}.weight").permute(3, 2, 0, 1)
            fused.add(2 ** (i // 2 + 2))
        else:
            sd[f"layer{i}.weight"] = get(f"layer{i}.conv.weight")
        sd[f"layer{i}.bias"] = get(f"layer{i}.wscale.bias")
    last = n_layers // 2 - 1
    sd["torgb.weight"] = get(f"output{last}.conv.weight")
    sd["torgb.bias"] = get(f"output{last}.wscale.bias")
    _drop_known(g, used, _GF_PGGAN_IGNORED, path, "genforce PGGAN state dict")
    up_res = [2 ** (i // 2 + 2) for i in range(2, n_layers, 2)]
    sd = {k: t.contiguous() for k, t in sd.items()}
    fs = _fused_setting(fused, up_res, path)
    if fs == "auto":
        raise FormatError(f"{path}: PGGAN with fused up-convolutions only from 128 is not supported")
    return Checkpoint("pggan", pggan_config_from_state(sd, path, fused_scale=fs), sd,
                      meta={"source_format": "genforce-pggan"})
