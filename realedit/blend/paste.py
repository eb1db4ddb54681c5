"""Paste an edited aligned crop back into the original photo.

The crop is warped with the inverse of the alignment (the quad kept in photo coordinates),
through a soft mask, after an optional low-frequency colour correction and an optional
Poisson blend. Work happens inside the quad's bounding box only, so very large photos cost
no more than small ones, and every pixel where the mask is 0 is copied unchanged.
"""
from __future__ import annotations

import numpy as np

from ..align.ffhq import AlignedFace, quad_to_affine
from ..errors import UsageError
from . import masks

# Colour correction scale: Gaussian sigma as a fraction of the crop side. Coarse on purpose:
# it removes the colour cast/exposure drift of an inversion, not the edit itself (an edit
# that recolours hair still does, only the face-wide average is pulled back).
COLOR_SIGMA = 0.08


def _as_crop(new_crop) -> np.ndarray:
    a = np.asarray(new_crop)
    if hasattr(new_crop, "image") and not isinstance(new_crop, np.ndarray):
        a = np.asarray(new_crop.image)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] != a.shape[1]:
        raise UsageError(f"new crop must be a square HxWx3 image, got shape {a.shape}")
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating):
            a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
        else:
            raise UsageError(f"new crop must be uint8 or float in 0..1, got {a.dtype}")
    return a


# Masks are smooth (feather >= 5 px at this size), so they are built at most this large and
# resized: a 1024 landmark mask would otherwise cost a 143 px dilation.
_MASK_BUILD_SIZE = 256


def crop_mask(aligned: AlignedFace, size: int, mask="landmarks") -> np.ndarray:
    """The soft mask (size x size float32) that paste_back uses for ``mask``:
    "landmarks" (default; falls back to "square" without landmarks), "square", or an array."""
    import cv2

    if not isinstance(mask, str):
        return masks.user_mask(mask, size)
    if mask not in ("landmarks", "square"):
        raise UsageError(f"unknown mask {mask!r}: use 'landmarks', 'square' or an array")
    build = min(size, _MASK_BUILD_SIZE)
    if mask == "landmarks" and aligned.face is not None:
        # to_crop gives pixel-centre coords in a crop of aligned.size; rescale about edges
        lm = (aligned.to_crop(aligned.face.landmarks) + 0.5) * (build / aligned.size) - 0.5
        m = masks.landmark_mask(lm, build)
    else:
        m = masks.square_mask(build)
    if build != size:
        m = cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR)
        m[m < 1.0 / 512] = 0.0
    return m


def _lowpass(img: np.ndarray, weight: np.ndarray, sigma_frac: float) -> np.ndarray:
    """Weighted (normalised) Gaussian low-pass at ``sigma_frac`` of the image side, computed
    on a 64 px grid (the result is smooth, so this loses nothing and is ~100x faster than
    a full-size blur). Only pixels with weight contribute, so the background around the face
    does not leak into the colour estimate."""
    import cv2

    size = img.shape[0]
    grid = min(64, size)
    small = cv2.resize(img * weight[:, :, None], (grid, grid), interpolation=cv2.INTER_AREA)
    w_small = cv2.resize(weight, (grid, grid), interpolation=cv2.INTER_AREA)
    sigma = max(sigma_frac * grid, 0.5)
    k = int(2 * np.ceil(3 * sigma) + 1)
    num = cv2.GaussianBlur(small, (k, k), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(w_small, (k, k), sigma, borderType=cv2.BORDER_REFLECT)
    low = num / np.maximum(den, 1e-6)[:, :, None]
    return cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)


