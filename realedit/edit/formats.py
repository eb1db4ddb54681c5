"""Direction files of other projects, read into :class:`~realedit.edit.directions.Direction`\\ s.

encoder4editing (e4e) ships, for the StyleGAN2 FFHQ 1024 generator (MIT licence):

- InterFaceGAN directions ``age.pt``, ``smile.pt`` (tensor (1, 512)) and ``pose.pt``
  ((1, 18, 512), the same unit vector on every W+ layer). e4e edits with ``w + factor * d`` on
  every layer; here they are unit W directions, so ``--attr age=+3`` is exactly e4e's factor 3.
- The GANSpace PCA of W, ``ffhq_pca.pt`` = {"mean": (1, 512), "comp": (80, 1, 512), "std": (80,)},
  and, in its examples, named edits (component, first layer, end layer, strength): the code's
  coordinate on the component, measured on W+ layer 0 as ``((w[0] - mean) . comp) / std``, is
  moved to ``strength`` by adding ``(strength - coordinate) * comp * std`` to layers
  first..end-1. Here each named edit is a W+ direction on those layers whose amount is the
  fraction of e4e's move: ``--attr lipstick=+1`` is e4e's edit exactly, +0.5 half of it, -1 the
  same move the other way. :func:`ganspace_step` is that formula.

All files are torch pickles of plain tensors, read with ``torch.load(weights_only=True)``; one
of the released files holds a CUDA tensor, so everything is mapped to the CPU.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..errors import EditError, UnsafePickleError
from .bank import Direction, DirectionBank
from .files import load_interfacegan_file

# e4e's published GANSpace edits for StyleGAN2 FFHQ (its inference notebook; values from the
# GANSpace repository): name -> (component, first W+ layer, end layer (excluded), strength).
# "smile" is renamed: InterFaceGAN's smile direction has that name in the same bank.
E4E_GANSPACE_EDITS = {
    "eye_openness": (54, 7, 8, 20),
    "smile_ganspace": (46, 4, 5, -20),
    "trimmed_beard": (58, 7, 9, 20),
    "white_hair": (57, 7, 10, -24),
    "lipstick": (34, 10, 11, 20),
}
GANSPACE = "ganspace"   # Direction.source of a named GANSpace edit


def _torch_load(path: Path, what: str):
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(f"{path.name}: {what} asks for something that is not plain "
                                f"tensors; refused ({str(exc).splitlines()[0][:200]})") from None
    except Exception as exc:  # noqa: BLE001 - truncated zip, not a torch file...
        raise EditError(f"{path.name}: not a readable {what} ({type(exc).__name__})") from None


def load_e4e_direction(path, name: str | None = None, *, model: str = "stylegan2_ffhq") -> Direction:
    """An e4e InterFaceGAN direction file: (1, d) -> a W direction; (1, L, d) -> a W direction
    when every layer holds the same vector (pose.pt), else a layer-wise W+ direction."""
    import torch

    path = Path(path)
    t = _torch_load(path, "e4e direction file")
    if not isinstance(t, torch.Tensor) or t.ndim not in (2, 3) or t.shape[0] != 1:
        raise EditError(f"{path.name}: expected a (1, dim) or (1, layers, dim) tensor, got "
                        f"{type(t).__name__} {tuple(getattr(t, 'shape', ()))}")
    v = t[0].detach().double().numpy()
    if v.ndim == 2 and np.array_equal(v, np.broadcast_to(v[:1], v.shape)):
        v = v[0]
    return Direction(name or path.stem, v, model, "wp" if v.ndim == 2 else "w", None, (),
                     "e4e-interfacegan", {"file": path.name})


def read_ganspace_pca(path) -> dict[str, np.ndarray]:
    """{"mean": (d,), "comp": (k, d), "std": (k,)} float64 from a GANSpace PCA file."""
    import torch

    path = Path(path)
    obj = _torch_load(path, "GANSpace PCA file")
    if not isinstance(obj, dict) or not all(isinstance(obj.get(k), torch.Tensor)
                                            for k in ("mean", "comp", "std")):
        raise EditError(f"{path.name}: expected a dict of tensors mean, comp and std")
    mean = obj["mean"].double().numpy().reshape(-1)
    comp = obj["comp"].double().numpy()
    comp = comp.reshape(comp.shape[0], -1)
    std = obj["std"].double().numpy().reshape(-1)
    if comp.shape[1] != mean.shape[0] or std.shape[0] != comp.shape[0]:
        raise EditError(f"{path.name}: mean {mean.shape}, comp {comp.shape} and std {std.shape} "
                        f"do not fit together")
    return {"mean": mean, "comp": comp, "std": std}


def ganspace_directions(pca: dict, edits: dict = E4E_GANSPACE_EDITS, *,
                        model: str = "stylegan2_ffhq", file: str = "") -> DirectionBank:
    """Named GANSpace edits as W+ directions on their layer ranges (see the module doc)."""
    bank = DirectionBank()
    k = pca["comp"].shape[0]
    for name, (idx, first, end, strength) in edits.items():
        if not 0 <= idx < k or not 0 <= first < end:
            raise EditError(f"GANSpace edit {name!r}: component {idx} / layers {first}..{end} "
                            f"outside the {k} components of {file or 'the PCA'}")
        comp = pca["comp"][idx]
        stats = {"file": file, "component": int(idx), "first_layer": int(first),
                 "end_layer": int(end), "strength": float(strength),
                 "std": float(pca["std"][idx]), "comp_norm": float(np.linalg.norm(comp)),
                 "mean_dot": float(pca["mean"] @ comp)}
        # No measured range: the default one (a warning beyond 3 x e4e's edit) applies.
        bank.add(Direction(name, comp, model, "wp", tuple(range(first, end)), (), GANSPACE, stats))
    return bank


def load_ganspace_file(path, *, model: str = "stylegan2_ffhq",
                       edits: dict = E4E_GANSPACE_EDITS) -> DirectionBank:
    path = Path(path)
    return ganspace_directions(read_ganspace_pca(path), edits, model=model, file=path.name)


def is_ganspace(d: Direction) -> bool:
    return d.source == GANSPACE and "strength" in d.stats


def ganspace_step(primal: Direction, codes: np.ndarray, amount: float) -> np.ndarray:
    """How far (per code, along the unit vector) a named GANSpace edit moves W+ ``codes``
    (N, L, d): ``amount`` times e4e's ``(strength - coordinate) * std * |comp|``, the
    coordinate measured on layer 0 with the primal component."""
    st = primal.stats
    std, norm = st["std"], st["comp_norm"]
    coord = (codes[:, 0] @ primal.vector * norm - st["mean_dot"]) / std
    return amount * (st["strength"] - coord) * std * norm


# Registry ``format`` -> reader of one downloaded direction file: (path, model id) -> bank.
def _interfacegan(path, model):
    return DirectionBank([load_interfacegan_file(path, model=model)])


READERS = {
    "interfacegan-npy": _interfacegan,
    "e4e-direction-pt": lambda path, model: DirectionBank([load_e4e_direction(path, model=model)]),
    "ganspace-pca-pt": lambda path, model: load_ganspace_file(path, model=model),
}


def read_direction_file(path, fmt: str, model: str, name: str | None = None) -> DirectionBank:
    """The directions of one registered direction file, labelled with ``model``."""
    if fmt not in READERS:
        raise EditError(f"{Path(path).name}: unknown direction file format {fmt!r} "
                        f"(known: {', '.join(READERS)})")
    if fmt == "e4e-direction-pt" and name:
        return DirectionBank([load_e4e_direction(path, name, model=model)])
    return READERS[fmt](path, model)
