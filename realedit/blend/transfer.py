"""How an edit reaches the photo: the paste strategies behind one function.

The generator's images of the inverted and the edited code (``before``, ``after``: (3, R, R) in
[-1, 1]) say what the edit did; the photo's own pixels are kept and only that change reaches
them. ``detail`` picks how:

- "warp" (default, realedit.blend.flow): the photo's face is moved the way the generator moved
  its face (optical flow between before and after), plus the colour change the motion does not
  explain, only where the edit acts: a head turn turns the photo's own face, no ghost;
- "residual": the upsampled difference after - before is added through the face mask;
- "replace": the generator's output itself is pasted (sharpness limited to its resolution),
  with the usual colour correction.

``blend`` picks how the edited crop goes back: "alpha" (feathered mask) or "poisson" (seamless
cloning). In every mode no edit means no change at all. A new transfer mode is one function
here and one name in realedit.args.DETAIL_MODES.

    paste = strategy(detail, blend)            # validated once, before any face is edited
    rgb, alpha, crop = paste(rgb, aligned, before, after, mask="landmarks", edits={"age": 3})
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from ..args import BLEND_MODES, DETAIL_MODES, check_choice
from . import flow
from .paste import crop_mask, paste_back, paste_delta

# (photo rgb, aligned face, before, after, mask, edits) -> (new rgb, alpha in the photo, crop)
Paste = Callable[..., tuple]


def edit_delta(before: torch.Tensor, after: torch.Tensor, size: int) -> np.ndarray:
    """The generator's change (after - before, (3, R, R) in [-1, 1]) as an (S, S, 3) float32
    array in 0..255 pixel units, upsampled to the crop size."""
    delta = (after - before).detach().float()[None] * 127.5
    delta = F.interpolate(delta, size=(size, size), mode="bicubic", align_corners=False)[0]
    return delta.permute(1, 2, 0).cpu().numpy()  # upsampled where the tensors are (a GPU's)


def transfer_detail(original_crop: np.ndarray, before: torch.Tensor, after: torch.Tensor,
                    mode: str = "residual") -> np.ndarray:
    """New crop (S, S, 3) uint8 from the photo's crop and the generator's before/after images.

    before/after: (3, R, R) in [-1, 1]. residual: crop + upsampled (after - before);
    warp: crop moved by the generator's motion plus the rest (realedit.blend.flow);
    replace: upsampled ``after``.
    """
    check_choice("detail mode", mode, DETAIL_MODES)
    size = original_crop.shape[0]
    if mode == "residual":
        out = original_crop.astype(np.float32) + edit_delta(before, after, size)
    elif mode == "warp":
        out = flow.apply_field(original_crop, flow.edit_field(before, after)).astype(np.float32)
    else:  # replace
        img = (after.detach().float()[None] + 1) * 127.5
        out = F.interpolate(img, size=(size, size), mode="bicubic", align_corners=False)[0]
        out = out.permute(1, 2, 0).cpu().numpy()
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _paste_warp(rgb, aligned, before, after, *, blend: str, mask, edits=()):
    """detail="warp": the photo's own pixels moved as the generator moved its face; the hair's
    colour change is carried for the ``edits`` that recolour hair (flow.HAIR_EDITS)."""
    n = flow.FLOW_SIZE
    # the photo's own landmarks on the flow's grid: the field is registered onto them
    lm = None if aligned.face is None else \
        (aligned.to_crop(aligned.face.landmarks) + 0.5) * (n / aligned.size) - 0.5
    field = flow.face_field(before, after, face=crop_mask(aligned, n, mask), photo_landmarks=lm,
                            photo=aligned.image, hair=flow.recolours_hair(edits))
    crop = flow.apply_field(aligned.image, field)
    if blend == "alpha":
        rgb, alpha = flow.paste_field(rgb, aligned, field, mask=mask, return_mask=True)
    else:  # poisson clones the warped crop, on the region where the edit acts
        size = crop.shape[0]
        where = crop_mask(aligned, size, mask) * flow.field_at(field, size).act
        rgb, alpha = paste_back(rgb, aligned, crop, mask=where, color=False, poisson=True,
                                return_mask=True)
    return rgb, alpha, crop


def _paste_residual(rgb, aligned, before, after, *, blend: str, mask, edits=()):
    """detail="residual": the generator's change added to the photo's pixels."""
    crop = transfer_detail(aligned.image, before, after, "residual")
    if blend == "alpha":
        # Add the change in photo space: the photo's pixels are never resampled.
        delta = edit_delta(before, after, aligned.image.shape[0])
        rgb, alpha = paste_delta(rgb, aligned, delta, mask=mask, return_mask=True)
    else:
        rgb, alpha = paste_back(rgb, aligned, crop, mask=mask, color=False, poisson=True,
                                return_mask=True)
    return rgb, alpha, crop


def _paste_replace(rgb, aligned, before, after, *, blend: str, mask, edits=()):
    """detail="replace": the generator's face itself, colour-corrected to the photo."""
    crop = transfer_detail(aligned.image, before, after, "replace")
    rgb, alpha = paste_back(rgb, aligned, crop, mask=mask, color=True,
                            poisson=(blend == "poisson"), return_mask=True)
    return rgb, alpha, crop


# One per name in realedit.args.DETAIL_MODES (tests/test_blend.py checks they match).
STRATEGIES = {"warp": _paste_warp, "residual": _paste_residual, "replace": _paste_replace}


def strategy(detail: str, blend: str = "alpha") -> Paste:
    """The paste for ``detail`` and ``blend`` (UsageError for an unknown one): a function
    ``(rgb, aligned, before, after, mask=..., edits=...) -> (new rgb, alpha, edited crop)``
    (``edits``: the amounts asked for; the warp carries a hair colour change for some)."""
    check_choice("blend", blend, BLEND_MODES)
    check_choice("detail mode", detail, DETAIL_MODES)
    fn = STRATEGIES[detail]

    def paste(rgb, aligned, before, after, mask="landmarks", edits=()):
        return fn(rgb, aligned, before, after, blend=blend, mask=mask, edits=edits)

    return paste
