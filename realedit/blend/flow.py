"""Geometry-aware detail transfer ("warp"): move the photo's own pixels the way the generator
moved its face, then add only the colour change that the movement does not explain.

The residual mode adds G(edited) - G(inverted) to the photo. When an edit changes *shape*
(a head turn, mouth corners) that difference is a ghost of the new shape beside the old one.
Here the motion between the two generated faces is estimated with dense optical flow
(OpenCV's DIS) on a fixed grid (FLOW_SIZE px, upsampled from the generator's output),
regularised, and applied to the photo itself, so a turn turns the photo's own face at the
photo's resolution. Raw flow liquifies hair texture and can bend an eye, so the flow is kept
only where the face is and where the generator actually changed, smoothed by normalised
convolution, and bounded in size and in strain (a fold-free warp, no local distortion beyond
MAX_STRAIN). The optical flow misses much of what dlib reads as the face's shape on a 64 px
face (a smile's mouth corners, a turn's nose), so the flow is then made to follow the
generator's own landmarks (realedit.blend.landmarks), and the whole field is registered onto
the photo's landmarks, so that the edit lands on the photo's mouth, not a few pixels beside
it. The remainder after - warp(before) is low-passed to the generator's band, kept only where
the generator changed, less its face-wide tone cast and most of its colour noise. The paste
is restricted to where either acts, so hair and background that do not move keep their
pixels, bit for bit.

    field = face_field(before, after, face=crop_mask(aligned, FLOW_SIZE), photo_landmarks=lm)
    new_photo = paste_field(photo, aligned, field)        # photo space, one resampling
    new_crop = apply_field(aligned.image, field)           # the same in crop space

All functions are pure; images are numpy arrays, generator images torch tensors in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError

# Grid the flow is estimated on (crop side, px). 256 px upsampled from a 64 px generator is
# enough for DIS's patches to see the face's parts; the cost is a few ms.
FLOW_SIZE = 256
# Fractions of the grid side.
SMOOTH = 0.025       # Gaussian sigma of the normalised-convolution smoothing of the flow
MIN_SHIFT = 0.0006   # smaller motion (0.15 px of the grid, 0.6 px of a 1024 crop) is dropped
MAX_SHIFT = 0.06     # largest displacement (a head turn of the embedded model moves ~2-4 %)
CHANGE_SIGMA = 0.012  # smoothing of |after - before| before thresholding
GROW = 0.03          # dilation of the region where the edit acts
FEATHER = 0.02       # its feather
# Largest displacement gradient: |dflow/dx| < 1 keeps the warp fold-free; 0.35 keeps eyes and
# text from bending (a local stretch of at most 35 %). Inside the face, following the
# generator's landmarks may stretch up to FOLLOW_MAX_STRAIN: a smile=+3 moves the mouth corners
# of the embedded model 5-12 px (of 256) out and up over a 60 px mouth, and at 0.35 much of
# that was smoothed away (23 dev photos, before the support check: mouth width kept 71 % at
# 0.35, 80 % at 0.5).
MAX_STRAIN = 0.35
FOLLOW_MAX_STRAIN = 0.5
# Change (0..255 grey levels, smoothed) at which the generator is fully "changed" there;
# below CHANGE_FLOOR it counts as unchanged (the generator's own numerical noise).
CHANGE_FULL = 6.0
CHANGE_FLOOR = 0.5
# The remainder (what the warp does not explain) is low-passed at FINE_SIGMA (~0.4 px of a
# 64 px generator: teeth, lips and creases keep their shape) where the optical flow saw little
# texture move, and at REMAINDER_SIGMA (about 2 generator pixels) where it saw more than
# COARSE_FROM: there (a head turn) a sharp remainder is mostly the edges the flow
# mis-registered, and pasted smeared eyes and cheeks (pose +3 on 000096, 000058). The motion
# that follows the landmarks does not count here: a smile moves its mouth corners, and its
# teeth must stay sharp. (0.004 / 0.016 scored the same on the dev photos and smeared more.)
FINE_SIGMA = 0.006
REMAINDER_SIGMA = 0.03
COARSE_FROM = 0.008
# Except in the mouth (the generator's lips' hull before and after the edit, grown by
# MOUTH_GROW): there the optical flow does see texture move under a smile, but the remainder
# is the teeth and the mouth's opening, which a remainder blurred at two generator pixels
# lost (12 dev photos, smile=+3: logit kept 56 -> 60 % median, 64 -> 69 % of means; mouth
# width for smile=-3 45 -> 52 %; identity distance the same). Only as far as the face as a
# whole stays still (median optical flow over the face mask under COARSE_FROM): under a
# turn the sharp mouth remainder pasted a second, dark mouth corner (pose=+3 on 000814, 000004).
MOUTH_SHARP = True
MOUTH_GROW = 0.02
# The remainder is scaled by face**FACE_POWER: it keeps a head turn's remainder off the jaw
# and ears (a dark haze there).
FACE_POWER = 4
# The generator's edits drag along a tone change over the whole face (smile=+3 darkened the
# face by 11 L* on average, up to 23, on the 9 eval photos): a cast, not the edit. The part of
# the remainder that is smooth over this scale (fraction of the grid side; the face is about
# half of it, so this is the face-wide tone and its slow gradient) is taken out. At 0.08 it
# also took the local shading a smile or an age edit brings (cheeks, the mouth's shadow): 23
# dev photos, smile=+3 logit kept 47 % at 0.08, 54 % at 0.3; the face's mean L* moves 2-3.
CAST_SIGMA = 0.3
# Of the local remainder, luminance (teeth, creases, shadows) is the edit; its hue shifts are
# mostly the 64 px generator's colour noise: green-grey blotches by the eyes and chin with age,
# red ones by the mouth, tints on a hat brim. That noise lives at the generator's pixel scale,
# so the chroma is low-passed at CHROMA_SIGMA (two generator pixels) and only CHROMA_KEEP of it
# kept; a change of colour over a larger area (lips that redden, hair that greys) still passes
# at that share. On 12 held-out photos 0.3 cost age=+3 0.2 of 4.3 years and smile=+3 0.03
# logit, and took the blotches out of the grid.
CHROMA_KEEP = 0.3
CHROMA_SIGMA = 0.03
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601 weights
# Near the face's edge (within REST_INSET of the side inside the paste mask's full-weight
# region; the landmark mask grows the hull by ~0.07, so this ends ~2 % inside the jaw line) a
# remainder where the flow is large is the moved jaw, cheek or ear the flow did not register:
# pasted, it was a ghost outline beside the face (pose +3 on 000016, 000096). It is dropped
# there; where little moves (a smile's cheeks, age's jaw shading) it stays. On 12 held-out
# photos: ghosts gone, smile=+3 -0.06 logit, age=+3 -0.1 years.
REST_INSET = 0.09
# The face's outline band (beyond TONE_INSET of the side inside the paste mask's full-weight
# region, i.e. from a few px inside the landmarks' hull outwards, feathered over TONE_FEATHER)
# keeps only TONE_KEEP of the remainder, whatever the flow. There the generator's change is
# the hair, neck and background beside the face (smile=+3 lightens them by ~5 L* while the
# face darkens by ~6), and the cast removal adds the face's darkening back on top: a band
# 4-8 L* lighter than the photo all round the face, on dark hair a grey haze, the "dark ring"
# along the jaw and hairline (000096). Measured on 12 dev photos (the transfer harness, smile
# with --keep gender): dropping it all (TONE_KEEP 0) takes the haze away but the smile scorer
# reads it, +2.73 -> +2.45 logit, with mouth width and identity distance about unchanged;
# half of it: +2.59, smile=-3 -2.00 -> -1.91, mouth width +10.2 -> +9.6 % and -9.5 -> -9.7 %.
# Half is kept: the haze at half strength. (An inset of 0.03 scored the same, but dlib's
# mouth width on the astronaut under smile=+-3 read 0.30 of the generator's change, 0.42 here.)
TONE_INSET = 0.05
TONE_FEATHER = 0.02
TONE_KEEP = 0.5
# Flow (grid px) at which a pixel counts as moved for the paste mask.
MOVE_FULL = 0.5
# The landmarks whose motion the flow is made to follow: nose, eyes and the lips' outline
# (dlib's 27-59). Not the jaw line (a silhouette, which the optical flow already follows on a
# turn, and which dlib places poorly on a blurred generator face: a smile "moved" it by up to
# 9 px), nor the brows (their blurred generator version bent the photo's brow on a turn,
# 000058), nor the inner lips (a mouth that opens is a tear no warp can make: 14 px apart,
# they folded the field; the teeth come with the remainder).
FOLLOWED = range(27, 60)
# Landmark corrections and the photo-to-generator registration act on the landmarks' hull
# grown by LM_GROW and fade over LM_FEATHER (fractions of the grid side): beyond it, hair and
# background follow the optical flow alone.
LM_GROW = 0.03
LM_FEATHER = 0.03
# The generator's landmarks count as the photo's face when their median distance to the
# photo's is at most this share of the distance between the eyes (32 inverted photos: 0.03-0.14).
MAX_MISFIT = 0.35
# dlib reads a badly inverted, blurred mouth differently before and after an edit that does not
# move it (age=+3 "moved" the mouth corners of 000514 and astronaut 5-8 px: followed, the
# photo's open smile became a stretched grimace, and dlib's identity distance rose to 0.45 on
# a third of the dev photos). So the landmark correction is kept only where it explains the
# generator's change: where warping G(w) by flow + correction reproduces G(w + edit) better
# than the flow alone, by SUPPORT_GAIN of the flow's error plus SUPPORT_FLOOR grey levels for
# full weight (errors smoothed at SUPPORT_SIGMA of the side, about 1.5 generator pixels).
# Dev photos: identity distance under 0.45 on all of them for smile, age and pose, with mouth
# width kept 58 % for smile=+3 (80 % unchecked, 29 % with the flow alone) and yaw 72 % for
# pose=+3 (86 %, 65 %).
SUPPORT_SIGMA = 0.024
SUPPORT_GAIN = 0.25
SUPPORT_FLOOR = 0.25
# A head turn: DIS shifts the whole 64 px face sideways (by ~5 of 256 px on the dev photos)
# where dlib sees the nose and eyes move ~2-3 px and the jaw line less: a turn is the inner
# face moving against the outline, and the flow loses it (pose=+3 kept 56 % of the generator's
# yaw, median of 12 dev photos). So when the face as a whole moves (median optical flow over
# the face over TURN_FROM x COARSE_FROM, full weight from TURN_FULL x; the dev photos read
# 1.4-4.2 under pose=+3, 0.3-0.9 under smile=+-3 and age=+3), a spline through the motion of
# the jaw line, nose and eyes (TURN_LANDMARKS; not the brows, not the mouth, whose blurred
# reading is jitter), smoothed by TURN_SMOOTH, is followed before the support check, and only
# what it leaves is checked. Dev photos, pose=+3: yaw kept 56 -> 71 % (median; 65 -> 84 % of
# means), identity distance 0.24 -> 0.25, none over 0.45. Tried and dropped: the nose and eyes
# alone, stiff (TURN_SMOOTH 1000: 68 %, but it squeezed a badly inverted face); that spline on
# smile too, whatever the motion (identity over 0.45 on 2 of 12).
# The spline was then held to FOLLOW_MAX_STRAIN over the whole grid, and its steepest place
# was its fade beyond the jaw (LM_FEATHER, ~8 px, where the jaw moves 11-22 px against the
# flow): one hot spot there scaled the whole turn down to 25-60 % (7 dev photos). So a turn's
# spline fades over TURN_FEATHER (the hair beside the face goes along, as a turning head's
# does) and may stretch up to TURN_MAX_STRAIN (in proportion to ``turn``). And under a turn the
# remainder (what the warp leaves) is dropped, down to TURN_REST of it at a full turn: there it
# is the generator's hair and shading that the warp mis-registered, not a shape: it pasted a
# brown smear over 000004's eye (dlib lost the face), a darker, "tanned" face (000494) and
# deeper folds. 23 dev photos, pose=+3: photo yaw +6.67 -> +7.74 degrees of the generator's
# +8.95 (kept 77 -> 84 % median, 79 -> 91 % of means), identity distance 0.268 -> 0.249 and
# under 0.45 on all (one over before); the remainder alone: 0.268 -> 0.224, yaw the same;
# pose=-3: -6.19 -> -7.21 of -9.8 (59 -> 69 % of means). The spline is also faded out at the
# grid's edge (edge_ramp): the wider fade reached it.
# Tried: 0.7 strain with the narrow fade (84 % of means), the wide fade at 0.5 or 0.6 strain
# (77-84 %), a smoother spline (TURN_SMOOTH 1 or 3: no gain), MAX_SHIFT 0.09 (no gain).
TURN_FROM = 1.0
TURN_FULL = 2.0
TURN_SMOOTH = 10.0
TURN_LANDMARKS = (*range(0, 17), *range(27, 48))
TURN_REST = 0.0
TURN_MAX_STRAIN = 0.7
TURN_FEATHER = 0.08
# Hair. The weak generator's age edit mostly recolours the hair (greyer, ash, silver; or
# auburn for younger), beside and above the face, where the face paste does not reach. Within
# the head (the face mask grown by HAIR_REACH of the side, not below the mouth) and outside
# the face, the generator's colour change is pasted low-passed at HAIR_SIGMA (two generator
# pixels), chroma included, less the change it made to the background (a cast, not the hair),
# only where the photo there looks like the generator's face before the edit (low-passed RGB
# distance under HAIR_MATCH, fading from half of it: where the inversion drew hair over the
# photo's background, the background keeps its colour), and not where the flow moves pixels
# (a turn's moved hair would paste as a smear).
# Of the hair's brightness change, the share the face got too (same sign) is taken out as
# the edit's tone cast; its hue change stays (12 dev photos, the age branch's direction:
# hair greyness, L* - 2 C*, kept 61 % with this, 64 % without, 44 % taking the shared hue out
# too). Only the edits in HAIR_EDITS carry it: the embedded smile direction also darkens and
# saturates hair (generator -14 L* - 2 C* units), which is not a smile.
HAIR_REACH = 0.16
HAIR_SIGMA = 0.03
HAIR_MATCH = 60.0
HAIR_EDITS = ("age",)


@dataclass(frozen=True)
class WarpField:
    """What an edit does, on a square grid of side N over the aligned crop.

    flow: (N, N, 2) float32 backward displacement in grid pixels: the edited face at x shows
    what the original showed at x + flow(x). delta: (N, N, 3) float32 colour change left after
    the warp, in 0..255 units. act: (N, N) float32 in 0..1, where the edit acts (0: untouched).
    """

    flow: np.ndarray
    delta: np.ndarray
    act: np.ndarray
    reach: np.ndarray | None = None  # (N, N) 0..1: paste weight beyond the face mask (hair)

    @property
    def size(self) -> int:
        return self.flow.shape[0]

    def is_identity(self) -> bool:
        return not self.act.any()


def _gauss(img: np.ndarray, sigma: float, border=None) -> np.ndarray:
    import cv2

    if sigma <= 0:
        return img
    k = int(2 * np.ceil(3 * sigma) + 1)
    return cv2.GaussianBlur(img, (k, k), sigma,
                            borderType=cv2.BORDER_REFLECT if border is None else border)


def generated_to_grid(img, size: int = FLOW_SIZE) -> np.ndarray:
    """Generator image (3, R, R) tensor/array in [-1, 1] -> (size, size, 3) float32 in 0..255
    (bicubic, not clipped: the remainder must see what the generator made)."""
    import cv2

    a = img.detach().cpu().float().numpy() if hasattr(img, "detach") else np.asarray(img, np.float32)
    if a.ndim != 3 or a.shape[0] != 3:
        raise UsageError(f"expected a (3, R, R) generator image, got shape {a.shape}")
    a = (np.transpose(a, (1, 2, 0)) + 1.0) * 127.5
    if a.shape[0] != size:
        a = cv2.resize(a, (size, size), interpolation=cv2.INTER_CUBIC)
    return a.astype(np.float32)


def estimate_flow(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Dense backward flow (N, N, 2): after(x) ~ before(x + flow(x)). Images (N, N, 3) in 0..255.

    OpenCV's DIS on grey levels (fast, handles the smooth upsampled generator faces well)."""
    import cv2

    def grey(a):
        g = cv2.cvtColor(np.clip(a, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        return g

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(grey(after), grey(before), None).astype(np.float32)


def change_weight(before: np.ndarray, after: np.ndarray, sigma: float) -> np.ndarray:
    """(N, N) in 0..1: how much the generator changed each pixel (smoothed mean |after-before|,
    0 below CHANGE_FLOOR grey levels, 1 from CHANGE_FULL). Exactly 0 where nothing changed."""
    diff = np.abs(after - before).mean(axis=2).astype(np.float32)
    diff = _gauss(diff, sigma)
    return np.clip((diff - CHANGE_FLOOR) / (CHANGE_FULL - CHANGE_FLOOR), 0.0, 1.0)


def regularise_flow(flow: np.ndarray, confidence: np.ndarray, *, sigma: float, max_shift: float,
                    max_strain: float = MAX_STRAIN, min_shift: float = 0.0) -> np.ndarray:
    """Smooth, bounded flow from a raw one and a per-pixel confidence (0..1).

    Normalised convolution, blur(c * flow) / blur(c), follows the confident pixels and fills
    small gaps; an envelope (a wider blur of c) fades it to exactly 0 away from them, so it is
    not extrapolated into hair or background far from the face. The length is capped at
    ``max_shift``; where the field's largest gradient exceeds ``max_strain`` it is smoothed
    further (a few passes) and at last scaled down: no folds, no bent eyes."""
    c = confidence.astype(np.float32)
    num = _gauss(flow * c[:, :, None], sigma, border=0)
    den = _gauss(c, sigma, border=0)
    out = num / np.maximum(den, 0.05)[:, :, None]
    envelope = np.clip(_gauss(c, 3 * sigma, border=0) / 0.3, 0.0, 1.0)
    out *= envelope[:, :, None]
    out = bound_flow(out, max_shift=max_shift, max_strain=max_strain, sigma=sigma)
    out[envelope == 0] = 0.0  # blurring must not leak motion where nothing is confident
    return shrink_flow(out, min_shift)


def strain(flow: np.ndarray) -> float:
    """Largest displacement gradient of a flow (N, N, 2): |d flow / d x| over both components
    and axes (1 = the warp folds)."""
    return max(float(np.abs(np.gradient(flow[:, :, k], axis=ax)).max())
               for k in range(2) for ax in range(2))


def bound_flow(flow: np.ndarray, *, max_shift: float, max_strain: float = MAX_STRAIN,
               sigma: float) -> np.ndarray:
    """``flow`` with its length capped at ``max_shift`` and, where its largest gradient
    exceeds ``max_strain``, smoothed further (a few passes at 2 ``sigma``) and at last scaled
    down: no folds, no bent eyes."""
    out = flow.astype(np.float32, copy=True)
    mag = np.hypot(out[:, :, 0], out[:, :, 1])
    over = mag > max_shift
    if over.any():
        out[over] *= (max_shift / mag[over])[:, None]
    for _ in range(4):
        if strain(out) <= max_strain:
            break
        out = _gauss(out, 2 * sigma, border=0)
    st = strain(out)
    if st > max_strain:
        out *= max_strain / st
    return out


def shrink_flow(flow: np.ndarray, min_shift: float) -> np.ndarray:
    """Motion below ``min_shift`` dropped (shrunk, so the field stays continuous): a sub-pixel
    resampling would only blur the photo where the generator barely moved."""
    if min_shift <= 0:
        return flow.astype(np.float32)
    mag = np.hypot(flow[:, :, 0], flow[:, :, 1])
    return (flow * (np.maximum(mag - min_shift, 0.0) / np.maximum(mag, 1e-12))[:, :, None]).astype(np.float32)


def warp_image(img: np.ndarray, flow: np.ndarray, interpolation=None) -> np.ndarray:
    """img(x + flow(x)) by cv2.remap (border replicated); flow in img's pixels."""
    import cv2

    n_y, n_x = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(n_x, dtype=np.float32), np.arange(n_y, dtype=np.float32))
    return cv2.remap(img, gx + flow[:, :, 0], gy + flow[:, :, 1],
                     cv2.INTER_CUBIC if interpolation is None else interpolation,
                     borderMode=cv2.BORDER_REPLICATE)


def edit_field(before, after, *, face: np.ndarray | None = None, size: int = FLOW_SIZE,
               landmarks: tuple | None = None,
               max_shift: float = MAX_SHIFT, max_strain: float = MAX_STRAIN,
               cast_sigma: float = CAST_SIGMA, chroma_keep: float = CHROMA_KEEP,
               chroma_sigma: float = CHROMA_SIGMA, hair: np.ndarray | None = None) -> WarpField:
    """The WarpField of an edit from the generator's before/after images ((3, R, R), [-1, 1]).

    face: optional (size, size) weights (e.g. the landmark paste mask on this grid): the
    flow is trusted only there. landmarks: optional (before, after) 68 landmarks of the two
    generator images on this grid: the flow is corrected to move them as they moved
    (:func:`follow_landmarks`), before the remainder is taken. An edit that changes nothing
    gives an all-zero field. hair: optional (size, size) weights of the head around the face
    (:func:`hair_weight`): there the generator's low-passed colour change is kept too
    (:func:`hair_change`), and the paste may reach it (``WarpField.reach``)."""
    b, a = generated_to_grid(before, size), generated_to_grid(after, size)
    if face is not None:
        face = np.asarray(face, np.float32)
        if face.shape != (size, size):
            raise UsageError(f"face weights must be {size}x{size}, got {face.shape}")
    changed = change_weight(b, a, CHANGE_SIGMA * size)
    if not changed.any():
        z = np.zeros((size, size), np.float32)
        return WarpField(np.zeros((size, size, 2), np.float32), np.zeros((size, size, 3), np.float32), z)
    conf = changed if face is None else changed * face
    flow = regularise_flow(estimate_flow(b, a), conf, sigma=SMOOTH * size,
                           max_shift=max_shift * size, max_strain=max_strain,
                           min_shift=MIN_SHIFT * size)
    texture_mag = np.hypot(flow[:, :, 0], flow[:, :, 1])  # what the optical flow saw move
    # how much the face as a whole moves (1 = COARSE_FROM): a turn, or a still face
    core = (face if face is not None else conf) > 0.5
    motion = float(np.median(texture_mag[core])) / (COARSE_FROM * size) if core.any() else 0.0
    turn = 0.0
    if landmarks is not None:
        turn = float(np.clip((motion - TURN_FROM) / (TURN_FULL - TURN_FROM), 0.0, 1.0))
        flow = follow_landmarks(flow, *landmarks, changed, max_shift=max_shift * size,
                                max_strain=max(max_strain, FOLLOW_MAX_STRAIN), sigma=SMOOTH * size,
                                images=(b, a), turn=turn)
    # What the warp does not explain, where the generator changed: sharp where the optical
    # flow saw little texture move (teeth, lips, creases), at the generator's pixel scale where
    # it saw more (a remainder there is more likely a mis-registered edge, a ghost), only inside
    # the face and, near its edge, only where little moves (remainder_weight), less the
    # face-wide tone cast, with its hue low-passed and damped (the generator's colour noise).
    rest = a - warp_image(b, flow, None)
    mag = np.hypot(flow[:, :, 0], flow[:, :, 1])
    coarse = _gauss(np.clip(texture_mag / (COARSE_FROM * size), 0.0, 1.0), SMOOTH * size)[:, :, None]
    if landmarks is not None and MOUTH_SHARP:
        # not when the whole face moves (a turn carries the mouth along: its sharp remainder
        # is then the mis-registered lips, a second mouth beside the first)
        still = 1.0 - min(motion, 1.0)
        coarse = coarse * (1.0 - still * mouth_weight(*landmarks, size))[:, :, None]
    rest = (_gauss(rest, FINE_SIGMA * size) * (1 - coarse)
            + _gauss(rest, REMAINDER_SIGMA * size) * coarse) * changed[:, :, None]
    if face is not None:
        rest *= remainder_weight(face, coarse[:, :, 0], REST_INSET * size)[:, :, None]
    if cast_sigma > 0:
        rest = remove_cast(rest, conf, cast_sigma * size)
    rest = damp_chroma(rest, chroma_keep, chroma_sigma * size)
    if face is not None and TONE_INSET > 0:
        rest = outline_tone(rest, face, TONE_INSET * size, TONE_FEATHER * size, TONE_KEEP)
    # under a turn, the remainder is mostly mis-registered hair and shading (TURN_REST)
    rest *= 1.0 - turn * (1.0 - TURN_REST)
    moved = np.clip(mag / MOVE_FULL, 0.0, 1.0)
    act = act_mask(np.maximum(moved, changed), grow=GROW * size, feather=FEATHER * size)
    reach = None
    if hair is not None and face is not None and np.any(hair):
        # outside the face (whose remainder is the face's own), where the flow barely moves
        w = hair * changed * (1.0 - coarse[:, :, 0]) * (1.0 - face ** FACE_POWER)
        rest = rest + hair_change(b, a, face, HAIR_SIGMA * size) * w[:, :, None]
        reach = (np.asarray(hair, np.float32) > 0).astype(np.float32)
        reach = _gauss(reach, FEATHER * size)
    return WarpField(flow, rest.astype(np.float32), act, reach)


def sample(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples (N, C) of an (H, W, C) array at ``points`` (N, 2; x, y in px)."""
    import cv2

    p = np.asarray(points, np.float32).reshape(-1, 1, 2)
    return cv2.remap(field, p[:, :, 0], p[:, :, 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).reshape(len(p), -1)


def follow_landmarks(flow: np.ndarray, lm_before: np.ndarray, lm_after: np.ndarray,
                     changed: np.ndarray, *, max_shift: float, max_strain: float,
                     sigma: float, images: tuple | None = None, turn: float = 0.0) -> np.ndarray:
    """``flow`` corrected so that the generator's landmarks move as dlib saw them move.

    At each FOLLOWED landmark of the edited face the backward flow should point to the same
    landmark before the edit; what the optical flow misses of that (weighted by how much the
    generator changed there, so jitter where nothing changed adds nothing) is spread over the
    face by a thin-plate spline, faded out beyond the landmarks' hull. ``images``: the
    generator's (before, after) on this grid; where given, the correction is kept only where
    it explains the generator's change better than the flow alone (:func:`support`): dlib
    misreads a blurred, badly inverted mouth, and its "motion" there is noise. Where the sum
    would stretch more than ``max_strain`` the correction alone is smoothed (``sigma`` / 2, a
    few passes) and at last scaled down; the flow's length stays under ``max_shift``.
    ``turn`` (0..1): the share of a spline through the motion of the jaw line, nose and eyes
    (TURN_LANDMARKS, TURN_SMOOTH, faded over TURN_FEATHER) that is followed before, and
    without, the support check: a head turn, whose re-shaded nose the check would drop. Under
    a turn the bound on the stretch rises towards TURN_MAX_STRAIN in proportion to ``turn``."""
    from .landmarks import hull_weight, tps_field

    n = flow.shape[0]
    idx = list(FOLLOWED)
    lb, la = np.asarray(lm_before, np.float64)[idx], np.asarray(lm_after, np.float64)[idx]
    want = (lb - la) * sample(changed[:, :, None], la)
    miss = want - sample(flow, la)
    fade = hull_weight(la, n, grow=LM_GROW * n, feather=LM_FEATHER * n)
    base = flow
    if turn > 0:
        t = list(TURN_LANDMARKS)
        pb, pa = np.asarray(lm_before, np.float64)[t], np.asarray(lm_after, np.float64)[t]
        tmiss = (pb - pa) * sample(changed[:, :, None], pa) - sample(flow, pa)
        # faded over TURN_FEATHER beyond the face, and to 0 at the grid's edge (the crop's
        # border: a photo pixel moved there would be pasted beside the unmoved one)
        tfade = hull_weight(pa, n, grow=LM_GROW * n, feather=TURN_FEATHER * n) \
            * edge_ramp(n, TURN_FEATHER * n)
        spline = tps_field(pa, tmiss, n, smooth=TURN_SMOOTH) * (turn * tfade)[:, :, None]
        max_strain = max_strain + turn * max(TURN_MAX_STRAIN - max_strain, 0.0)
        base = flow + _fit_strain(flow, spline, max_strain, sigma)
        miss = want - sample(base, la)
    corr = _fit_strain(base, tps_field(la, miss, n) * fade[:, :, None], max_strain, sigma)
    if images is not None:
        corr = _fit_strain(base, corr * support(*images, base, corr, n)[:, :, None], max_strain, sigma)
    out = base + corr
    mag = np.hypot(out[:, :, 0], out[:, :, 1])
    over = mag > max_shift
    if over.any():
        out[over] *= (max_shift / mag[over])[:, None]
    return out.astype(np.float32)


def edge_ramp(size: int, width: float) -> np.ndarray:
    """(size, size) float32: 0 on the grid's border, rising linearly to 1 ``width`` px in."""
    d = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    r = np.clip(d / max(width, 1e-6), 0.0, 1.0)
    return np.minimum(r[:, None], r[None, :])


def _fit_strain(flow: np.ndarray, corr: np.ndarray, max_strain: float, sigma: float) -> np.ndarray:
    """``corr`` smoothed (a few passes at ``sigma`` / 2) and at last scaled so that
    flow + corr stretches at most ``max_strain``."""
    for _ in range(4):
        if strain(flow + corr) <= max_strain:
            return corr
        corr = _gauss(corr, sigma / 2, border=0)
    if strain(flow + corr) <= max_strain:
        return corr
    lo, hi = 0.0, 1.0  # the share of the correction that keeps the sum under the bound
    for _ in range(8):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if strain(flow + mid * corr) <= max_strain else (lo, mid)
    return corr * lo


def support(before: np.ndarray, after: np.ndarray, flow: np.ndarray, corr: np.ndarray,
            size: int) -> np.ndarray:
    """(N, N) in 0..1: where moving the generator's before image by flow + corr reproduces
    its after image better than the flow alone. 1 where the corrected warp's error (smoothed
    mean |after - warp(before)|, grey levels) is lower by SUPPORT_GAIN of the flow's error
    plus SUPPORT_FLOOR; 0 where it is no lower."""
    s = SUPPORT_SIGMA * size
    e_flow = _gauss(np.abs(after - warp_image(before, flow)).mean(axis=2), s)
    e_corr = _gauss(np.abs(after - warp_image(before, flow + corr)).mean(axis=2), s)
    w = np.clip((e_flow - e_corr) / (SUPPORT_GAIN * e_flow + SUPPORT_FLOOR), 0.0, 1.0)
    return _gauss(w.astype(np.float32), s)


def register_field(field: WarpField, offset: np.ndarray) -> WarpField:
    """The field moved onto the photo's own features: ``offset`` (N, N, 2) says where each
    photo pixel lies on the generator's face (x -> x + offset(x)); the flow, the remainder
    and the act mask there are what this photo pixel gets."""
    import cv2

    if not np.any(offset):
        return field
    n = field.size
    gx, gy = np.meshgrid(np.arange(n, dtype=np.float32), np.arange(n, dtype=np.float32))
    mx, my = gx + offset[:, :, 0], gy + offset[:, :, 1]

    def at(x):
        return cv2.remap(x, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    act = at(field.act)
    act[act < 1.0 / 512] = 0.0
    return WarpField(at(field.flow), at(field.delta), act, None if field.reach is None else at(field.reach))


def alignment_offset(photo_landmarks: np.ndarray, generator_landmarks: np.ndarray,
                     size: int) -> np.ndarray | None:
    """(size, size, 2) offset from the photo's face to the generator's (x on the photo is
    x + offset(x) on the generator's image), from their 68 landmarks on this grid: a
    thin-plate spline, faded to 0 beyond the landmarks' hull. None when the two faces do not
    match (median landmark distance over MAX_MISFIT of the eyes' distance): the predictor did
    not find the photo's face on the generator's image, and nothing should be moved by it."""
    from .landmarks import hull_weight, tps_field

    p, g = np.asarray(photo_landmarks, np.float64), np.asarray(generator_landmarks, np.float64)
    eyes = np.linalg.norm(p[42:48].mean(0) - p[36:42].mean(0))
    if not np.median(np.linalg.norm(g - p, axis=1)) <= MAX_MISFIT * eyes:
        return None
    fade = hull_weight(p, size, grow=LM_GROW * size, feather=LM_FEATHER * size)
    return tps_field(p, g - p, size) * fade[:, :, None]


def recolours_hair(edits) -> bool:
    """Whether ``edits`` (attribute -> amount) include one whose hair colour change the
    transfer carries (HAIR_EDITS)."""
    return any(name in HAIR_EDITS and float(amount) != 0 for name, amount in dict(edits).items())


def face_field(before, after, *, face: np.ndarray, photo_landmarks: np.ndarray | None,
               size: int = FLOW_SIZE, photo: np.ndarray | None = None,
               hair: bool = True) -> WarpField:
    """The default transfer's field for one face: :func:`edit_field` with the generator's own
    landmarks followed, registered onto the photo's landmarks (``photo_landmarks``: its 68
    points on this grid). Without photo landmarks, or when the generator's face does not
    match the photo's, the optical flow alone. ``hair``: carry the generator's hair colour
    change around the face too (:func:`hair_weight`; ``photo``: the photo's aligned crop, any
    size, so that it reaches only hair the inversion reproduced)."""
    from ..align.ffhq import FACE_BOX_IN_FFHQ
    from .landmarks import predict_landmarks

    if photo_landmarks is None:
        return edit_field(before, after, face=face, size=size)
    box = np.asarray(FACE_BOX_IN_FFHQ) * size
    grid = lambda img: np.clip(np.rint(generated_to_grid(img, size)), 0, 255).astype(np.uint8)  # noqa: E731
    lb = predict_landmarks(grid(before), box)
    offset = alignment_offset(photo_landmarks, lb, size)
    if offset is None:
        return edit_field(before, after, face=face, size=size)
    la = predict_landmarks(grid(after), box)
    head = hair_weight(face, generated_to_grid(before, size), photo, size) if hair else None
    field = edit_field(before, after, face=face, size=size, landmarks=(lb, la), hair=head)
    return register_field(field, offset)


def mouth_weight(lm_before: np.ndarray, lm_after: np.ndarray, size: int) -> np.ndarray:
    """(N, N) 0..1: the generator's mouth, before or after the edit: the hull of the lips'
    landmarks (48-67) of either, grown by MOUTH_GROW and feathered as much."""
    from .landmarks import hull_weight

    grow = MOUTH_GROW * size
    return np.maximum(hull_weight(np.asarray(lm_before)[48:68], size, grow=grow, feather=grow),
                      hull_weight(np.asarray(lm_after)[48:68], size, grow=grow, feather=grow))


def head_region(face: np.ndarray, reach: float, feather: float) -> np.ndarray:
    """(N, N) 0..1: the head around the face mask ``face``: the mask grown by ``reach`` px,
    not below the mouth (70 % of the way down the mask), feathered. Hair, not the neck."""
    import cv2

    core = (np.asarray(face) > 0.5).astype(np.uint8)
    if not core.any():
        return np.zeros(core.shape, np.float32)
    r = int(round(reach))
    grown = cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    rows = np.flatnonzero(core.any(axis=1))
    grown[int(rows[0] + 0.7 * (rows[-1] - rows[0])):] = 0
    out = _gauss(grown.astype(np.float32), feather, border=cv2.BORDER_CONSTANT)
    out[out < 1.0 / 512] = 0.0
    return out


def hair_weight(face: np.ndarray, before: np.ndarray, photo: np.ndarray | None,
                size: int) -> np.ndarray:
    """(N, N) 0..1: where the generator's hair colour change may reach the photo: the head
    region (:func:`head_region`), and, given the photo's crop on this grid, only where it looks
    like the generator's ``before`` image (low-passed RGB distance under HAIR_MATCH, full
    weight under half of it): an inversion that drew hair over the photo's background must not
    recolour the background."""
    w = head_region(face, HAIR_REACH * size, FEATHER * size)
    if photo is not None:
        import cv2

        p = np.asarray(photo, np.float32)
        if p.shape[0] != size:
            p = cv2.resize(p, (size, size), interpolation=cv2.INTER_AREA)
        d = np.linalg.norm(_gauss(p - before, HAIR_SIGMA * size), axis=2)
        w = w * np.clip((HAIR_MATCH - d) / (0.5 * HAIR_MATCH), 0.0, 1.0)
    return w.astype(np.float32)


def hair_change(before: np.ndarray, after: np.ndarray, face: np.ndarray, sigma: float) -> np.ndarray:
    """The generator's colour change low-passed at ``sigma`` px, less what it did to the
    background (the mean change far from the face: a tone cast of the whole image, not the
    hair's own colour)."""
    import cv2

    lp = _gauss(after - before, sigma)
    core = (np.asarray(face) > 0.5).astype(np.uint8)
    r = int(round(2 * HAIR_REACH * face.shape[0]))
    far = cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) == 0
    if far.mean() > 0.02:
        lp = lp - lp[far].mean(axis=0)
    if core.any():
        # the share of the hair's brightness change that the face got too is the edit's
        # tone cast; its hue change is the hair's
        y = lp @ _LUMA
        yf = float(lp[core.astype(bool)].mean(axis=0) @ _LUMA)
        shared = np.where(y * yf > 0, np.sign(y) * np.minimum(np.abs(y), abs(yf)), 0.0)
        lp = lp - shared[:, :, None]
    return lp.astype(np.float32)


def remainder_weight(face: np.ndarray, coarse: np.ndarray, inset: float) -> np.ndarray:
    """(N, N) weight of the remainder: face**FACE_POWER, and near the face's edge (an ``inset``
    px band inside face's full-weight region) only where the flow is small (``coarse`` 0..1:
    1 where it is large)."""
    inner = (inner_weight(face, inset, 0.2 * inset) if round(inset) > 0
             else (face >= 0.99).astype(np.float32))
    return (face ** FACE_POWER) * (inner + (1.0 - inner) * (1.0 - coarse))


def inner_weight(face: np.ndarray, inset: float, feather: float) -> np.ndarray:
    """(N, N), 0..1 up to float rounding (not clipped): the face mask's full-weight region
    eroded by ``inset`` px and feathered over ``feather`` px (0 outside its soft edge)."""
    import cv2

    core = (np.asarray(face) >= 0.99).astype(np.uint8)
    r = int(round(inset))
    if r > 0:
        core = cv2.erode(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return _gauss(core.astype(np.float32), feather, border=0)


def outline_tone(rest: np.ndarray, face: np.ndarray, inset: float, feather: float,
                 keep: float) -> np.ndarray:
    """The remainder ``rest`` (N, N, 3) kept inside the face (:func:`inner_weight`) and, in the
    outline band outside it, only its share ``keep``."""
    t = keep + (1.0 - keep) * np.clip(inner_weight(face, inset, feather), 0.0, 1.0)
    return (rest * t[:, :, None]).astype(np.float32)


def damp_chroma(rest: np.ndarray, keep: float, sigma: float = 0.0) -> np.ndarray:
    """A colour change (N, N, 3) with its luminance kept and its chroma low-passed at
    ``sigma`` px and scaled by ``keep``."""
    if keep >= 1 and sigma <= 0:
        return rest
    y = (rest @ _LUMA)[:, :, None]
    return (y + keep * _gauss(rest - y, sigma)).astype(np.float32)


def remove_cast(rest: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """``rest`` minus its smooth part: the weighted local mean of the colour change at scale
    ``sigma`` (normalised convolution over ``weight``, so the face's edge does not pull the
    mean towards 0), scaled by ``weight`` so nothing is added where the generator did not act."""
    w = np.asarray(weight, np.float32)
    if not w.any():
        return rest
    num = _gauss(rest * w[:, :, None], sigma, border=0)
    den = _gauss(w, sigma, border=0)
    smooth = num / np.maximum(den, 1e-3)[:, :, None]
    return (rest - smooth * np.minimum(w / 0.5, 1.0)[:, :, None]).astype(np.float32)


def act_mask(weight: np.ndarray, *, grow: float, feather: float) -> np.ndarray:
    """Where the edit acts: ``weight`` (0..1) > 0.05, dilated by ``grow`` px and feathered
    (the soft edge lies outside the dilated region). Exactly 0 far from any change."""
    import cv2

    m = (weight > 0.05).astype(np.uint8)
    if not m.any():
        return np.zeros(weight.shape, np.float32)
    r = int(round(grow + 2.5 * feather))
    if r > 0:
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    out = _gauss(m.astype(np.float32), feather, border=cv2.BORDER_CONSTANT)
    out[out < 1.0 / 512] = 0.0
    return np.minimum(out, 1.0)


def field_at(field: WarpField, size: int) -> WarpField:
    """The field resampled to another grid side (flow vectors rescaled)."""
    import cv2

    if size == field.size:
        return field
    s = size / field.size
    rs = lambda x: cv2.resize(x, (size, size), interpolation=cv2.INTER_LINEAR)  # noqa: E731
    act = rs(field.act)
    act[act < 1.0 / 512] = 0.0
    return WarpField(rs(field.flow) * s, rs(field.delta), act, None if field.reach is None else rs(field.reach))


def apply_field(crop: np.ndarray, field: WarpField) -> np.ndarray:
    """The edited crop (S, S, 3) uint8: the photo crop warped by the field, plus the remainder,
    blended by ``act`` (crop pixels where act is 0 are returned unchanged)."""
    crop = np.asarray(crop)
    f = field_at(field, crop.shape[0])
    new = warp_image(crop.astype(np.float32), f.flow) + f.delta
    base = crop.astype(np.float32)
    out = base + (new - base) * f.act[:, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def paste_weight(mask_alpha: np.ndarray, field: WarpField) -> np.ndarray:
    """(N, N) paste weight on the field's grid: the face mask's alpha within where the edit
    acts, but full wherever the warp moves pixels. Blending a moved copy with the unmoved photo
    through a partial alpha shows both: a turned head's ear at the mask's soft edge got a
    second outline (000016, 000052 in the grid). Still exactly 0 where the edit does not act."""
    mag = np.hypot(field.flow[:, :, 0], field.flow[:, :, 1])
    moving = _gauss(np.clip(mag / MOVE_FULL, 0.0, 1.0), FEATHER * field.size)
    out = np.maximum(mask_alpha * field.act, np.minimum(moving, field.act))
    if field.reach is not None:  # the head's hair, where its colour change is pasted
        out = np.maximum(out, np.minimum(field.reach, field.act))
    return out.astype(np.float32)


def fade_at_border(disp: np.ndarray, gx: np.ndarray, gy: np.ndarray, shape) -> np.ndarray:
    """Photo displacements ``disp`` (H, W, 2) at photo pixels (gx, gy), faded where they come
    near the photo's own border: to 0 on it, and wherever a pixel lies closer to it than 3x
    its own displacement, to a third of that distance (a stretch of at most a third). A pixel
    moved there would be read from beyond the photo, and the border's mirror image pasted as
    streaks (a turn's hair at 001354's edge). Motion farther in is untouched."""
    if not disp.size:
        return disp
    h, w = shape
    edge = np.minimum(np.minimum(gx, w - 1 - gx), np.minimum(gy, h - 1 - gy))
    mag = np.hypot(disp[:, :, 0], disp[:, :, 1])
    keep = np.clip(edge / np.maximum(3.0 * mag, 1e-6), 0.0, 1.0)
    return (disp * keep[:, :, None]).astype(np.float32)


def paste_field(photo, aligned, field: WarpField, *, mask="landmarks", return_mask: bool = False):
    """Apply ``field`` to the photo around ``aligned`` in photo space: the photo's own pixels
    are resampled once (no crop round trip), so the face keeps the photo's sharpness.

    The paste weight is the usual face mask (``mask`` as in paste_back) times the field's act
    mask; wherever it is 0 the output equals the input bit for bit. Returns the new photo
    (numpy or Photo, as given), or (photo, alpha) with ``return_mask``."""
    import cv2

    from ..align.ffhq import quad_to_affine
    from .paste import crop_alpha, photo_pixels

    as_photo, rgb = photo_pixels(photo, aligned)
    n = field.size
    alpha_grid = paste_weight(crop_alpha(aligned, n, mask), field)
    h, w = rgb.shape[:2]
    full_alpha = np.zeros((h, w), np.float32) if return_mask else None
    out = rgb
    if alpha_grid.any():
        grid_to_photo = quad_to_affine(aligned.quad, n)
        photo_to_grid = np.linalg.inv(grid_to_photo)
        q = aligned.quad
        x0, y0 = max(int(np.floor(q[:, 0].min())) - 2, 0), max(int(np.floor(q[:, 1].min())) - 2, 0)
        x1, y1 = min(int(np.ceil(q[:, 0].max())) + 3, w), min(int(np.ceil(q[:, 1].max())) + 3, h)
        if x1 > x0 and y1 > y0:
            m = (photo_to_grid @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]]))[:2]
            roi = (x1 - x0, y1 - y0)
            inv = cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
            alpha = cv2.warpAffine(alpha_grid, m, roi, flags=inv, borderMode=cv2.BORDER_CONSTANT)
            alpha[alpha < 1.0 / 512] = 0.0
            np.minimum(alpha, 1.0, out=alpha)
            if full_alpha is not None:
                full_alpha[y0:y1, x0:x1] = alpha
            ys, xs = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
            if ys.size:
                by0, by1, bx0, bx1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
                mb = (photo_to_grid @ np.array([[1.0, 0, x0 + bx0], [0, 1.0, y0 + by0], [0, 0, 1.0]]))[:2]
                box = (bx1 - bx0, by1 - by0)
                flow = cv2.warpAffine(field.flow, mb, box, flags=inv, borderMode=cv2.BORDER_CONSTANT)
                delta = cv2.warpAffine(field.delta, mb, box, flags=inv, borderMode=cv2.BORDER_CONSTANT)
                # grid displacement -> photo displacement: the linear part of grid_to_photo
                lin = grid_to_photo[:2, :2].astype(np.float32)
                disp = flow @ lin.T
                gx, gy = np.meshgrid(np.arange(x0 + bx0, x0 + bx1, dtype=np.float32),
                                     np.arange(y0 + by0, y0 + by1, dtype=np.float32))
                disp = fade_at_border(disp, gx, gy, (h, w))
                # Lanczos: the photo's fine detail survives sub-pixel moves better than cubic
                moved = cv2.remap(rgb, gx + disp[:, :, 0], gy + disp[:, :, 1], cv2.INTER_LANCZOS4,
                                  borderMode=cv2.BORDER_REFLECT)
                a = alpha[by0:by1, bx0:bx1, None]
                sl = (slice(y0 + by0, y0 + by1), slice(x0 + bx0, x0 + bx1))
                base = rgb[sl].astype(np.float32)
                # where a == 0 this is base + 0 == base exactly
                blended = base + (moved.astype(np.float32) + delta - base) * a
                out = rgb.copy()
                out[sl] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    result = photo.with_rgb(out) if as_photo else out
    return (result, full_alpha) if return_mask else result
