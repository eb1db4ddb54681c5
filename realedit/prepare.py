"""The prepare stage: a photo read, its faces detected, selected and aligned at the working crop
size (realedit.align.crop_size), ready for the network. Pure CPU work, picklable results, so
threads or worker processes can do it while the network inverts (realedit.batch).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from .align import align_face, crop_size
from .align.select import pick_faces
from .io import Photo, read_image


def crop_to_tensor(crop: np.ndarray, resolution: int, device=None) -> torch.Tensor:
    """(S, S, 3) uint8 -> (1, 3, R, R) in [-1, 1], downsampled with antialiasing."""
    if crop.shape[0] != resolution:
        crop = np.asarray(Image.fromarray(crop).resize((resolution, resolution), Image.LANCZOS))
    x = torch.from_numpy(np.array(crop, copy=True)).permute(2, 0, 1).float() / 127.5 - 1
    return x[None].to(device)


@dataclass
class PreparedPhoto:
    """A photo read, its faces detected and aligned: the CPU half of an inversion. Picklable
    (numpy arrays and dataclasses), so worker processes can make it."""

    photo: object              # realedit.io.Photo
    faces: list                # realedit.align.Face kept by the policy
    aligned: list              # realedit.align.AlignedFace at the working crop size
    skipped: list              # realedit.align.select.Skipped
    inputs: list               # per face: (R, R, 3) uint8 crop at the generator's resolution
    timings: dict = field(default_factory=dict)


def prepare_photo(photo, faces="largest", *, resolution: int, min_face: float = 32,
                  detector=None) -> PreparedPhoto:
    """Read, detect, select and align the faces of ``photo`` for a generator of
    ``resolution`` px. Pure CPU work; NoFaceError when no usable face remains."""
    t = {}
    t0 = time.perf_counter()
    ph = read_image(photo)
    t["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    where = str(ph.path) if ph.path else "photo"
    kept, skipped = pick_faces(ph.rgb, faces, min_size=min_face, detector=detector, where=where)
    t["detect"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    aligned, inputs = [], []
    for face in kept:
        a = align_face(ph.rgb, face, crop_size(face.size, resolution))
        aligned.append(a)
        crop = a.image
        if crop.shape[0] != resolution:  # antialiased downsampling to the generator's input
            crop = np.asarray(Image.fromarray(crop).resize((resolution, resolution), Image.LANCZOS))
        inputs.append(np.ascontiguousarray(crop))
    t["align"] = time.perf_counter() - t0
    return PreparedPhoto(ph, kept, aligned, skipped, inputs, t)


def downscaled(rgb: np.ndarray, size: int) -> np.ndarray:
    """``rgb`` with its long side at most ``size`` (area averaging: fast, no aliasing)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def rescaled(inverted, size: int, resolution: int):
    """The same inversion (same latents) on a copy of the photo whose long side is at most
    ``size``, each face re-aligned there, so a slider's preview costs what the preview's
    pixels cost: Editor.apply on a 12 MP photo spends most of a second warping and pasting
    at full size, though the preview shows a 768 px copy."""
    rgb = inverted.photo.rgb
    small = downscaled(rgb, size)
    if small is rgb:
        return inverted
    # pixel centres sit at integer coordinates: x -> (x + 0.5) * scale - 0.5, per axis
    scale = np.array([small.shape[1] / rgb.shape[1], small.shape[0] / rgb.shape[0]])
    faces = []
    for fi in inverted.faces:
        f = fi.face
        box = (np.asarray(f.box, np.float64).reshape(2, 2) + 0.5) * scale - 0.5
        face = replace(f, box=tuple(float(v) for v in box.ravel()),
                       landmarks=(f.landmarks + 0.5) * scale - 0.5)
        aligned = align_face(small, face, crop_size(face.size, resolution))
        faces.append(replace(fi, face=face, aligned=aligned))
    return replace(inverted, photo=Photo(rgb=small), faces=faces)
