"""Photos in and out of the server: which uploads are accepted (judged by content, pixel limit),
download names, previews (downscaled JPEGs)."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from ..errors import ImageError


# Formats a client may upload; everything else is refused from the header, before decoding
# (Pillow also opens e.g. EPS, which would hand the bytes to Ghostscript).
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
               "TIFF": "image/tiff", "BMP": "image/bmp", "GIF": "image/gif"}


def safe_stem(filename: str | None) -> str:
    """The upload's file stem reduced to [A-Za-z0-9._-] (download names only; never a path)."""
    stem = Path(str(filename or "")).name.rsplit(".", 1)[0] if filename else ""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80]
    return stem or "photo"


def download_ext(filename: str | None, photo) -> str:
    """Like the CLI, the upload's own extension when it names the decoded format (.jpeg stays
    .jpeg), else the format's usual one."""
    from ..io import extension_for, format_for

    suffix = Path(str(filename or "")).suffix.lower()
    if suffix and format_for(f"x{suffix}") == ("JPEG" if photo.format == "MPO" else photo.format):
        return suffix
    return extension_for(photo)


def decode_upload(data: bytes, max_pixels: int):
    """Photo from uploaded bytes, judged by its content alone (ImageError otherwise)."""
    from PIL import Image, UnidentifiedImageError

    from ..io import read_image

    if not data:
        raise ImageError("the file is empty (0 bytes)")
    limit = f"the server's limit is {max_pixels / 1e6:.0f} megapixels"
    try:
        with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as img:  # the header only
            w, h = img.size
    except Image.DecompressionBombError:  # Pillow's own ceiling, far above ours
        raise ImageError(f"refused: far too many pixels ({limit}; decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ImageError("not a photo: the file is not a JPEG, PNG, WebP, TIFF, BMP or GIF "
                         "image") from None
    except Exception as exc:  # noqa: BLE001 - a header Pillow chokes on is a bad upload
        raise ImageError(f"not a readable photo ({exc})") from None
    if w * h > max_pixels:
        raise ImageError(f"refused: the photo is {w}x{h} = {w * h / 1e6:.0f} megapixels, and "
                         f"{limit}")
    return read_image(data, max_pixels=max_pixels)


def jpeg(rgb: np.ndarray, quality: int = 88) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