def color_correct(new: np.ndarray, original: np.ndarray, weight: np.ndarray,
                  sigma_frac: float = COLOR_SIGMA) -> np.ndarray:
    """new + lowpass(original) - lowpass(new), both low-passes restricted to ``weight`` > 0."""
    w = (weight > 0).astype(np.float32)
    a, b = original.astype(np.float32), new.astype(np.float32)
    out = b + _lowpass(a, w, sigma_frac) - _lowpass(b, w, sigma_frac)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def paste_back(photo, aligned: AlignedFace, new_crop, *, mask="landmarks",
               color: bool = True, poisson: bool = False, return_mask: bool = False):
    """Warp ``new_crop`` (square RGB, any size) into ``photo`` where ``aligned`` came from.

    photo: HxWx3 uint8 array or realedit.io.Photo (the result has the same type; the input is
    not modified). mask: "landmarks" (face + forehead, feathered; default), "square" (whole
    crop, eroded + feathered) or an array (crop-space weights: bool, uint8 or float 0..1).
    color: low-frequency colour correction toward the original crop. poisson: seamless clone
    (cv2.seamlessClone) inside the mask before the soft blend.
    Returns the new photo, or (photo, alpha) with ``return_mask`` (alpha: HxW float32 in
    0..1; wherever it is 0 the output equals the input bit for bit).
    """
    import cv2

    as_photo, rgb = photo_pixels(photo, aligned)
    crop = _as_crop(new_crop)
    size = crop.shape[0]
    alpha_crop = crop_alpha(aligned, size, mask)

    if color:
        orig_crop = aligned.image
        if orig_crop.shape[0] != size:
            orig_crop = cv2.resize(orig_crop, (size, size), interpolation=cv2.INTER_AREA
                                   if orig_crop.shape[0] > size else cv2.INTER_CUBIC)
        crop = color_correct(crop, orig_crop, alpha_crop)

    def combine(warped, orig, alpha):
        if poisson:
            warped = _poisson(warped, orig, alpha)
        # where alpha == 0 this is orig * 1 + (warped - orig) * 0 == orig exactly
        base = orig.astype(np.float32)
        return base + (warped.astype(np.float32) - base) * alpha[:, :, None]

    out, full_alpha = _warp_into(rgb, aligned, crop, alpha_crop, combine, return_mask)
    result = photo.with_rgb(out) if as_photo else out
    return (result, full_alpha) if return_mask else result


def photo_pixels(photo, aligned: AlignedFace) -> tuple[bool, np.ndarray]:
    """(is a Photo, its HxWx3 uint8 pixels), checked against the photo the face came from."""
    from ..io import Photo

    as_photo = isinstance(photo, Photo)
    rgb = photo.rgb if as_photo else np.asarray(photo)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise UsageError(f"photo must be HxWx3 uint8, got {rgb.shape} {rgb.dtype}")
    if tuple(rgb.shape[:2]) != tuple(aligned.photo_shape):
        raise UsageError(f"photo is {rgb.shape[1]}x{rgb.shape[0]} but the face was aligned on "
                         f"a {aligned.photo_shape[1]}x{aligned.photo_shape[0]} photo")
    return as_photo, rgb


def crop_alpha(aligned: AlignedFace, size: int, mask) -> np.ndarray:
    """The paste mask at crop size, zero over the recipe's synthetic padding."""
    import cv2

    alpha_crop = crop_mask(aligned, size, mask)
    if aligned.valid is not None:  # never paste the recipe's synthetic padding
        valid = aligned.valid
        if valid.shape[0] != size:
            valid = cv2.resize(valid, (size, size), interpolation=cv2.INTER_LINEAR)
        alpha_crop = alpha_crop * valid
    return alpha_crop


