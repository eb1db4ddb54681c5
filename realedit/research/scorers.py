"""Scorers: image batch -> one attribute score per image.

Protocol: a callable taking images (N, 3, H, W) in [-1, 1] (what generators emit) and
returning scores (N,) as float (NaN where an image cannot be scored), with a ``name``. Any
plain callable works too (:func:`as_scorer` adds the name).

Generated and aligned images are FFHQ-aligned crops. Each scorer adapts that framing to what
its network was trained on:

- CelebA classifiers (male, smile) saw CelebA's 178x218 aligned photos stretched to 256x256:
  :func:`ffhq_to_celeba` re-frames the crop to CelebA's framing (the margins the crop lacks
  repeat its border pixels) then stretches it.
- The faceres age/gender net wants a square 1.4x face box resized to 224: the box is the mean
  dlib box in FFHQ-crop coordinates (``box="ffhq"``, default) or dlib run on the upsampled
  crop (``box="dlib"``).

Both geometries are means over 386 CelebA photos (dlib landmarks -> FFHQ quad). On 154 other
photos, scores of their 256 px FFHQ crops vs the same network on the native photo: male logit
corr 0.984 (border fill; 0.970 reflect, 0.961 zeros, 0.951 without re-framing), smile 0.967;
age corr 0.983 with the fixed box vs 0.969 with dlib on the crop (0.947 / 0.942 from 64 px
crops), so the fixed box is the default. ``bench/directions.py --adapters`` re-measures.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch.nn import functional as F

from ..align.ffhq import FACE_BOX_IN_FFHQ  # dlib's face box in the crop, same units
from ..errors import UsageError, WeightsNotFound
from .attribute_nets import detect_attribute_file, load_celeba_net, load_faceres

# CelebA's aligned 178x218 frame, in units of the FFHQ crop side (crop = [0, 1] x [0, 1]):
# left, top, right, bottom. Mean over 400 CelebA photos (dlib 68 landmarks -> FFHQ quad).
CELEBA_FRAME_IN_FFHQ = (-0.0711, -0.2511, 1.0712, 1.1463)
# Environment variable naming a folder with the attribute networks, so scorer names
# "male", "smile", "age", "gender" resolve without a path.
SCORER_DIR_ENV = "REALEDIT_SCORER_DIR"
ATTRIBUTE_FILES = {"male": "male_clf_aug.pth", "smile": "smile_clf_aug.pth",
                   "age": "age_faceres.pt", "gender": "age_faceres.pt"}
BUILTIN_SCORERS = ("pose", "brightness")


@runtime_checkable
class Scorer(Protocol):
    name: str

    def __call__(self, images: torch.Tensor) -> np.ndarray: ...


class FunctionScorer:
    """A plain callable as a Scorer."""

    def __init__(self, fn: Callable, name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "name", None) or getattr(fn, "__name__", "scorer")

    def __call__(self, images):
        out = self.fn(images)
        if isinstance(out, torch.Tensor):
            out = out.detach().cpu().double().numpy()
        return np.asarray(out, dtype=np.float64).reshape(-1)


def as_scorer(obj, name: str | None = None) -> Scorer:
    if isinstance(obj, Scorer) and name is None:
        return obj
    if not callable(obj):
        raise UsageError(f"a scorer must be callable, got {type(obj).__name__}")
    return FunctionScorer(obj, name)


class BrightnessScorer:
    """Mean luma in [-1, 1]: a model-free scorer for tests and benchmarks."""

    name = "brightness"

    def __call__(self, images):
        w = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
        return (images * w[None, :, None, None]).sum(1).mean((1, 2)).detach().cpu().double().numpy()


# ----------------------------------------------------------------------------- geometry

def _resample(images: torch.Tensor, rects: torch.Tensor, out_hw: tuple[int, int],
              padding: str) -> torch.Tensor:
    """Bilinear crops: rects (N, 4) = (left, top, right, bottom) in fractions of the input
    side (edges, not pixel centres). Outside the input: 'zeros', 'border' or 'reflection'."""
    n = images.shape[0]
    h, w = out_hw
    # Heavy downscaling: blur first (area) so bilinear sampling does not alias.
    side = images.shape[-1]
    scale = min((rects[:, 2] - rects[:, 0]).min().item() * side / w,
                (rects[:, 3] - rects[:, 1]).min().item() * images.shape[-2] / h)
    if scale > 2:
        f = int(scale)
        images = F.avg_pool2d(images, f, ceil_mode=True) if images.shape[-1] % f == 0 else \
            F.interpolate(images, scale_factor=1 / f, mode="area")
    ys = (torch.arange(h, dtype=images.dtype, device=images.device) + 0.5) / h
    xs = (torch.arange(w, dtype=images.dtype, device=images.device) + 0.5) / w
    r = rects.to(device=images.device, dtype=images.dtype)
    gx = r[:, 0:1] + xs[None] * (r[:, 2:3] - r[:, 0:1])          # (N, w) in [0, 1] of input
    gy = r[:, 1:2] + ys[None] * (r[:, 3:4] - r[:, 1:2])          # (N, h)
    grid = torch.stack([gx[:, None, :].expand(n, h, w), gy[:, :, None].expand(n, h, w)], -1)
    return F.grid_sample(images, grid * 2 - 1, mode="bilinear", padding_mode=padding,
                         align_corners=False)


def ffhq_to_celeba(images: torch.Tensor, size: int = 256, padding: str = "border") -> torch.Tensor:
    """FFHQ-aligned crops (N, 3, S, S) -> CelebA framing stretched to size x size, same range."""
    rect = torch.tensor(CELEBA_FRAME_IN_FFHQ, device=images.device).expand(images.shape[0], 4)
    return _resample(images, rect, (size, size), padding)


def square_box(boxes, scale: float = 1.4) -> np.ndarray:
    """(N, 4) boxes -> square boxes of side scale * max(w, h) about the same centre."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    c = (b[:, :2] + b[:, 2:]) / 2
    half = scale * np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2
    return np.column_stack([c - half[:, None], c + half[:, None]])


