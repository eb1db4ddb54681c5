"""Every foreign weight format, converted into realedit's own layouts in this one package.

``read_checkpoint(path)`` looks at the file's *content* (zip magic, legacy torch magic,
pickle opcodes, then the objects and keys inside) and returns a :class:`Checkpoint`: the
family, the constructor config and a state dict named like realedit's modules. Formats:

- realedit's own ``{"format": "realedit-model", ...}`` torch file (realedit.models.own_format);
- NVIDIA TF1 pickles ``(G, D, Gs)``: PGGAN (``tfutil.Network``, build func ``G_paper``),
  StyleGAN (``G_style``), StyleGAN2 (``G_main`` + ``G_synthesis_stylegan2``); read through
  :mod:`realedit.models.unpickle`, never executing the source stored in them;
- stylegan2-ada-pytorch pickles (``{"G", "D", "G_ema", ...}`` of persistent objects): only
  the stored parameter/buffer tensors and ``init_kwargs`` are used;
- rosinality ``.pt`` (``{"g_ema": state_dict, "latent_avg": w, ...}``);
- pSp / e4e checkpoints (their ``decoder.*`` is a rosinality generator; the encoder is read by
  ``realedit.invert.psp``; the file layout is in :mod:`realedit.models.legacy.psp`);
- genforce/interfacegan converted ``.pth`` state dicts (PGGAN and StyleGAN ports);
- a bare state dict already in realedit's StyleGAN2 layout (= ada-pytorch names).

One module per source (nvidia_tf, ada, rosinality, genforce, psp); ``read.py`` holds the tables
that tell them apart (a new format: one module and one row there), ``layouts.py`` the configs
implied by tensor shapes, ``files.py`` the safe opening of torch files and pickles. The name
tables follow the official converters (stylegan2-ada-pytorch ``legacy.py``, rosinality
``convert_weight.py``, interfacegan ``*_generator_model.py``); the layout transforms
(transposes, kernel flips, bias offsets) are applied exactly as they do.
"""
from __future__ import annotations

from .files import read_torch_object
from .read import PICKLE_FORMATS, TORCH_FORMATS, read_checkpoint

__all__ = ["PICKLE_FORMATS", "TORCH_FORMATS", "read_checkpoint", "read_torch_object"]
