"""Where dlib's model files come from.

First choice is the ``face_recognition_models`` package (it ships the uncompressed .dat files).
It is located with importlib instead of imported, because importing it needs pkg_resources.
Fallback is the weights registry (dlib.net ``.bz2`` files, decompressed and md5-checked there).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import WeightsNotFound

# file name inside face_recognition_models/models  ->  weights-registry name
DLIB_FILES = {
    "landmarks68": ("shape_predictor_68_face_landmarks.dat", "dlib-shape-predictor-68"),
    "landmarks5": ("shape_predictor_5_face_landmarks.dat", "dlib-shape-predictor-5"),
    "mmod": ("mmod_human_face_detector.dat", "dlib-mmod-face-detector"),
    "descriptor": ("dlib_face_recognition_resnet_model_v1.dat", "dlib-face-recognition-resnet"),
}


def _package_models_dir() -> Path | None:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def dlib_model_path(key: str, models_dir: str | Path | None = None) -> Path:
    """Path of one dlib model file (``key`` in DLIB_FILES); WeightsNotFound if nowhere."""
    if key not in DLIB_FILES:
        raise KeyError(key)
    filename, registry_name = DLIB_FILES[key]
    for folder in ([Path(models_dir)] if models_dir else []) + [_package_models_dir()]:
        if folder is not None and (folder / filename).is_file():
            return folder / filename
    try:
        from .. import weights  # owned by the weights feature; optional at import time
    except ImportError as exc:  # pragma: no cover - only when the weights module is absent
        raise WeightsNotFound(
            f"dlib model {filename} not found: install face_recognition_models "
            f"or place the file in a folder passed as models_dir") from exc
    return Path(weights.resolve(registry_name))
