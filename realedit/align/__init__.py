"""Photo -> faces -> FFHQ-aligned crops.

    faces = detect_faces(rgb)              # list[Face], largest first, non-faces dropped
    crop = align_face(rgb, faces[0], 256)  # AlignedFace: .image, .quad, .crop_to_photo, ...

dlib models are loaded once per process by ``default_detector()`` (an lru_cache); pass your
own ``Detector(...)`` to change settings or to control model lifetime.

    kept, skipped = pick_faces(rgb, "largest")  # policy + minimum size; NoFaceError if none
"""
from .detect import Detector, Face, as_rgb_array, default_detector, detect_faces
from .ffhq import AlignedFace, align_face, crop_size, ffhq_quad, quad_to_affine
from .select import DEFAULT_MIN_SIZE, Skipped, parse_policy, pick_faces, select_faces

__all__ = ["DEFAULT_MIN_SIZE", "AlignedFace", "Detector", "Face", "Skipped", "align_face",
           "as_rgb_array", "crop_size", "default_detector", "detect_faces", "ffhq_quad", "parse_policy",
           "pick_faces", "quad_to_affine", "select_faces"]
