"""The whole job in one object: photo -> faces -> latents -> edited latents -> photo.

    editor = Editor.from_pretrained()                      # embedded model unless an official one is cached
    result = editor.edit("photo.jpg", {"age": 3}, keep=["gender"])
    result.image.save("photo_edited.jpg")

    inverted = editor.invert("photo.jpg", faces="all")     # the slow part, done once
    older = editor.apply(inverted, {"age": 3}, keep=["gender"])
    smiling = editor.apply(inverted, {"smile": 2})

Detail transfer. A face in a photo is usually larger than the generator's output (64 px for the
embedded model), and no inversion reproduces a real face exactly. So the photo's own pixels are
kept and only the edit's *effect* reaches them. By default ("warp", realedit.blend.flow) the
photo's face is moved the way the generator moved its face (optical flow between G(inverted)
and G(edited)), plus the colour change the motion does not explain, only where the edit acts:
a head turn turns the photo's own face instead of leaving a ghost. "residual" adds the
upsampled difference G(edited) - G(inverted) through the face mask. In both, no edit means no
change at all, and the photo keeps its resolution and identity. "replace" pastes the
generator's output itself (sharpness limited to the generator's resolution), with the usual
colour correction.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from .args import DEFAULT_DETAIL
from .blend import transfer
from .errors import EditArgumentError, EditError, UsageError
from .threads import ticking

# Names this module has always offered, now made elsewhere: re-exported.
from .args import BLEND_MODES, DETAIL_MODES, parse_edits  # noqa: F401,E402
from .blend.transfer import edit_delta, transfer_detail  # noqa: F401,E402
from .manifest import DEFAULT_MODELS, default_model_name  # noqa: F401,E402
from .prepare import PreparedPhoto, crop_to_tensor, prepare_photo  # noqa: F401,E402
from .stream import default_workers  # noqa: F401,E402


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
    # G(latent), the image edits are measured against: made by the first `Editor.apply` and
    # reused by the next (a serve slider or an eval run edits one inversion many times).
    # (weakref to its generator, device, space, latent, image): stale once any of them differs.
    before_cache: tuple | None = field(default=None, repr=False, compare=False)

    @torch.no_grad()
    def before_image(self, G, space: str, device) -> torch.Tensor:
        """(1, 3, R, R) image of ``latent`` through ``G`` on ``device``, synthesised once."""
        from .invert import synthesize

        device = torch.device(device)
        c = self.before_cache
        if (c is not None and c[0]() is G and c[1] == device and c[2] == space
                and c[3] is self.latent):
            return c[4]
        image = synthesize(G, self.latent.to(device), space)
        self.before_cache = (weakref.ref(G), device, space, self.latent, image)
        return image


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
    # The generator's own images of the inverted and the edited code, (3, R, R) in [-1, 1] on
    # the CPU: what the edit did before the transfer (realedit eval measures both sides).
    generated: tuple | None = field(default=None, repr=False)


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


class Editor:
    """Generator + inverter + direction bank + detector, ready to edit photos.

    Build it with `Editor.from_pretrained`; it holds loaded models, so build it once and reuse.
    """

    def __init__(self, generator, bank, *, model_name: str, inverter, space: str,
                 device="cpu", detector=None, min_face: float = 32, licence: str = "",
                 threads: int | None = None):
        from .threads import Governor, start_monitor

        self.G = generator
        self.bank = bank
        self.model_name = model_name
        self.inverter = inverter
        self.space = space
        from .device import resolve_device
        self.device = resolve_device(device)
        if isinstance(detector, str):  # "hog" (fast, frontal) or "cnn" (dlib MMOD: slower,
            from .align import Detector  # finds turned and partly covered faces)

            detector = Detector(detector)
        self.detector = detector
        self.min_face = float(min_face)
        self.licence = licence
        # torch's CPU threads per stage: None = as many as CPUs are free at the time (other
        # programs' load, other stages of this process), unless OMP_NUM_THREADS or the
        # program's torch.set_num_threads fixed a count; an int = that many (realedit.threads).
        self.threads = Governor(threads)
        if self.device.type == "cpu":
            start_monitor()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, *, inverter: str | None = None,
                        space: str | None = "wp", device="auto", steps: int | None = None,
                        loss: str | None = None, encoder=None, bank=None, detector=None,
                        min_face: float = 32, threads: int | None = None,
                        progress=None) -> "Editor":
        """Load a model by registry name or path, with its encoder and direction bank (the
        choices: realedit.assemble).

        inverter: "hybrid" (encoder + short refinement; falls back to "optimize" when the model
        has no encoder), "encoder", "optimize", or "pti" (hybrid, then a copy of the generator
        fine-tuned on each face: closer to the photo, slower). steps: refinement/optimisation
        steps (for pti: of its pivot). None: "encoder" for a model whose encoder is a pSp / e4e
        file (the official StyleGAN2 FFHQ models: e4e alone, as its authors edit), else
        "hybrid"; hybrid and pti start from that encoder's code too.
        bank: a DirectionBank or path to override the model's own. space=None: the model's
        richest latent space (wp, or z for PGGAN). device: "auto" (a GPU when there is one),
        "cpu", "cuda[:N]", "mps" or a torch.device. detector: None (dlib's HOG, faces down to
        40 px), "hog", "cnn" (dlib's CNN: slower, finds turned or partly covered faces HOG
        misses), a realedit.align.Detector, or any callable image -> [Face]. threads: torch's CPU threads; None (default)
        chooses per stage from the CPUs free at the time (realedit.threads), a number fixes it.
        """
        from .assemble import assemble
        from .threads import start_monitor

        start_monitor()  # sampling while the model loads: the first inversion knows the load
        p = assemble(name_or_path, inverter=inverter, space=space, device=device, steps=steps,
                     loss=loss, encoder=encoder, bank=bank)
        return cls(p.generator, p.bank, model_name=p.model_name, inverter=p.inverter,
                   space=p.space, device=p.device, detector=detector, min_face=min_face,
                   licence=p.licence, threads=threads)

    # ------------------------------------------------------------------ checks
    def check_edits(self, edits: Mapping[str, float], keep: Sequence[str] = ()) -> list[str]:
        """Fail fast (EditError listing what exists) before any expensive work. Returns one
        warning line per amount beyond its direction's sensible range (allowed, not refused)."""
        if not edits:
            raise EditError("no edit given: use e.g. {'age': 3} (CLI: --attr age=+3)")
        from .args import check_amounts
        from .edit import amount_warnings, apply_edits
        from .edit.apply import sensible_ranges_of

        # far beyond the sensible range: a bad argument (exit 2), refused before any inversion
        check_amounts({(k if isinstance(k, str) else k.name): v for k, v in dict(edits).items()},
                      sensible_ranges_of(dict(edits), list(keep), self.bank, self.space,
                                         model=self.model_name))
        probe = torch.zeros(self._latent_shape(), dtype=torch.float32)
        moved = apply_edits(probe, self.space, dict(edits), keep=list(keep), bank=self.bank,
                            model=self.model_name)
        if not torch.isfinite(moved).all():
            raise EditArgumentError(f"edit {dict(edits)} is too large: the latent code is no longer finite")
        return amount_warnings(dict(edits), keep, self.bank, self.space, model=self.model_name)

    def _latent_shape(self):
        if self.space == "wp":
            return (1, self.G.num_ws, self.G.w_dim)
        return (1, self.G.w_dim if self.space == "w" else self.G.z_dim)

    # ------------------------------------------------------------------ stages
    def prepare(self, photo, faces="largest") -> "PreparedPhoto":
        """Read, detect and align ``photo`` (CPU only, no network): the part of `invert` that
        can run in another process. ImageError / NoFaceError / UsageError as `invert`."""
        return prepare_photo(photo, faces, resolution=self.G.resolution, min_face=self.min_face,
                             detector=self.detector)

    def invert(self, photo, faces="largest", *, progress=None) -> InvertedPhoto:
        """Read, detect, align and invert the selected faces of ``photo`` (path, bytes, PIL,
        numpy or Photo). NoFaceError when no usable face remains (with the reasons)."""
        return self.invert_prepared([self.prepare(photo, faces)], progress=progress)[0]

    def invert_prepared(self, prepared: Sequence["PreparedPhoto"], *, batch: int | None = None,
                        progress=None) -> list[InvertedPhoto]:
        """Invert all faces of all ``prepared`` photos in batches of ``batch`` faces (default
        per device: `realedit.device.default_batch`). Each face follows its own optimisation
        schedule; the result is bit-identical for the same batches and thread count, and
        another batch size can end the optimisation elsewhere (README, Reproducibility)."""
        from .device import default_batch

        batch = default_batch(self.device) if batch is None else int(batch)
        if batch < 1:
            raise UsageError(f"batch must be >= 1, got {batch}")
        crops = [c for p in prepared for c in p.inputs]
        latents, recons, losses, seconds, tuned, shared = [], [], [], [], [], []
        # An inverter whose reconstruction is G(latent) as Editor.apply synthesises it (the
        # encoder's): one 1024 px synthesis less per face (~2 s on a CPU).
        exact = getattr(self.inverter, "reconstruction_is_synthesis", False)
        for i in range(0, len(crops), batch):
            chunk = np.stack(crops[i:i + batch])
            x = torch.from_numpy(chunk).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1
            with self.threads.stage() as tick:  # re-decided between optimisation steps
                result = self.inverter.invert(x, self.space, callback=ticking(tick, progress))
            latents.append(result.latent.detach())
            recons.append(result.reconstruction.detach())
            losses.append(result.final_loss.detach())
            seconds += [result.seconds / len(chunk)] * len(chunk)  # each face's share
            shared += [(len(chunk), result.seconds)] * len(chunk)
            tuned += result.generators or [None] * len(chunk)  # pti: a generator per face
        loss = torch.cat(losses).float().cpu().tolist() if losses else []  # one host copy
        out, k = [], 0
        for p in prepared:
            faces = []
            for j, (f, a) in enumerate(zip(p.faces, p.aligned)):
                c, r = divmod(k, batch)
                fi = FaceInversion(j, f, a, latents[c][r:r + 1], recons[c][r:r + 1],
                                   loss[k], seconds[k], tuned[k])
                if exact and len(latents[c]) == 1:  # G(latent) is made: the edits reuse it
                    fi.before_cache = (weakref.ref(self.G), self.device, self.space, fi.latent,
                                       fi.reconstruction)
                faces.append(fi)
                k += 1
            t = dict(p.timings)
            t["invert"] = sum(fi.seconds for fi in faces)  # its faces' shares of their batches
            if faces:  # the batch its (first) face was inverted in: faces, seconds
                t["batch_faces"], t["batch_seconds"] = shared[k - len(faces)]
            out.append(InvertedPhoto(p.photo, faces, list(p.skipped), self.space, self.model_name,
                                     getattr(self.inverter, "name", "?"), t))
        return out

    def invert_many(self, photos, faces="largest", *, batch: int | None = None,
                    workers: int | None = None, progress=None):
        """Yield ``(input, InvertedPhoto or the exception)`` for each photo, in input order.

        Reading, detection and alignment run in ``workers`` threads (0: here; default
        `realedit.stream.default_workers`) while the network inverts faces of several photos in
        one batch (realedit.stream, the engine `realedit PHOTOS...` and `realedit batch` share).
        No process is started, so a plain script needs no ``if __name__ == "__main__"`` guard. A
        bad photo yields its own error (ImageError, NoFaceError, ...); it never stops the others.
        """
        from .stream import invert_stream

        return invert_stream(self, photos, faces, batch=batch, workers=workers, progress=progress)

    def invert_each(self, prepared: Sequence["PreparedPhoto"], *, batch: int | None = None,
                    progress=None) -> list:
        """`invert_prepared`, except that a photo whose inversion fails gets its exception in
        its place, and the others their InvertedPhoto: a failed batch is retried photo by
        photo to find the one at fault."""
        try:
            return self.invert_prepared(prepared, batch=batch, progress=progress)
        except Exception:  # noqa: BLE001 - isolate: retry photo by photo, each keeps its error
            return [self._invert_alone(p, batch, progress) for p in prepared]

    def _invert_alone(self, prepared, batch, progress):
        try:
            return self.invert_prepared([prepared], batch=batch, progress=progress)[0]
        except Exception as exc:  # noqa: BLE001 - returned to the caller with its photo
            return exc

    def apply(self, inverted: InvertedPhoto, edits: Mapping[str, float], keep: Sequence[str] = (),
              *, blend: str = "alpha", mask="landmarks", detail: str = DEFAULT_DETAIL) -> EditResult:
        """Edit the faces of an inverted photo and paste them back. Cheap: no inversion."""
        paste = transfer.strategy(detail, blend)  # UsageError for an unknown mode, before any work
        if inverted.model != self.model_name:
            raise EditError(f"this inversion was made with {inverted.model}, not {self.model_name}")
        with self.threads.stage():
            return self._apply(inverted, edits, keep, paste=paste, mask=mask)

    @torch.no_grad()
    def _apply(self, inverted, edits, keep, *, paste, mask) -> EditResult:
        from PIL import Image

        from .blend.guard import broken_reason, check_generated, sensible_text
        from .edit import apply_edits

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
            if not torch.isfinite(new_latent).all():
                # e.g. age=1e308: the code overflows float32; NaN pixels must not be written
                raise EditError(f"edit {dict(edits)} is too large: the latent code is no longer "
                                "finite")
            # The "before" image is synthesised the same way as the edited one (once per face,
            # then reused), so the residual is exactly the edit's effect (the inverter's stored
            # reconstruction may use optimised noise).
            before = fi.before_image(G, inverted.space, self.device)
            if torch.equal(new_latent, fi.latent):
                # A zero edit: reuse the image rather than synthesise it again, so the residual is
                # exactly zero and the photo comes back bit for bit whatever kernels the CPU picks.
                after = before
            else:
                after = synthesize(G, new_latent.to(self.device), inverted.space)
            if broken_reason(after, before):  # e.g. age=+1000: a colour blob, not a face
                check_generated(after, before, edits,
                                sensible=sensible_text(edits, self.bank, self.model_name))
            b, a = before[0].cpu(), after[0].cpu()
            rgb, alpha, crop = paste(rgb, fi.aligned, b, a, mask=mask, edits=edits)
            face_edits.append(FaceEdit(fi.index, fi.face, fi.latent, new_latent,
                                       Image.fromarray(fi.aligned.image), Image.fromarray(crop), alpha,
                                       (b, a)))
        t["edit_paste"] = time.perf_counter() - t0
        return EditResult(inverted.photo.with_rgb(rgb), inverted.photo, face_edits, inverted.skipped,
                          self.model_name, inverted.inverter, inverted.space, dict(edits),
                          tuple(keep), t)

    def edit(self, photo, edits: Mapping[str, float], keep: Sequence[str] = (), faces="largest",
             *, blend: str = "alpha", mask="landmarks", detail: str = DEFAULT_DETAIL,
             progress=None) -> EditResult:
        """invert + apply in one call. Edits are checked before the (slow) inversion."""
        self.check_edits(edits, keep)
        return self.apply(self.invert(photo, faces, progress=progress), edits, keep, blend=blend,
                          mask=mask, detail=detail)
