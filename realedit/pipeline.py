"""The whole job in one object: photo -> faces -> latents -> edited latents -> photo.

    editor = Editor.from_pretrained()                      # embedded model unless an official one is cached
    result = editor.edit("photo.jpg", {"age": 3}, keep=["gender"])
    result.image.save("photo_edited.jpg")

    inverted = editor.invert("photo.jpg", faces="all")     # the slow part, done once
    older = editor.apply(inverted, {"age": 3}, keep=["gender"])
    smiling = editor.apply(inverted, {"smile": 2})

Detail transfer. A face in a photo is usually larger than the generator's output (64 px for the
embedded model), and no inversion reproduces a real face exactly. So by default ("residual") the
photo's own aligned crop is kept and only the *change* the edit makes, G(edited) - G(inverted),
is upsampled and added to it: no edit means no change at all, and the photo keeps its
resolution and identity. "warp" (realedit.blend.flow) moves the photo's own pixels the way the
generator moved its face and adds only the colour change the motion does not explain, on the
region where the edit acts: shape changes move instead of leaving ghosts. "replace" pastes the generator's output itself (sharpness limited to
the generator's resolution), with the usual colour correction.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .errors import EditError, UsageError, WeightsError

# Models tried, in order, when no model is named: official generators that come with a
# direction bank, if their files are in the cache, then the embedded model shipped in weights/.
DEFAULT_MODELS = ("stylegan-ffhq-1024", "stylegan-celebahq-1024", "pggan-celebahq-1024",
                  "realedit-celeba64")
DETAIL_MODES = ("residual", "warp", "replace")
BLEND_MODES = ("alpha", "poisson")


def default_model_name() -> str:
    """The first model of DEFAULT_MODELS whose file is available without a download."""
    from . import weights

    for name in DEFAULT_MODELS:
        try:
            if weights.where_found(weights.entry(name)):
                return name
        except WeightsError:
            continue
    raise WeightsError("no model available: the embedded model weights/realedit-celeba64.pt is "
                       "missing from this installation (reinstall realedit from its repository)")


@dataclass
class FaceInversion:
    """One face of a photo, aligned and inverted."""

    index: int                 # position among the faces kept from the photo
    face: object               # realedit.align.Face
    aligned: object            # realedit.align.AlignedFace at the working crop size
    latent: torch.Tensor       # (1, ...) code in ``space``
    reconstruction: torch.Tensor  # (1, 3, R, R) generator output for ``latent``, [-1, 1]
    loss: float
    seconds: float
    # The generator fine-tuned on this face (pivotal tuning), or None: the editor's own. Edits
    # of this face are synthesised with it.
    generator: object = None


@dataclass
class InvertedPhoto:
    """What `Editor.invert` returns and `Editor.apply` consumes: re-usable for many edits."""

    photo: object              # realedit.io.Photo
    faces: list[FaceInversion]
    skipped: list              # realedit.align.select.Skipped
    space: str
    model: str
    inverter: str
    timings: dict = field(default_factory=dict)


@dataclass
class FaceEdit:
    index: int
    face: object
    latent: torch.Tensor
    edited_latent: torch.Tensor
    crop_before: object        # PIL image: the aligned crop of the photo
    crop_after: object         # PIL image: the same crop after the edit
    mask: np.ndarray           # (H, W) float32 alpha of this face in the photo


@dataclass
class EditResult:
    photo: object              # realedit.io.Photo of the edited photo (same size, mode, metadata)
    source: object             # the input Photo, untouched
    faces: list[FaceEdit]
    skipped: list
    model: str
    inverter: str
    space: str
    edits: dict
    keep: tuple
    timings: dict

    @property
    def image(self):
        """The edited photo as a PIL image, in the input's size and mode."""
        from .io import to_pil
        return to_pil(self.photo)

    @property
    def mask(self) -> np.ndarray:
        """Union of the faces' paste masks: outside it the photo is unchanged, bit for bit."""
        m = np.zeros((self.photo.height, self.photo.width), np.float32)
        for f in self.faces:
            m = np.maximum(m, f.mask)
        return m

    def compare_image(self):
        """Before | after side by side (RGB, halved when wider than 4096 px)."""
        from PIL import Image

        before, after = self.source.rgb, self.photo.rgb
        canvas = Image.fromarray(np.concatenate([before, after], axis=1))
        if canvas.width > 4096:
            canvas = canvas.resize((canvas.width // 2, canvas.height // 2), Image.LANCZOS)
        return canvas

    def save(self, path, **kwargs):
        from .io import write_image
        return write_image(path, self.photo, **kwargs)


def edit_delta(before: torch.Tensor, after: torch.Tensor, size: int) -> np.ndarray:
    """The generator's change (after - before, (3, R, R) in [-1, 1]) as an (S, S, 3) float32
    array in 0..255 pixel units, upsampled to the crop size."""
    delta = (after - before).float()[None] * 127.5
    delta = F.interpolate(delta, size=(size, size), mode="bicubic", align_corners=False)[0]
    return delta.permute(1, 2, 0).numpy()


def transfer_detail(original_crop: np.ndarray, before: torch.Tensor, after: torch.Tensor,
                    mode: str = "residual") -> np.ndarray:
    """New crop (S, S, 3) uint8 from the photo's crop and the generator's before/after images.

    before/after: (3, R, R) in [-1, 1]. residual: crop + upsampled (after - before);
    warp: crop moved by the generator's motion plus the rest (realedit.blend.flow);
    replace: upsampled ``after``.
    """
    size = original_crop.shape[0]
    if mode == "residual":
        out = original_crop.astype(np.float32) + edit_delta(before, after, size)
    elif mode == "warp":
        from .blend.flow import apply_field, edit_field
        out = apply_field(original_crop, edit_field(before, after)).astype(np.float32)
    elif mode == "replace":
        img = (after.float()[None] + 1) * 127.5
        out = F.interpolate(img, size=(size, size), mode="bicubic", align_corners=False)[0]
        out = out.permute(1, 2, 0).numpy()
    else:
        raise UsageError(f"unknown detail mode {mode!r}: use {' or '.join(DETAIL_MODES)}")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def crop_to_tensor(crop: np.ndarray, resolution: int, device=None) -> torch.Tensor:
    """(S, S, 3) uint8 -> (1, 3, R, R) in [-1, 1], downsampled with antialiasing."""
    from PIL import Image

    if crop.shape[0] != resolution:
        crop = np.asarray(Image.fromarray(crop).resize((resolution, resolution), Image.LANCZOS))
    x = torch.from_numpy(np.array(crop, copy=True)).permute(2, 0, 1).float() / 127.5 - 1
    return x[None].to(device)


def parse_edits(items: Sequence[str]) -> dict[str, float]:
    """["age=+3", "smile=-1.5"] -> {"age": 3.0, "smile": -1.5}; EditError on a bad item."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        name = name.strip()
        if not sep or not name:
            raise EditError(f"bad edit {item!r}: write NAME=AMOUNT, e.g. age=+3")
        try:
            amount = float(value)
        except ValueError:
            raise EditError(f"bad amount in {item!r}: {value!r} is not a number") from None
        if not np.isfinite(amount):
            raise EditError(f"bad amount in {item!r}: must be finite")
        out[name] = out.get(name, 0.0) + amount
    return out


class Editor:
    """Generator + inverter + direction bank + detector, ready to edit photos.

    Build it with `Editor.from_pretrained`; it holds loaded models, so build it once and reuse.
    """

    def __init__(self, generator, bank, *, model_name: str, inverter, space: str,
                 device="cpu", detector=None, min_face: float = 32, licence: str = ""):
        self.G = generator
        self.bank = bank
        self.model_name = model_name
        self.inverter = inverter
        self.space = space
        self.device = torch.device(device)
        self.detector = detector
        self.min_face = float(min_face)
        self.licence = licence

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, *, inverter: str = "hybrid",
                        space: str | None = "wp", device="cpu", steps: int | None = None,
                        loss: str | None = None, encoder=None, bank=None, detector=None,
                        min_face: float = 32, progress=None) -> "Editor":
        """Load a model by registry name or path, with its encoder and direction bank.

        inverter: "hybrid" (encoder + short refinement; falls back to "optimize" when the model
        has no encoder), "encoder", "optimize", or "pti" (hybrid, then a copy of the generator
        fine-tuned on each face: closer to the photo, slower). steps: refinement/optimisation
        steps (for pti: of its pivot).
        bank: a DirectionBank or path to override the model's own. space=None: the model's
        richest latent space (wp, or z for PGGAN).
        """
        from . import invert as inv
        from . import models, weights
        from .edit import bank_for_model, load_bank

        name = name_or_path or default_model_name()
        G = models.load(name, device=device)
        licence = ""
        registered = not Path(str(name)).exists()
        if registered:
            e = weights.entry(name)
            licence = e.licence or ""
        if space is None:  # the model's richest space: W+ for StyleGANs, Z for PGGAN
            space = "wp" if "wp" in G.spaces else G.spaces[0]
        if space not in G.spaces:
            raise UsageError(f"model {name} has no {space!r} space; it has {', '.join(G.spaces)}")

        # Direction bank: explicit, else the registry's, else one saved beside a model file.
        if bank is not None and not hasattr(bank, "direction"):
            bank = load_bank(bank, model=str(name))
        if bank is None:
            if registered:
                bank = bank_for_model(name)
            else:
                side = Path(name).with_suffix("").as_posix() + ".directions.json"
                if not Path(side).is_file():
                    raise EditError(f"no direction bank for {name}: pass bank=... or save one as {side}")
                bank = load_bank(side)
                for m in bank.models():
                    bank = bank.relabel(m, str(name))

        # Encoder: explicit, else <model>.encoder.pt beside the model file.
        if encoder is None and inverter in ("hybrid", "encoder", "pti"):
            from .invert.encoder import default_encoder_path
            cand = default_encoder_path(name)
            encoder = cand if cand.is_file() else None
        asked = inverter
        if encoder is None and inverter == "hybrid":
            inverter = "optimize"
        # steps=0 means "no refinement": the encoder's answer alone. Checked here, before any
        # photo is read, so a batch does not fail photo by photo on a bad argument.
        if steps is not None and int(steps) < 0:
            raise UsageError(f"steps must be >= 0, got {steps}")
        if steps is not None and int(steps) == 0:
            if inverter == "hybrid":
                inverter = "encoder"
            elif inverter == "optimize" or (inverter == "pti" and encoder is None):
                raise UsageError("the optimize inverter needs at least 1 step (steps=0 means the "
                                 "encoder's answer alone: use the hybrid or encoder inverter)"
                                 if asked == "optimize" else
                                 f"steps=0 means the encoder's answer alone, but model {name} has "
                                 "no encoder: give at least 1 step")
        if encoder is None and inverter == "encoder":
            raise WeightsError(f"model {name} has no encoder; use --inverter optimize or hybrid, "
                               f"or train one with `realedit train-encoder --model {name}`")
        opts: dict = {}
        if inverter in ("hybrid", "optimize", "pti"):
            D = models.load_discriminator(name, device=device)
            if loss is not None:
                opts["loss"] = loss
            if D is not None:
                opts["discriminator"] = D
            if steps is not None:
                opts["steps"] = int(steps)
        if encoder is not None:
            opts["encoder"] = encoder
        inverter_obj = inv.get(inverter, G, **opts)
        return cls(G, bank, model_name=str(name), inverter=inverter_obj, space=space,
                   device=device, detector=detector, min_face=min_face, licence=licence)

    # ------------------------------------------------------------------ checks
    def check_edits(self, edits: Mapping[str, float], keep: Sequence[str] = ()) -> list[str]:
        """Fail fast (EditError listing what exists) before any expensive work. Returns one
        warning line per amount beyond its direction's sensible range (allowed, not refused)."""
        if not edits:
            raise EditError("no edit given: use e.g. {'age': 3} (CLI: --attr age=+3)")
        from .edit import amount_warnings, apply_edits
        probe = torch.zeros(self._latent_shape(), dtype=torch.float32)
        moved = apply_edits(probe, self.space, dict(edits), keep=list(keep), bank=self.bank,
                            model=self.model_name)
        if not torch.isfinite(moved).all():
            raise EditError(f"edit {dict(edits)} is too large: the latent code is no longer finite")
        return amount_warnings(dict(edits), keep, self.bank, self.space, model=self.model_name)

    def _latent_shape(self):
        if self.space == "wp":
            return (1, self.G.num_ws, self.G.w_dim)
        return (1, self.G.w_dim if self.space == "w" else self.G.z_dim)

    # ------------------------------------------------------------------ stages
    def invert(self, photo, faces="largest", *, progress=None) -> InvertedPhoto:
        """Read, detect, align and invert the selected faces of ``photo`` (path, bytes, PIL,
        numpy or Photo). NoFaceError when no usable face remains (with the reasons)."""
        from .align import align_face
        from .align.select import pick_faces
        from .io import read_image

        t = {}
        t0 = time.perf_counter()
        ph = read_image(photo)
        t["read"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        where = str(ph.path) if ph.path else "photo"
        kept, skipped = pick_faces(ph.rgb, faces, min_size=self.min_face, detector=self.detector,
                                   where=where)
        t["detect"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        aligned = []
        for face in kept:
            # Work at the face's own scale (at least the generator's, at most 1024 px) so the
            # residual edit lands on a crop as sharp as the photo.
            size = int(np.clip(round(face.size), self.G.resolution, 1024))
            aligned.append(align_face(ph.rgb, face, size))
        t["align"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch = torch.cat([crop_to_tensor(a.image, self.G.resolution, self.device) for a in aligned])
        result = self.inverter.invert(batch, self.space, callback=progress)
        t["invert"] = time.perf_counter() - t0
        loss = result.final_loss
        per_face = result.seconds / max(len(aligned), 1)
        tuned = result.generators or [None] * len(aligned)
        out = [FaceInversion(i, f, a, result.latent[i:i + 1].detach(),
                             result.reconstruction[i:i + 1].detach(), float(loss[i]), per_face, g)
               for i, (f, a, g) in enumerate(zip(kept, aligned, tuned))]
        return InvertedPhoto(ph, out, skipped, self.space, self.model_name,
                             getattr(self.inverter, "name", "?"), t)

    @torch.no_grad()
    def apply(self, inverted: InvertedPhoto, edits: Mapping[str, float], keep: Sequence[str] = (),
              *, blend: str = "alpha", mask="landmarks", detail: str = "residual") -> EditResult:
        """Edit the faces of an inverted photo and paste them back. Cheap: no inversion."""
        from PIL import Image

        from .blend import paste_back, paste_delta
        from .blend.guard import broken_reason, check_generated, sensible_text
        from .edit import apply_edits

        if blend not in BLEND_MODES:
            raise UsageError(f"unknown blend {blend!r}: use {' or '.join(BLEND_MODES)}")
        if detail not in DETAIL_MODES:
            raise UsageError(f"unknown detail mode {detail!r}: use {' or '.join(DETAIL_MODES)}")
        if inverted.model != self.model_name:
            raise EditError(f"this inversion was made with {inverted.model}, not {self.model_name}")
        self.check_edits(edits, keep)
        t = dict(inverted.timings)
        t0 = time.perf_counter()
        rgb = inverted.photo.rgb
        face_edits = []
        from .invert import synthesize
        for fi in inverted.faces:
            new_latent = apply_edits(fi.latent, inverted.space, dict(edits), keep=list(keep),
                                     bank=self.bank, model=self.model_name)
            G = fi.generator if fi.generator is not None else self.G
            after = synthesize(G, new_latent.to(self.device), inverted.space)
            if not torch.isfinite(new_latent).all():
                # e.g. age=1e308: the code overflows float32; NaN pixels must not be written
                raise EditError(f"edit {dict(edits)} is too large: the latent code is no longer "
                                "finite")
            # The "before" image is re-synthesised the same way, so the residual is exactly the
            # edit's effect (the inverter's stored reconstruction may use optimised noise).
            before = synthesize(G, fi.latent.to(self.device), inverted.space)
            if broken_reason(after, before):  # e.g. age=+1000: a colour blob, not a face
                check_generated(after, before, edits,
                                sensible=sensible_text(edits, self.bank, self.model_name))
            if detail == "warp":
                rgb, alpha, crop = self._paste_warp(rgb, fi.aligned, before[0].cpu(),
                                                    after[0].cpu(), blend, mask)
                face_edits.append(FaceEdit(fi.index, fi.face, fi.latent, new_latent,
                                           Image.fromarray(fi.aligned.image), Image.fromarray(crop), alpha))
                continue
            crop = transfer_detail(fi.aligned.image, before[0].cpu(), after[0].cpu(), detail)
            if detail == "residual" and blend == "alpha":
                # Add the change in photo space: the photo's pixels are never resampled.
                delta = edit_delta(before[0].cpu(), after[0].cpu(), fi.aligned.image.shape[0])
                rgb, alpha = paste_delta(rgb, fi.aligned, delta, mask=mask, return_mask=True)
            else:
                rgb, alpha = paste_back(rgb, fi.aligned, crop, mask=mask, color=(detail == "replace"),
                                        poisson=(blend == "poisson"), return_mask=True)
            face_edits.append(FaceEdit(fi.index, fi.face, fi.latent, new_latent,
                                       Image.fromarray(fi.aligned.image), Image.fromarray(crop), alpha))
        t["edit_paste"] = time.perf_counter() - t0
        return EditResult(inverted.photo.with_rgb(rgb), inverted.photo, face_edits, inverted.skipped,
                          self.model_name, inverted.inverter, inverted.space, dict(edits),
                          tuple(keep), t)

    @staticmethod
    def _paste_warp(rgb, aligned, before, after, blend, mask):
        """detail="warp": (new rgb, alpha, edited crop); see realedit.blend.flow."""
        from .blend import flow, paste_back
        from .blend.paste import crop_mask

        field = flow.edit_field(before, after, face=crop_mask(aligned, flow.FLOW_SIZE, mask))
        crop = flow.apply_field(aligned.image, field)
        if blend == "alpha":
            rgb, alpha = flow.paste_field(rgb, aligned, field, mask=mask, return_mask=True)
        else:  # poisson clones the warped crop, on the region where the edit acts
            size = crop.shape[0]
            where = crop_mask(aligned, size, mask) * flow.field_at(field, size).act
            rgb, alpha = paste_back(rgb, aligned, crop, mask=where, color=False, poisson=True,
                                    return_mask=True)
        return rgb, alpha, crop

    def edit(self, photo, edits: Mapping[str, float], keep: Sequence[str] = (), faces="largest",
             *, blend: str = "alpha", mask="landmarks", detail: str = "residual",
             progress=None) -> EditResult:
        """invert + apply in one call. Edits are checked before the (slow) inversion."""
        self.check_edits(edits, keep)
        return self.apply(self.invert(photo, faces, progress=progress), edits, keep, blend=blend,
                          mask=mask, detail=detail)
