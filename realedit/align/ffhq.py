"""FFHQ alignment (NVlabs/ffhq-dataset recipe, ../shared/REFERENCE.md section 1) at any size.

Coordinates: pixel-index coordinates throughout (pixel (i, j) has its centre at x=i, y=j),
the convention of dlib landmarks and OpenCV. The quad is kept in full-photo coordinates; the
crop covers exactly that quad, so ``AlignedFace.crop_to_photo`` is the paste-back warp.

One deliberate difference from the NVlabs script: when the photo is shrunk by an integer
factor, the quad is mapped into the shrunk image with pixel-centre-correct scaling
((q + 0.5) / s - 0.5) instead of q / s, so the crop is not shifted by (s - 1) / 2 photo pixels
and paste-back stays sub-pixel accurate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from .face import Face, as_rgb_array, ffhq_quad  # noqa: F401 (ffhq_quad re-exported)

# dlib's HOG face box in an FFHQ-aligned crop, in units of the crop side (left, top, right,
# bottom): the mean over 400 CelebA photos (dlib 68 landmarks -> FFHQ quad). A face-sized
# network or the landmark predictor can look there without running the detector.
FACE_BOX_IN_FFHQ = (0.2006, 0.2841, 0.8056, 0.8929)

# Canonical FFHQ eye centres as fractions of the crop side, derived from the recipe (a face
# with eye_to_mouth perpendicular to eye_to_eye and 2|e2e| >= 1.8|e2m| puts the eyes here).
# Faces with other proportions land slightly differently; tests measure real photos.


# The largest crop the pipeline works at: beyond it a face gains nothing (the generators' output
# is at most 1024 px) and pasting costs more.
MAX_CROP = 1024


def crop_size(face_size: float, resolution: int) -> int:
    """The side of the aligned crop a face is worked on: the face's own scale (its FFHQ quad
    side), at least the generator's ``resolution`` and at most MAX_CROP, so an edit lands on a
    crop as sharp as the photo. The one rule for inversion, serve's previews and batch jobs."""
    return int(np.clip(round(face_size), resolution, MAX_CROP))