def ffhq_face_boxes(n: int, side: int, *, jitter: float = 0.0, rng=None) -> np.ndarray:
    """(n, 4) pixel-edge face boxes of ``side`` px FFHQ crops (dlib's box, FACE_BOX_IN_FFHQ),
    each edge moved by up to ``jitter`` of the box's width, drawn from ``rng``, when jitter
    is set: the age net judged on slightly different boxes cannot be fooled by one box."""
    box = np.tile(np.array(FACE_BOX_IN_FFHQ) * side, (n, 1))
    if jitter:
        width = (FACE_BOX_IN_FFHQ[2] - FACE_BOX_IN_FFHQ[0]) * side
        box = box + rng.uniform(-jitter, jitter, (n, 4)) * width
    return box


def faceres_input(images: torch.Tensor, boxes, *, scale: float = 1.4, size: int = 224) -> torch.Tensor:
    """What the age net wants: each image's face box ((N, 4) pixel edges: left, top, right,
    bottom; pixel i spans [i, i+1]) enlarged ``scale``x and squared, zero outside, resized to
    size, RGB 0..255."""
    h, w = images.shape[-2:]
    rect = torch.as_tensor(square_box(boxes, scale) / np.array([w, h, w, h], dtype=np.float64))
    crops = _resample(images, rect, (size, size), "zeros")
    # [-1, 1] -> 0..255 while keeping the outside at 0 (zeros were sampled in [-1, 1] space).
    inside = _resample(torch.ones_like(images[:, :1]), rect, (size, size), "zeros")
    return ((crops + inside) * 127.5).clamp(0, 255)


def dlib_box_edges(box) -> np.ndarray:
    """dlib's inclusive (left, top, right, bottom) pixel-centre box -> pixel-edge box."""
    l, t, r, b = (float(v) for v in box)
    return np.array([l, t, r + 1.0, b + 1.0])


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def upsample_for_dlib(images: torch.Tensor, min_side: int = 256) -> torch.Tensor:
    """Small generated images hold faces below HOG's ~80 px floor: upsample them first."""
    side = images.shape[-1]
    if side >= min_side:
        return images
    f = math.ceil(min_side / side)
    return F.interpolate(images.float(), scale_factor=f, mode="bicubic", align_corners=False).clamp(-1, 1)


# ----------------------------------------------------------------------------- classifiers

class CelebAClassifierScorer:
    """Logit of a CelebA attribute classifier (male_clf_aug.pth, smile_clf_aug.pth layout).

    framing="ffhq": inputs are FFHQ-aligned crops (re-framed first); "celeba": inputs are
    already CelebA-framed photos (only stretched to 256x256).
    """

    def __init__(self, path: str | Path, name: str | None = None, *, framing: str = "ffhq",
                 device="cpu", batch: int = 64):
        if framing not in ("ffhq", "celeba"):
            raise UsageError(f"framing must be 'ffhq' or 'celeba', got {framing!r}")
        self.net = load_celeba_net(path, device)
        self.name = name or _name_from_file(path)
        self.framing, self.device, self.batch = framing, device, batch

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(N,) logits that keep their gradients; one batch, on the scorer's device."""
        x = images.float().to(self.device)
        x = ffhq_to_celeba(x) if self.framing == "ffhq" else \
            F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False, antialias=True)
        return self.net(x)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return torch.cat([self.logits(c).double().cpu() for c in images.split(self.batch)]).numpy()


