"""SeFa (Shen & Zhou 2021): unsupervised directions in closed form.

The first operation a latent code meets is an affine map y = A w (+ b). Directions n that
change y the most maximise |A n|, i.e. they are the top eigenvectors of A^T A. For StyleGAN2
A stacks the style affines of the chosen synthesis layers (``synthesis.b*.conv*.affine``;
StyleGAN: ``synthesis.layer*.style``); for PGGAN it is the first projection of z. As in the reference method, every output row of
A is normalised to unit length first, so wide layers do not dominate.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UsageError
from ..edit.bank import Direction, DirectionBank
from ..edit.vectors import parse_layers
from .fit import model_id_of


def stylegan2_affines(generator) -> list[tuple[int, torch.Tensor]]:
    """(W+ index, affine weight (out, w_dim)) for every style input, in W+ order.

    W+ index k drives the k-th modulated conv (b4.conv1, b8.conv0, b8.conv1, ...); the last
    index only drives the final ToRGB, whose affine stands for it.
    """
    syn = generator.synthesis
    convs = []
    for res in syn.block_resolutions:
        block = getattr(syn, f"b{res}")
        convs += ([block.conv0] if hasattr(block, "conv0") else []) + [block.conv1]
    last_rgb = getattr(syn, f"b{syn.block_resolutions[-1]}").torgb
    mods = convs + [last_rgb]
    if len(mods) != generator.num_ws:
        raise UsageError(f"cannot map {len(mods)} style layers onto {generator.num_ws} W+ codes")
    return [(i, m.affine.weight.detach()) for i, m in enumerate(mods)]


def stylegan_styles(generator) -> list[tuple[int, torch.Tensor]]:
    """StyleGAN (v1): (W+ index, ``synthesis.layer{i}.style.weight`` (2*channels, w_dim))."""
    syn = generator.synthesis
    return [(i, getattr(syn, f"layer{i}").style.weight.detach()) for i in range(generator.num_ws)]


def _first_projection(generator) -> torch.Tensor:
    """(outputs, z_dim) matrix of a PGGAN-like generator's first parameter reading z."""
    for name, p in generator.named_parameters():
        if name.endswith("weight") and p.ndim >= 2 and generator.z_dim in p.shape[:2]:
            axis = 1 if p.shape[1] == generator.z_dim else 0
            return p.detach().movedim(axis, -1).reshape(-1, generator.z_dim)
    raise UsageError(f"no first projection of z found in the {generator.kind} generator")


def sefa_matrix(generator, layers="all") -> tuple[np.ndarray, tuple[int, ...] | None, str]:
    """(A (rows, dim) with unit rows, the W+ layers it covers (None: all), space)."""
    kind = getattr(generator, "kind", "")
    if kind in ("stylegan2", "stylegan"):
        affines = stylegan2_affines(generator) if kind == "stylegan2" else stylegan_styles(generator)
        if isinstance(layers, str) and layers.strip().lower() in ("all", ""):
            # StyleGAN2: every modulated conv, not the last ToRGB (it only sets colour)
            chosen = tuple(i for i, _ in (affines[:-1] if kind == "stylegan2" else affines))
            layer_field = None
        else:
            chosen = parse_layers(layers)
            if chosen is None or chosen[-1] >= len(affines):
                raise UsageError(f"SeFa layers must be within 0-{len(affines) - 1}, got {layers!r}")
            layer_field = chosen
        A = torch.cat([affines[i][1] for i in chosen], 0)
        space = "w"
    else:
        if not (isinstance(layers, str) and layers.strip().lower() in ("all", "")):
            raise UsageError(f"a {kind or 'this'} generator has one projection: no layer choice")
        A, layer_field, space = _first_projection(generator), None, "z"
    A = A.double().cpu().numpy()
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    return A, layer_field, space


def sefa(generator, layers="all", num: int = 10, *, model: str | None = None,
         prefix: str = "sefa") -> DirectionBank:
    """Top ``num`` SeFa directions, named ``sefa0``, ``sefa1``... with their eigenvalues.

    Each sign is fixed so the largest-magnitude component is positive (eigenvectors have no
    sign of their own; this makes runs reproducible).
    """
    A, layer_field, space = sefa_matrix(generator, layers)
    vals, vecs = np.linalg.eigh(A.T @ A)
    order = np.argsort(vals)[::-1][:num]
    total = float(vals.sum())
    model_id = model_id_of(generator, model)
    bank = DirectionBank()
    for rank, i in enumerate(order):
        v = vecs[:, i]
        v = v * np.sign(v[np.argmax(np.abs(v))])
        bank.add(Direction(f"{prefix}{rank}", v, str(model_id), space, layer_field, (), "sefa",
                           {"eigenvalue": float(vals[i]), "rank": rank,
                            "explained": float(vals[i] / total) if total > 0 else 0.0,
                            "sefa_layers": "all" if layer_field is None else list(layer_field)}))
    return bank