def _warp_into(rgb: np.ndarray, aligned: AlignedFace, crop: np.ndarray, alpha_crop: np.ndarray,
               combine, return_mask: bool):
    """Warp ``crop`` (uint8 pixels or float deltas) and its mask into photo space and let
    ``combine(warped, orig, alpha) -> float pixels`` blend them, on the mask's bounding box only.
    Returns (new rgb, full-photo alpha or None)."""
    import cv2

    size = crop.shape[0]
    # Anti-aliasing: bring the crop down to about the photo's resolution before warping, so
    # a 1024 crop of a 200 px face does not alias. The quad maps edges to edges at any size.
    qsize = float(np.hypot(*(aligned.quad[3] - aligned.quad[0])))
    work = size
    if size > 1.5 * qsize:
        work = max(int(np.ceil(qsize)), 8)
        crop = cv2.resize(crop, (work, work), interpolation=cv2.INTER_AREA)
        alpha_crop = cv2.resize(alpha_crop, (work, work), interpolation=cv2.INTER_AREA)
    crop_to_photo = quad_to_affine(aligned.quad, work)
    photo_to_crop = np.linalg.inv(crop_to_photo)

    # Region of interest: the quad's bounding box (the mask is 0 outside the quad).
    h, w = rgb.shape[:2]
    x0 = max(int(np.floor(aligned.quad[:, 0].min())) - 2, 0)
    y0 = max(int(np.floor(aligned.quad[:, 1].min())) - 2, 0)
    x1 = min(int(np.ceil(aligned.quad[:, 0].max())) + 3, w)
    y1 = min(int(np.ceil(aligned.quad[:, 1].max())) + 3, h)
    out = rgb.copy()
    full_alpha = np.zeros((h, w), np.float32) if return_mask else None
    if x1 > x0 and y1 > y0:
        flags = cv2.WARP_INVERSE_MAP
        # ROI pixel (i, j) is photo pixel (x0 + i, y0 + j): fold the offset into the matrix
        m = photo_to_crop @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]])
        alpha = cv2.warpAffine(alpha_crop, m[:2], (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | flags,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha[alpha < 1.0 / 512] = 0.0
        np.minimum(alpha, 1.0, out=alpha)
        rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
        if full_alpha is not None:
            full_alpha[y0:y1, x0:x1] = alpha
        if rows.size:
            # shrink the work to the mask's bounding box (a margin keeps Poisson off its edge)
            by0, by1 = max(rows[0] - 2, 0), min(rows[-1] + 3, y1 - y0)
            bx0, bx1 = max(cols[0] - 2, 0), min(cols[-1] + 3, x1 - x0)
            alpha = alpha[by0:by1, bx0:bx1]
            mb = m @ np.array([[1.0, 0, bx0], [0, 1.0, by0], [0, 0, 1.0]])
            warped = cv2.warpAffine(crop, mb[:2], (bx1 - bx0, by1 - by0), flags=cv2.INTER_CUBIC | flags,
                                    borderMode=cv2.BORDER_REPLICATE)
            orig = rgb[y0 + by0:y0 + by1, x0 + bx0:x0 + bx1]
            blended = combine(warped, orig, alpha)
            out[y0 + by0:y0 + by1, x0 + bx0:x0 + bx1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out, full_alpha


def paste_delta(photo, aligned: AlignedFace, delta, *, mask="landmarks", return_mask: bool = False):
    """Add a change made in crop space (``delta``: SxSx3 float, in 0..255 pixel units) to the
    photo through the soft mask. The photo's own pixels are never resampled, so a zero delta
    returns the photo bit for bit, and detail finer than the generator survives an edit.
    Same ``mask`` options and return convention as ``paste_back``."""
    as_photo, rgb = photo_pixels(photo, aligned)
    delta = np.asarray(delta, dtype=np.float32)
    if delta.ndim != 3 or delta.shape[2] != 3 or delta.shape[0] != delta.shape[1]:
        raise UsageError(f"delta must be a square HxWx3 array, got shape {delta.shape}")
    alpha_crop = crop_alpha(aligned, delta.shape[0], mask)

    def combine(warped, orig, alpha):
        return orig.astype(np.float32) + warped * alpha[:, :, None]

    out, full_alpha = _warp_into(rgb, aligned, delta, alpha_crop, combine, return_mask)
    result = photo.with_rgb(out) if as_photo else out
    return (result, full_alpha) if return_mask else result


def _poisson(warped: np.ndarray, orig: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Gradient-domain blend of ``warped`` into ``orig`` where alpha > 0 (OpenCV's
    seamlessClone, which needs the mask off the image border: we pad the ROI)."""
    import cv2

    binary = (alpha > 0.05).astype(np.uint8) * 255
    if not binary.any():
        return warped
    pad = 4
    src = cv2.copyMakeBorder(warped, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    dst = cv2.copyMakeBorder(orig, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    msk = cv2.copyMakeBorder(binary, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    ys, xs = np.nonzero(msk)
    # seamlessClone centres the mask's bounding box on ``center``: keep it where it is
    center = (int((xs.min() + xs.max() + 1) // 2), int((ys.min() + ys.max() + 1) // 2))
    # OpenCV expects BGR but treats channels independently: RGB in, RGB out is fine
    cloned = cv2.seamlessClone(src, dst, msk, center, cv2.NORMAL_CLONE)
    return cloned[pad:-pad, pad:-pad]


def paste_back_many(photo, items, **kwargs):
    """Paste several (aligned, new_crop) pairs into one photo, in order. Each paste only
    touches its own mask, so faces far apart are independent; overlapping ones stack."""
    out = photo
    for aligned, new_crop in items:
        out = paste_back(out, aligned, new_crop, **kwargs)
    return out