def quad_to_affine(quad: np.ndarray, size: int) -> np.ndarray:
    """3x3 matrix mapping crop pixel coords (u, v, 1) to the quad's frame (square quads only).

    Crop pixel u has its centre at fraction (u + 0.5) / size along the top edge, as in PIL's
    QUAD transform of (quad + 0.5) used by the recipe.
    """
    q = np.asarray(quad, dtype=np.float64)
    ex, ey = (q[3] - q[0]) / size, (q[1] - q[0]) / size
    origin = q[0] + 0.5 * (ex + ey)
    return np.array([[ex[0], ey[0], origin[0]], [ex[1], ey[1], origin[1]], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class AlignedFace:
    """An aligned square crop and how it maps back to the photo.

    image: (size, size, 3) uint8; quad: (4, 2) photo coords (TL, BL, BR, TR);
    crop_to_photo / photo_to_crop: 3x3 affine matrices between crop and photo pixel coords;
    photo_shape: (H, W) of the photo it came from; face: the detection (may be None);
    valid: (size, size) float32 in 0..1, where the crop shows real photo pixels (0 on the
    recipe's synthetic padding and its blur), or None when no padding was needed. paste_back
    multiplies its mask by it, so padding never lands in the photo.
    """

    image: np.ndarray = field(repr=False)
    quad: np.ndarray
    size: int
    crop_to_photo: np.ndarray = field(repr=False)
    photo_to_crop: np.ndarray = field(repr=False)
    photo_shape: tuple[int, int]
    face: Face | None = field(default=None, repr=False)
    valid: np.ndarray | None = field(default=None, repr=False)

    def to_photo(self, points) -> np.ndarray:
        """Crop pixel coords (N, 2) -> photo pixel coords."""
        return _apply(self.crop_to_photo, points)

    def to_crop(self, points) -> np.ndarray:
        """Photo pixel coords (N, 2) -> crop pixel coords."""
        return _apply(self.photo_to_crop, points)

    def to_dict(self) -> dict:
        return {
            "size": self.size,
            "quad": self.quad.round(4).tolist(),
            "crop_to_photo": self.crop_to_photo.tolist(),
            "photo_shape": list(self.photo_shape),
            "face": self.face.to_dict() if self.face is not None else None,
        }


def _apply(m: np.ndarray, points) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return p @ m[:2, :2].T + m[:2, 2]


def _shrunk_region(rgb: np.ndarray, shrink: int, box: tuple[int, int, int, int],
                   shrunk_size: tuple[int, int]) -> np.ndarray:
    """Pixels box=(x0, y0, x1, y1) of the photo resized to ``shrunk_size`` with Lanczos
    (the recipe's ANTIALIAS), rendering only that region: identical to resizing the whole
    photo and cropping, at a fraction of the memory on very large photos."""
    from PIL import Image

    h, w = rgb.shape[:2]
    sx, sy = w / shrunk_size[0], h / shrunk_size[1]
    x0, y0, x1, y1 = box
    bx0, by0, bx1, by1 = x0 * sx, y0 * sy, x1 * sx, y1 * sy
    margin = int(np.ceil(3 * max(sx, sy))) + 2  # Lanczos-3 support at this scale
    rx0, ry0 = max(int(np.floor(bx0)) - margin, 0), max(int(np.floor(by0)) - margin, 0)
    rx1, ry1 = min(int(np.ceil(bx1)) + margin, w), min(int(np.ceil(by1)) + margin, h)
    src = Image.fromarray(np.ascontiguousarray(rgb[ry0:ry1, rx0:rx1]))
    out = src.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS,
                     box=(bx0 - rx0, by0 - ry0, bx1 - rx0, by1 - ry0))
    return np.asarray(out)


def _pad_and_blend(region: np.ndarray, pads: tuple[int, int, int, int],
                   qsize: float) -> tuple[np.ndarray, np.ndarray]:
    """Reflect-pad (left, top, right, bottom), then fade the padding toward a Gaussian blur
    (sigma 0.02 qsize) and the median colour, more strongly further from real pixels.

    Returns the padded image and ``untouched`` (H, W) float32: 1 where the pixel is the
    photo's own, falling to 0 where the recipe's blur reaches (it also blurs real pixels
    within a third of the pad width of the edge)."""
    import cv2

    pl, pt, pr, pb = pads
    img = np.pad(region.astype(np.float32), ((pt, pb), (pl, pr), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
    xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
    mx = 1.0 - np.minimum(xs / pl, (w - 1 - xs) / pr)
    my = 1.0 - np.minimum(ys / pt, (h - 1 - ys) / pb)
    mask = np.maximum(mx[None, :], my[:, None])[:, :, None]
    sigma = qsize * 0.02
    # = scipy.ndimage.gaussian_filter(img, [sigma, sigma, 0]) (reflect mode, truncate 4),
    # which the recipe uses, to ~1e-4; OpenCV's is several times faster
    radius = int(4.0 * sigma + 0.5)
    blurred = cv2.GaussianBlur(img, (2 * radius + 1, 2 * radius + 1), sigma, borderType=cv2.BORDER_REFLECT)
    blur_weight = np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    img += (blurred - img) * blur_weight
    img += (np.median(img, axis=(0, 1)) - img) * np.clip(mask, 0.0, 1.0)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), 1.0 - blur_weight[:, :, 0]


def align_face(image, face, size: int = 1024, *, supersample: int = 4,
               pad: bool = True) -> AlignedFace:
    """FFHQ-aligned ``size`` x ``size`` crop of ``face`` (a Face or (68, 2) landmarks).

    supersample: the warp renders at supersample * size and downsamples with Lanczos (the
    recipe renders 4096 for 1024); 1 warps straight to ``size`` (e4e/pSp style, faster).
    pad: the recipe's reflect-pad + blur/median blend where the quad leaves the photo.
    """
    import cv2
    from PIL import Image

    if int(size) < 8:
        raise UsageError(f"crop size must be at least 8, got {size}")
    size, supersample = int(size), max(int(supersample), 1)
    rgb = as_rgb_array(image)
    landmarks = face.landmarks if isinstance(face, Face) else np.asarray(face, dtype=np.float64)
    quad = ffhq_quad(landmarks)
    qsize = float(np.hypot(*(quad[3] - quad[0])))
    h, w = rgb.shape[:2]

    # Shrink: integer downscale when the face is much larger than the output.
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        ws, hs = int(np.rint(w / shrink)), int(np.rint(h / shrink))
        scale = np.array([w / ws, h / hs])
        q = (quad + 0.5) / scale - 0.5
        qs = qsize / shrink
    else:
        ws, hs, q, qs = w, h, quad.copy(), qsize

    # Crop: quad bounding box plus a border, clipped to the (shrunk) photo.
    border = max(int(np.rint(qs * 0.1)), 3)
    x0 = max(int(np.floor(q[:, 0].min())) - border, 0)
    y0 = max(int(np.floor(q[:, 1].min())) - border, 0)
    x1 = min(int(np.ceil(q[:, 0].max())) + border, ws)
    y1 = min(int(np.ceil(q[:, 1].max())) + border, hs)
    if x1 <= x0 or y1 <= y0:
        raise UsageError("face quad lies entirely outside the image")
    if shrink > 1:
        region = _shrunk_region(rgb, shrink, (x0, y0, x1, y1), (ws, hs))
    else:
        region = rgb[y0:y1, x0:x1]
    q = q - [x0, y0]

    # Pad where the quad leaves the photo by more than border - 4 pixels.
    rh, rw = region.shape[:2]
    pads = (max(-int(np.floor(q[:, 0].min())) + border, 0), max(-int(np.floor(q[:, 1].min())) + border, 0),
            max(int(np.ceil(q[:, 0].max())) - rw + border, 0), max(int(np.ceil(q[:, 1].max())) - rh + border, 0))
    untouched = None
    if pad and max(pads) > border - 4:
        pads = tuple(max(p, int(np.rint(qs * 0.3))) for p in pads)
        region, untouched = _pad_and_blend(region, pads, qs)
        q = q + [pads[0], pads[1]]

    # Warp the quad to a square (affine: the quad is an exact square in the photo).
    t = size * supersample
    m = quad_to_affine(q, t)[:2]
    out = cv2.warpAffine(np.ascontiguousarray(region), m, (t, t),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    if supersample > 1:
        out = np.asarray(Image.fromarray(out).resize((size, size), Image.Resampling.LANCZOS))

    valid = None
    if untouched is not None:
        valid = cv2.warpAffine(untouched, quad_to_affine(q, size)[:2], (size, size),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    crop_to_photo = quad_to_affine(quad, size)
    return AlignedFace(image=np.ascontiguousarray(out), quad=quad, size=size,
                       crop_to_photo=crop_to_photo, photo_to_crop=np.linalg.inv(crop_to_photo),
                       photo_shape=(h, w), face=face if isinstance(face, Face) else None,
                       valid=valid)
