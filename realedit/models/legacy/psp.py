"""pSp / e4e checkpoints (eladrich/pixel2style2pixel, omertov/encoder4editing), read in one place.

One torch file holds a face encoder, the StyleGAN2 generator it was trained against and the
average code its answers are relative to::

    {"state_dict": {"encoder.<name>": tensor, ..., "decoder.<name>": tensor, ...},
     "latent_avg": (n_styles, 512) | (1, 512) | (512,)   # present when start_from_latent_avg
     "opts": {"encoder_type": "Encoder4Editing" | "GradualStyleEncoder", ...},  # vars(argparse)
     ... optional training extras (global_step, optimizer, discriminator_state_dict, ...)}

``opts`` is written as ``vars(options)`` (a plain dict); an ``argparse.Namespace`` is accepted
too. ``decoder.*`` is a complete rosinality-layout StyleGAN2 generator, so the same file serves
as the model (:func:`decoder_checkpoint`) and as its encoder (``realedit.invert.psp``).

The file is read with torch's weights-only unpickler (``argparse.Namespace`` allowed as inert
data, nothing executed) and memory-mapped when it is a zip archive: the released e4e FFHQ file
is 1.2 GB, and a mapped file costs no copy until a tensor is used.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import FormatError, WeightsNotFound

# opts.encoder_type -> how realedit names the encoder family. Both share one parameter layout
# (IR-SE-50 + one map-to-style head per W+ layer); only the way codes are formed differs.
ENCODER_TYPES = {
    "Encoder4Editing": "e4e",        # one base code + a per-layer delta (encoder4editing)
    "GradualStyleEncoder": "psp",    # an independent code per layer (pixel2style2pixel)
}
# Encoder types of the same projects realedit does not read, and why (for the error message).
UNSUPPORTED_TYPES = {
    "BackboneEncoderUsingLastLayerIntoW": "a single-W encoder",
    "BackboneEncoderUsingLastLayerIntoWPlus": "a last-layer W+ encoder",
    "SingleStyleCodeEncoder": "a single-W encoder",
}
# Registry `format` values of files in this layout (they hold a generator as well).
REGISTRY_FORMATS = ("e4e-pt", "psp-pt")


@dataclass
class PSPCheckpoint:
    """The parts of a pSp / e4e file, names stripped of their ``encoder.``/``decoder.`` prefix."""

    path: Path
    encoder_type: str                      # as the file says: Encoder4Editing, GradualStyleEncoder
    encoder: dict[str, torch.Tensor]
    decoder: dict[str, torch.Tensor]
    latent_avg: torch.Tensor | None        # as stored (any of the shapes above), or None
    opts: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return ENCODER_TYPES[self.encoder_type]

    @property
    def adds_latent_avg(self) -> bool:
        """Whether the encoder's output is relative to latent_avg (opts.start_from_latent_avg)."""
        return bool(self.opts.get("start_from_latent_avg", self.latent_avg is not None))


def is_psp_object(obj) -> bool:
    """A loaded torch object that looks like a pSp / e4e checkpoint."""
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        return False
    keys = obj["state_dict"].keys()
    return (any(isinstance(k, str) and k.startswith("encoder.") for k in keys)
            and any(isinstance(k, str) and k.startswith("decoder.") for k in keys))


def load_object(path: Path):
    """The torch object in ``path`` (weights-only, memory-mapped for zip files)."""
    from .files import ZIP_MAGIC, _torch_load

    try:
        with open(path, "rb") as f:
            mmap = f.read(4) == ZIP_MAGIC
    except FileNotFoundError:
        raise WeightsNotFound(f"{path}: no such file") from None
    return _torch_load(path, mmap=mmap)


def read_psp(path) -> PSPCheckpoint:
    """Read a pSp / e4e file; FormatError if it is not one (or of a kind realedit cannot use)."""
    path = Path(path)
    return parse_psp(load_object(path), path)


def parse_psp(obj, path: Path) -> PSPCheckpoint:
    if not is_psp_object(obj):
        raise FormatError(f"{path}: not a pSp / e4e checkpoint (no encoder.* and decoder.* "
                          f"in a 'state_dict')")
    opts = obj.get("opts")
    if isinstance(opts, argparse.Namespace):
        opts = vars(opts)
    if not isinstance(opts, dict):
        raise FormatError(f"{path}: pSp / e4e checkpoint without its 'opts' (the options it was "
                          f"trained with say which encoder it holds)")
    etype = opts.get("encoder_type")
    if etype in UNSUPPORTED_TYPES:
        raise FormatError(f"{path}: holds {UNSUPPORTED_TYPES[etype]} ({etype}); realedit reads "
                          f"the W+ encoders {' and '.join(ENCODER_TYPES)}")
    if etype not in ENCODER_TYPES:
        raise FormatError(f"{path}: unknown pSp / e4e encoder type {etype!r}; realedit reads "
                          f"{' and '.join(ENCODER_TYPES)}")
    for key, plain in (("input_nc", 3), ("label_nc", 0)):
        if opts.get(key, plain) not in (plain, None):
            raise FormatError(f"{path}: an encoder of {key}={opts[key]} inputs (sketches, "
                              f"segmentation maps...), not of RGB photos")
    enc, dec = {}, {}
    for k, v in obj["state_dict"].items():
        if not isinstance(v, torch.Tensor):
            raise FormatError(f"{path}: state_dict entry {k!r} is not a tensor")
        if k.startswith("encoder."):
            enc[k[len("encoder."):]] = v
        elif k.startswith("decoder."):
            dec[k[len("decoder."):]] = v
    la = obj.get("latent_avg")
    if la is not None and not isinstance(la, torch.Tensor):
        raise FormatError(f"{path}: latent_avg is a {type(la).__name__}, not a tensor")
    plain_opts = {str(k): v for k, v in opts.items()
                  if v is None or isinstance(v, (bool, int, float, str))}
    return PSPCheckpoint(path, etype, enc, dec, la, plain_opts)


def latent_avg_rows(pc: PSPCheckpoint, n_styles: int, w_dim: int) -> torch.Tensor | None:
    """latent_avg as (n_styles, w_dim) float32 (one row repeated when stored once), or None."""
    la = pc.latent_avg
    if la is None:
        return None
    la = la.detach().to(torch.float32)
    if la.shape[-1] != w_dim or la.numel() not in (w_dim, n_styles * w_dim):
        raise FormatError(f"{pc.path}: latent_avg has shape {tuple(la.shape)}, expected "
                          f"({n_styles}, {w_dim}) or ({w_dim},)")
    return la.reshape(-1, w_dim).expand(n_styles, w_dim).contiguous()


def decoder_checkpoint(pc: PSPCheckpoint):
    """The decoder as a realedit :class:`~realedit.models.checkpoint.Checkpoint` (StyleGAN2)."""
    from .rosinality import from_rosinality

    la = pc.latent_avg
    obj = {"g_ema": pc.decoder}
    if la is not None:
        # e4e/pSp's latent_avg is the decoder's mean w (rosinality mean_latent), one row per layer
        obj["latent_avg"] = la.detach().reshape(-1, la.shape[-1])[0]
    ckpt = from_rosinality(obj, pc.path)
    ckpt.meta.update(source_format=pc.family, encoder_type=pc.encoder_type,
                     psp_opts={k: pc.opts[k] for k in ("dataset_type", "stylegan_size",
                                                        "output_size") if k in pc.opts})
    return ckpt
