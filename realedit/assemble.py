"""Assembly policy: which generator, inverter, direction bank and latent space an Editor gets
for a model name or file (Editor.from_pretrained is this plus the Editor). The model's parts
come from its manifest (realedit.manifest), the inverter from what the model has: a pSp / e4e
encoder is used alone, realedit's own encoder starts a short refinement ("hybrid"), a model
without an encoder is optimised from scratch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import EditError, UsageError, WeightsError


@dataclass
class Parts:
    """What an Editor is made of (its constructor's arguments, less the run-time settings)."""

    generator: object
    bank: object
    model_name: str
    inverter: object
    space: str
    device: torch.device
    licence: str


def choose_inverter(asked: str | None, *, has_encoder: bool, psp_encoder: bool,
                    steps: int | None, name: str) -> str:
    """The inverter to build: ``asked``, or the model's default (encoder for a pSp / e4e file,
    else hybrid), with the fallbacks a model's parts force: hybrid without an encoder is
    optimize; steps=0 ("no refinement") is the encoder alone. UsageError / WeightsError for a
    combination that cannot work, before anything loads or any photo is read."""
    inverter = asked or ("encoder" if psp_encoder else "hybrid")
    if not has_encoder and inverter == "hybrid":
        inverter = "optimize"
    if steps is not None and int(steps) < 0:
        raise UsageError(f"steps must be >= 0, got {steps}")
    if steps is not None and int(steps) == 0:
        if inverter == "hybrid":
            inverter = "encoder"
        elif inverter == "optimize" or (inverter == "pti" and not has_encoder):
            raise UsageError("the optimize inverter needs at least 1 step (steps=0 means the "
                             "encoder's answer alone: use the hybrid or encoder inverter)"
                             if asked == "optimize" else
                             f"steps=0 means the encoder's answer alone, but model {name} has "
                             "no encoder: give at least 1 step")
    if not has_encoder and inverter == "encoder":
        raise WeightsError(f"model {name} has no encoder; use --inverter optimize or hybrid, "
                           f"or train one with `realedit train-encoder --model {name}`")
    return inverter


def direction_bank(name: str, files, ckpt, bank=None):
    """The bank edits use: ``bank`` (a DirectionBank or a path), else the registry's for a
    registered model (InterFaceGAN files + the model's own), the official set for an e4e / pSp
    FFHQ file given by path, else the bank its manifest (or sidecar) names."""
    from .edit import bank_for_model, load_bank
    from .manifest import manifest_path, official_bank_set

    if bank is not None and not hasattr(bank, "direction"):
        return load_bank(bank, model=str(name))
    if bank is not None:
        return bank
    official = official_bank_set(ckpt.meta.get("source_format", ""), ckpt.meta.get("psp_opts"))
    if not Path(str(name)).exists():
        return bank_for_model(name)
    if files.bank is None and official:
        from .edit.banks import bank_for_set
        return bank_for_set(str(name), official)
    if files.bank is None:
        side = Path(name).with_suffix("").as_posix() + ".directions.json"
        raise EditError(f"no direction bank for {name}: pass bank=..., save one as "
                        f"{side} or name one in {manifest_path(name)}")
    bank = load_bank(files.bank)
    for m in bank.models():
        bank = bank.relabel(m, str(name))
    return bank


def assemble(name_or_path: str | None = None, *, inverter: str | None = None,
             space: str | None = "wp", device="auto", steps: int | None = None,
             loss: str | None = None, encoder=None, bank=None) -> Parts:
    """Load a model by registry name or path, with its encoder and direction bank (see
    Editor.from_pretrained for the arguments)."""
    from . import invert as inv
    from . import models
    from .device import resolve_device
    from .manifest import default_encoder, default_model_name, resolve_model

    device = resolve_device(device)
    if device.type == "cuda":  # TF32 matmuls (cuDNN convs use it already): fp32 range, faster
        torch.backends.cuda.matmul.allow_tf32 = True
    name = name_or_path or default_model_name()
    ckpt, path = models.read_model(name)  # once: G now, D below when the inverter needs it
    G = models.generator_from_checkpoint(ckpt, path, device)
    # The model's parts (encoder, bank, licence, default space): its manifest, else the
    # older sidecar names (realedit.manifest is the one place that knows them).
    files = resolve_model(name)
    if space is None:  # the manifest's default, else the richest: W+ for StyleGANs, Z for PGGAN
        space = files.default_space or ("wp" if "wp" in G.spaces else G.spaces[0])
    if space not in G.spaces:
        raise UsageError(f"model {name} has no {space!r} space; it has {', '.join(G.spaces)}")
    bank = direction_bank(name, files, ckpt, bank)

    psp_encoder = False
    if encoder is None and inverter in (None, "hybrid", "encoder", "pti"):
        encoder, psp_encoder = default_encoder(name, files, ckpt.meta.get("source_format", ""))
    kind = choose_inverter(inverter, has_encoder=encoder is not None, psp_encoder=psp_encoder,
                           steps=steps, name=str(name))
    opts: dict = {}
    if kind in ("hybrid", "optimize", "pti"):
        D = models.discriminator_from_checkpoint(ckpt, path, device)
        if loss is not None:
            opts["loss"] = loss
        if D is not None:
            opts["discriminator"] = D
        if steps is not None:
            opts["steps"] = int(steps)
    if encoder is not None:
        opts["encoder"] = encoder
    return Parts(G, bank, str(name), inv.get(kind, G, **opts), space, device, files.licence)