class AgeGenderScorer:
    """faceres MobileNet: output="age" (expected years) or "male" (P(male)).

    box: "ffhq" (fixed mean face box of the FFHQ crop), "dlib" (HOG on the upsampled crop;
    falls back to the fixed box where nothing is found), or "given" (pass ``boxes=`` in
    pixel-edge coordinates, e.g. a dlib box on a photo that is not an FFHQ crop).
    """

    def __init__(self, path: str | Path, output: str = "age", *, box: str = "ffhq",
                 name: str | None = None, device="cpu", batch: int = 32, detector=None):
        if output not in ("age", "male"):
            raise UsageError(f"age net output must be 'age' or 'male', got {output!r}")
        if box not in ("ffhq", "dlib", "given"):
            raise UsageError(f"box must be 'ffhq', 'dlib' or 'given', got {box!r}")
        self.net = load_faceres(path, device)
        self.output, self.box, self.device, self.batch = output, box, device, batch
        self.detector = detector
        self.name = name or output

    def boxes_for(self, images: torch.Tensor) -> np.ndarray:
        """(N, 4) face boxes in pixel edges of ``images``."""
        side = images.shape[-1]
        fixed = np.tile(np.array(FACE_BOX_IN_FFHQ) * side, (images.shape[0], 1))
        if self.box == "ffhq":
            return fixed
        big = upsample_for_dlib(images)
        f = side / big.shape[-1]
        for i, img in enumerate(to_uint8(big)):
            faces = _detect(img, self.detector)
            if faces:
                fixed[i] = dlib_box_edges(faces[0].box) * f
        return fixed

    def _boxes(self, images: torch.Tensor, boxes) -> np.ndarray:
        if boxes is None:
            if self.box == "given":
                raise UsageError("box='given' needs boxes=")
            boxes = self.boxes_for(images)
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)

    def scores(self, images: torch.Tensor, boxes=None) -> dict[str, torch.Tensor]:
        """{"age": years, "male": P(male)} as (N,) tensors that keep their gradients (for
        learning directions through the net); one batch, on the scorer's device."""
        x = faceres_input(images.float(), self._boxes(images, boxes))
        r = self.net(x.to(self.device))
        return {"age": r["age"], "male": r["male"]}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, boxes=None) -> dict[str, np.ndarray]:
        boxes = self._boxes(images, boxes)
        out: dict[str, list] = {"age": [], "male": []}
        for s in range(0, images.shape[0], self.batch):
            r = self.scores(images[s:s + self.batch], boxes[s:s + self.batch])
            out["age"].append(r["age"].double().cpu().numpy())
            out["male"].append(r["male"].double().cpu().numpy())
        return {k: np.concatenate(v) for k, v in out.items()}

    def __call__(self, images: torch.Tensor, boxes=None) -> np.ndarray:
        return self.predict(images, boxes)[self.output]


# ----------------------------------------------------------------------------- pose

class PoseScorer:
    """Head yaw in degrees (realedit.align.pose.head_yaw, the one pose measurement) of dlib's
    landmarks on each image (NaN where no face is found)."""

    name = "pose"

    def __init__(self, detector=None, min_side: int = 256):
        self.detector, self.min_side = detector, min_side

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        from ..align.pose import head_yaw

        out = np.full(images.shape[0], np.nan)
        for i, img in enumerate(to_uint8(upsample_for_dlib(images, self.min_side))):
            faces = _detect(img, self.detector)
            if faces:
                out[i] = head_yaw(faces[0].landmarks, (img.shape[1], img.shape[0]))
        return out


def _detect(img: np.ndarray, detector):
    if detector is not None:
        return detector(img)
    from ..align import detect_faces
    return detect_faces(img)


# ----------------------------------------------------------------------------- lookup

def get_scorer(spec, *, scorer_dir: str | Path | None = None, device="cpu", **options) -> Scorer:
    """A scorer from a name, a file path, or any callable.

    Names: "pose", "brightness"; "male", "smile", "age", "gender" resolve to files in
    ``scorer_dir`` (or $REALEDIT_SCORER_DIR). Paths: a CelebA classifier file, or the
    faceres file (age; append ":male" for P(male), e.g. ``age_faceres.pt:male``).
    """
    if callable(spec) and not isinstance(spec, (str, Path)):
        return as_scorer(spec)
    s = str(spec)
    if s == "pose":
        return PoseScorer(**options)
    if s == "brightness":
        return BrightnessScorer()
    output = None
    path_s = s
    if ":" in s and not Path(s).exists():
        path_s, _, output = s.rpartition(":")
    path = Path(path_s)
    if not path.exists() and path_s in ATTRIBUTE_FILES:
        folder = scorer_dir or os.environ.get(SCORER_DIR_ENV)
        if not folder:
            raise UsageError(f"scorer {path_s!r} needs its network file: pass a path, or a folder "
                             f"holding {ATTRIBUTE_FILES[path_s]} (--scorer-dir / ${SCORER_DIR_ENV})")
        path = Path(folder) / ATTRIBUTE_FILES[path_s]
        if output is None and path_s == "gender":
            output = "male"
        name = path_s
    else:
        name = None
    if not path.is_file():
        raise WeightsNotFound(f"scorer {s!r}: no such file {path} (known names: "
                              f"{', '.join(BUILTIN_SCORERS + tuple(ATTRIBUTE_FILES))})")
    kind = detect_attribute_file(path)
    if kind == "celeba":
        if output is not None:
            raise UsageError(f"{path.name} has one output; drop ':{output}'")
        return CelebAClassifierScorer(path, name, device=device, **options)
    output = output or "age"
    return AgeGenderScorer(path, output, name=name or ("age" if output == "age" else "male"),
                           device=device, **options)


def _name_from_file(path) -> str:
    stem = Path(path).stem
    return stem.split("_")[0] if "_clf" in stem else stem
