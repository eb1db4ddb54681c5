"""Which detected faces the pipeline works on: ``largest`` (default), ``all`` or an index."""
from __future__ import annotations

from dataclasses import dataclass

from ..args import parse_policy  # noqa: F401 - the one parser; re-exported from here
from ..errors import NoFaceError
from .detect import Face

# Smallest FFHQ quad side (photo pixels) worth aligning: below it a 256 crop is mostly
# upsampling blur. The quad side is ~4x the inter-ocular distance.
DEFAULT_MIN_SIZE = 64


@dataclass(frozen=True)
class Skipped:
    """A detection left out, and why (one line, for logs and the CLI's JSON)."""

    face: Face
    index: int
    reason: str


def select_faces(faces: list[Face], policy: str | int = "largest", *,
                 min_size: float = DEFAULT_MIN_SIZE) -> tuple[list[Face], list[Skipped]]:
    """Apply the policy to ``faces`` (as returned by detect_faces, largest first).

    Rejected detections (accepted=False) and faces whose quad side is below ``min_size``
    are skipped with a reason; the policy is applied to what remains, and an index counts
    among those. Returns (kept, skipped); kept may be empty.
    """
    policy = parse_policy(policy)
    usable, skipped = [], []
    for i, face in enumerate(faces):
        if not face.accepted:
            skipped.append(Skipped(face, i, f"face {i} rejected as a non-face "
                                            f"(landmark quality {face.quality:.2f})"))
        elif face.size < min_size:
            skipped.append(Skipped(face, i, f"face {i} is too small: {face.size:.0f} px "
                                            f"(FFHQ quad side) < {min_size:.0f} px minimum"))
        else:
            usable.append((i, face))
    usable.sort(key=lambda t: -t[1].size)
    if policy == "all":
        kept = usable
    elif policy == "largest":
        kept = usable[:1]
        skipped += [Skipped(f, i, f"face {i} is not the largest") for i, f in usable[1:]]
    else:
        if policy >= len(usable):  # the photo lacks the face asked for: exit 4, not 2
            raise NoFaceError(f"face index {policy} requested but only {len(usable)} usable "
                              f"face(s) found")
        kept = [usable[policy]]
        skipped += [Skipped(f, i, f"face {i} not selected") for j, (i, f) in enumerate(usable)
                    if j != policy]
    return [f for _, f in kept], skipped


# What "no face found" suggests when the fast HOG detector was used: dlib's CNN (MMOD) finds
# faces HOG misses (turned heads, a hand or sunglasses over part of the face, hard light).
CNN_HINT = ("try --detector cnn (detector='cnn' in Python): slower, finds turned or partly "
            "covered faces the default HOG detector misses")


def no_face_message(skipped: list[Skipped], where: str = "photo", *, detector=None,
                    shape: tuple[int, int] | None = None) -> str:
    """One line explaining why nothing is left; with ``detector`` and the photo's (h, w)
    ``shape``, a photo without detections also says how small a face the detector finds.
    With the HOG detector (the default) it points to the CNN one."""
    hint = "" if getattr(detector, "kind", "hog") != "hog" else f"; {CNN_HINT}"
    if not skipped:
        msg = f"no face found in {where}"
        if shape is not None and hasattr(detector, "smallest_face"):
            h, w = shape
            msg += (f" (faces down to about {detector.smallest_face(h, w):.0f} px across are "
                    f"found in a {w}x{h} photo)")
        return msg + hint
    rejected = any("rejected" in s.reason for s in skipped)
    return (f"no usable face in {where}: " + "; ".join(s.reason for s in skipped)
            + (hint if rejected else ""))


def skipped_lines(skipped: list[Skipped]) -> list[str]:
    """What to tell a user about the faces left out of an edit: one line per face rejected or
    too small (with where it is and why), and one line for the faces the --faces policy did
    not pick (a group photo has many)."""
    out, unpicked = [], 0
    for s in skipped:
        if "not the largest" in s.reason or "not selected" in s.reason:
            unpicked += 1
            continue
        l, t, r, b = s.face.box
        out.append(f"{s.reason} (box {l:.0f},{t:.0f}-{r:.0f},{b:.0f}; not edited)")
    if unpicked:
        out.append(f"{unpicked} other face{'s' if unpicked > 1 else ''} not edited "
                   "(--faces all edits every face, --faces N one of them)")
    return out


def detect_and_select(image, policy: str | int = "largest", *, min_size: float = DEFAULT_MIN_SIZE,
                      detector=None, where: str = "photo"
                      ) -> tuple[list[Face], list[Face], list[Skipped]]:
    """(every detection, rejected ones flagged; the faces the policy keeps; those skipped):
    detect_faces + select_faces, NoFaceError (one line, with reasons) when none is kept."""
    from .detect import as_rgb_array, default_detector, detect_faces

    rgb = as_rgb_array(image)
    detector = detector or default_detector()
    faces = detect_faces(rgb, detector=detector, keep_rejected=True)
    kept, skipped = select_faces(faces, policy, min_size=min_size)
    if not kept:
        raise NoFaceError(no_face_message(skipped, where, detector=detector, shape=rgb.shape[:2]))
    return faces, kept, skipped


def pick_faces(image, policy: str | int = "largest", *, min_size: float = DEFAULT_MIN_SIZE,
               detector=None, where: str = "photo") -> tuple[list[Face], list[Skipped]]:
    """detect_faces + select_faces; NoFaceError (one line, with reasons) when none is left."""
    _, kept, skipped = detect_and_select(image, policy, min_size=min_size, detector=detector,
                                         where=where)
    return kept, skipped
