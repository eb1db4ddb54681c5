"""Reading and writing photos without losing what the user gave us.

``read_image`` turns anything photo-like into a :class:`Photo`: RGB uint8 pixels with the EXIF
orientation applied, plus what is needed to write the result back the way it came (mode,
alpha, palette, raw pixel values of non-RGB modes, format, EXIF, ICC profile).

``write_image`` is atomic (temporary file in the target folder + ``os.replace``), refuses to
overwrite the photo it came from, and converts back to the original mode. For modes where
RGB -> mode is lossy (grayscale, palette, CMYK, 16-bit), every pixel whose RGB value was not
changed gets its original raw value back, so untouched areas stay bit-identical.
"""
from __future__ import annotations

import io as _io
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import ImageError, OutputError, UsageError
from .fsutil import atomic_write

# 150 MP: a 12000x9000 photo (108 MP) passes, a decompression bomb does not. Pillow itself
# refuses anything above 2 x Image.MAX_IMAGE_PIXELS (~179 MP) regardless.
DEFAULT_MAX_PIXELS = 150_000_000

_EXIF_ORIENTATION = 0x0112
# EXIF orientation value -> PIL transpose to make the pixels upright
_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
              6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}
# TIFF tags describing how pixels are stored (size, depth, compression, photometric, strips,
# sample format, palette, YCbCr, ICC): never copied from one TIFF to another.
_TIFF_LAYOUT_TAGS = frozenset({254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 280,
                               281, 284, 317, 320, 322, 323, 324, 325, 338, 339, 340, 341, 530,
                               531, 532, 34675})
# Formats whose Pillow writers accept exif= / icc_profile=
_EXIF_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF"}
_ICC_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF"}
_EXT_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".png": "PNG", ".webp": "WEBP",
               ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".gif": "GIF"}
# Files a folder argument contributes (realedit edit, batch): the usual names of the formats
# above (not the rare ".jpe").
IMAGE_SUFFIXES = frozenset(_EXT_FORMAT) - {".jpe"}
_FORMAT_EXT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp",
               "GIF": ".gif"}


def expand_source(item: str | os.PathLike, *, recursive: bool) -> list[Path] | None:
    """The files one photo argument names, by the rules every command shares (edit, eval, grid,
    batch): a folder gives its images (IMAGE_SUFFIXES, any case), sorted, without hidden
    entries (".name": macOS "._x.jpg" metadata, .git/ ...), from its subfolders too when
    ``recursive``; a wildcard pattern that is not itself a file gives the files it matches,
    sorted ("**" spans folders). None for anything else (a file, a list, a missing name): the
    caller judges those."""
    import glob

    p = Path(item)
    if p.is_dir():
        found = p.rglob("*") if recursive else p.iterdir()
        return sorted(q for q in found if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file()
                      and not any(part.startswith(".") for part in q.relative_to(p).parts))
    if any(ch in str(item) for ch in "*?[") and not p.exists():
        return sorted(Path(m) for m in glob.glob(str(item), recursive=True) if Path(m).is_file())
    return None


def expand_inputs(items) -> list[Path]:
    """Files as given, folders' images and globs as expand_source lists them (as
    `realedit batch` does, except that a folder's subfolders are not entered: outputs go to one
    flat folder), globs expanded here so they work whatever the shell did. A name that matches
    nothing is kept, to be reported as missing."""
    out: list[Path] = []
    for item in items:
        found = expand_source(item, recursive=False)
        out += [Path(item)] if found is None else found
    seen, unique = set(), []
    for p in out:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


@dataclass(frozen=True)
class Photo:
    """A decoded photo.

    rgb: (H, W, 3) uint8, upright (EXIF orientation applied) -- what every stage works on.
    alpha: (H, W) uint8 or None. mode: the original Pillow mode ("RGB", "RGBA", "L", "P",
    "CMYK", "I;16", ...). raw: the original pixel values (H, W[, C]) when ``mode`` is not
    RGB/RGBA, used to keep untouched pixels bit-identical on write. palette / transparency:
    for "P" images. format: "JPEG", "PNG", ... or None. exif: EXIF bytes with orientation
    reset to 1 (the pixels are already upright). icc_profile: bytes or None. path: the file it
    was read from (write_image refuses to overwrite it).
    """

    rgb: np.ndarray = field(repr=False)
    mode: str = "RGB"
    alpha: np.ndarray | None = field(default=None, repr=False)
    raw: np.ndarray | None = field(default=None, repr=False)
    palette: bytes | None = field(default=None, repr=False)
    transparency: object = field(default=None, repr=False)
    format: str | None = None
    exif: bytes | None = field(default=None, repr=False)
    icc_profile: bytes | None = field(default=None, repr=False)
    path: Path | None = None
    orientation: int = 1
    # JPEG input: its quantisation tables and chroma subsampling, reused when writing JPEG so
    # the untouched parts of the photo are re-encoded as the camera encoded them.
    jpeg_tables: dict | None = field(default=None, repr=False)
    jpeg_subsampling: int | None = None

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    def with_rgb(self, rgb: np.ndarray) -> "Photo":
        """Same photo (metadata, alpha, raw) with new RGB pixels of the same size."""
        rgb = np.asarray(rgb)
        if rgb.shape != self.rgb.shape or rgb.dtype != np.uint8:
            raise UsageError(f"new pixels must be {self.rgb.shape} uint8, got {rgb.shape} {rgb.dtype}")
        return replace(self, rgb=rgb)


# ----------------------------------------------------------------------------------- reading

def read_image(src, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode ``src`` (path, bytes, file object, PIL image, numpy array or Photo) into a Photo.

    Raises ImageError for missing/non-image/truncated files, empty images, and images of more
    than ``max_pixels`` pixels (checked from the header, before decoding).
    """
    from PIL import Image

    if isinstance(src, Photo):
        return src
    if isinstance(src, np.ndarray):
        return _from_array(src)
    if isinstance(src, Image.Image):
        return _from_pil(src, path=None, max_pixels=max_pixels)
    path = None
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise ImageError(f"{path}: no such file")
        if not path.is_file():
            raise ImageError(f"{path}: not a file")
        fp = path
    elif isinstance(src, (bytes, bytearray, memoryview)):
        if len(src) == 0:
            raise ImageError("empty image data (0 bytes)")
        fp = _io.BytesIO(bytes(src))
    elif hasattr(src, "read"):
        fp = src
    else:
        raise UsageError(f"cannot read an image from {type(src).__name__}")
    name = str(path) if path else "image data"
    try:
        with warnings.catch_warnings():
            # we apply our own, explicit pixel limit below; and Pillow's warnings about broken
            # metadata (corrupt EXIF is common) are not the user's problem: no stray lines
            warnings.simplefilter("ignore")
            img = Image.open(fp)
            _check_size(img.size, max_pixels, name)
            img.load()
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: refused, too many pixels (decompression bomb?)") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image, or a format Pillow cannot read") from exc
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: cannot decode ({exc})") from exc
    return _from_pil(img, path=path, max_pixels=max_pixels)


def _check_size(size: tuple[int, int], max_pixels: int, name: str) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ImageError(f"{name}: empty image ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(f"{name}: refused, {w}x{h} = {w * h / 1e6:.0f} MP exceeds the "
                         f"{max_pixels / 1e6:.0f} MP limit (decompression bomb?)")


def _from_pil(img, *, path: Path | None, max_pixels: int) -> Photo:
    from PIL import Image

    _check_size(img.size, max_pixels, str(path) if path else "image")
    fmt = img.format
    icc = img.info.get("icc_profile") or None
    qtables, sampling = _jpeg_encoding(img)
    with warnings.catch_warnings():
        # Broken EXIF is common in the wild; it must neither fail the photo nor print warnings.
        warnings.simplefilter("ignore")
        try:
            exif_obj = img.getexif()
            orientation = _orientation(exif_obj.get(_EXIF_ORIENTATION, 1))
        except Exception:  # noqa: BLE001 - any parser failure: treat as no EXIF
            exif_obj, orientation = Image.Exif(), 1
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # animated GIF/WebP, multi-page TIFF: the first frame is the photo
    if orientation in _TRANSPOSE:
        img = img.transpose(getattr(Image.Transpose, _TRANSPOSE[orientation]))
    exif = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if len(exif_obj):
                exif_obj[_EXIF_ORIENTATION] = 1
                if fmt == "TIFF":
                    # A TIFF's "EXIF" is its own first IFD: written back as is, its pixel-layout
                    # tags would mislabel the new pixels (a float or CIELab TIFF came out
                    # unreadable or garbled).
                    for tag in _TIFF_LAYOUT_TAGS.intersection(exif_obj):
                        del exif_obj[tag]
                exif = exif_obj.tobytes()
    except Exception:  # noqa: BLE001 - tags Pillow cannot re-encode: drop the metadata
        exif = None
    mode = img.mode
    alpha = raw = palette = None
    transparency = img.info.get("transparency")
    if mode == "RGB":
        rgb = np.asarray(img)
    elif mode == "RGBA":
        arr = np.asarray(img)
        rgb, alpha = np.ascontiguousarray(arr[:, :, :3]), np.ascontiguousarray(arr[:, :, 3])
    elif mode in _RAW_MODES:
        if mode in ("P", "PA"):
            palette = img.palette.tobytes() if img.palette else None
            if mode == "PA" or transparency is not None:
                alpha = np.ascontiguousarray(np.asarray(img.convert("RGBA"))[:, :, 3])
            img = img if mode == "P" else img.getchannel(0)
        elif mode == "LA":
            alpha = np.ascontiguousarray(np.asarray(img)[:, :, 1])
        raw = np.array(img)
        rgb = raw_to_rgb(raw, mode, palette)
    else:  # YCbCr, LAB, HSV, ...: Pillow knows how to get RGB
        rgb = np.asarray(img.convert("RGB"))
        mode = "RGB"
    return Photo(rgb=np.ascontiguousarray(rgb), mode=mode, alpha=alpha, raw=raw, palette=palette,
                 transparency=transparency, format=fmt, exif=exif, icc_profile=icc, path=path,
                 orientation=orientation, jpeg_tables=qtables, jpeg_subsampling=sampling)


def _jpeg_encoding(img) -> tuple[dict | None, int | None]:
    """(quantisation tables, Pillow subsampling code 0/1/2) of a JPEG, else (None, None)."""
    if img.format not in ("JPEG", "MPO") or not getattr(img, "quantization", None):
        return None, None
    from PIL import JpegImagePlugin

    sampling = JpegImagePlugin.get_sampling(img)  # -1: not one Pillow can write
    return ({k: list(v) for k, v in img.quantization.items()},
            sampling if sampling in (0, 1, 2) else None)


def _orientation(value) -> int:
    """EXIF orientation 1..8; anything malformed (wrong type, several values, 0, 9, NaN) counts
    as 1, upright, as viewers treat it."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else 1
    try:
        v = int(value)
    except (TypeError, ValueError, OverflowError):
        return 1
    return v if 1 <= v <= 8 else 1


# Modes whose original values are kept in Photo.raw, because RGB -> mode is lossy.
_RAW_MODES = ("L", "LA", "1", "P", "PA", "CMYK", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def raw_to_rgb(raw: np.ndarray, mode: str, palette: bytes | None = None) -> np.ndarray:
    """The RGB uint8 rendering of raw pixel values of ``mode`` (the one read_image gives).
    write_image compares against it to find the pixels an edit left alone."""
    from PIL import Image

    if mode in ("L", "1"):
        gray = raw.astype(np.uint8) * 255 if raw.dtype == bool else raw
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "LA":
        return np.repeat(raw[:, :, :1], 3, axis=2)
    if mode in ("P", "PA"):
        img = Image.fromarray(raw, "P")
        if palette:
            img.putpalette(palette)
        return np.asarray(img.convert("RGB"))
    if mode == "CMYK":
        return np.asarray(Image.fromarray(raw, "CMYK").convert("RGB"))
    return np.repeat(_high_to_8bit(raw, mode)[:, :, None], 3, axis=2)


def _high_to_8bit(a: np.ndarray, mode: str) -> np.ndarray:
    """16-bit / 32-bit integer or float grayscale to uint8 (16-bit range assumed for integers,
    0..1 for floats; values outside are clipped)."""
    if mode == "F":
        scaled = a.astype(np.float64) * (255.0 if np.nanmax(a) <= 1.0 else 1.0)
    else:
        scaled = a.astype(np.float64) / 257.0
    return np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)


def _from_array(a: np.ndarray) -> Photo:
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ImageError(f"expected an HxW, HxWx3 or HxWx4 array, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(f"empty image array of shape {a.shape}")
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype == np.uint16:
        u8 = np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
    elif a.dtype == bool:
        u8 = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        u8 = np.clip(np.rint(np.nan_to_num(a.astype(np.float64)) * 255.0), 0, 255).astype(np.uint8)
    else:
        raise ImageError(f"unsupported pixel type {a.dtype} (use uint8, uint16, bool or float in 0..1)")
    alpha = np.ascontiguousarray(u8[:, :, 3]) if u8.shape[2] == 4 else None
    rgb = np.repeat(u8, 3, axis=2) if u8.shape[2] == 1 else u8[:, :, :3]
    return Photo(rgb=np.ascontiguousarray(rgb), mode="RGBA" if alpha is not None else "RGB",
                 alpha=alpha)


# ----------------------------------------------------------------------------------- writing

def format_for(path: str | os.PathLike, like: Photo | None = None) -> str:
    """Output format from the file extension, else the original photo's, else PNG."""
    ext = Path(path).suffix.lower()
    if ext in _EXT_FORMAT:
        return _EXT_FORMAT[ext]
    if like is not None and like.format:
        return "JPEG" if like.format == "MPO" else like.format  # MPO: phones' multi-frame JPEG
    return "PNG"


def extension_for(photo: Photo) -> str:
    """File extension that keeps the photo's format (".png" when unknown)."""
    return _FORMAT_EXT.get("JPEG" if photo.format == "MPO" else photo.format or "", ".png")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def write_image(path: str | os.PathLike, image, *, like: Photo | None = None,
                format: str | None = None, quality: int = 95, overwrite: bool = True) -> Path:
    """Write ``image`` (Photo, HxWx3/HxWx4 uint8 array or PIL image) to ``path`` atomically.

    like: the Photo the pixels came from (defaults to ``image`` when it is a Photo): its mode,
    alpha, palette, EXIF and ICC profile are restored where the format allows, and pixels
    whose RGB equals the original keep their original raw values. The photo's own file is
    never overwritten (OutputError), nor any existing file when ``overwrite`` is False.
    """
    dst = Path(path)
    rgb, alpha, like = _pixels(image, like)
    if like is not None and like.path is not None and _same_file(dst, like.path):
        raise OutputError(f"{dst}: refusing to overwrite the input photo")
    try:
        exists = dst.exists()  # raises for e.g. a name longer than the file system allows
    except OSError as exc:
        raise OutputError(f"{dst}: cannot write ({exc.strerror or exc})") from None
    if exists and not overwrite:
        raise OutputError(f"{dst}: exists (pass overwrite to replace it)")
    if exists and dst.is_dir():
        raise OutputError(f"{dst}: is a folder")
    if not dst.parent.is_dir():
        raise OutputError(f"{dst.parent}: folder does not exist")
    fmt = _format_name(format or format_for(dst, like))
    img, kwargs = _pil_and_options(rgb, alpha, like, fmt, quality)
    try:
        with atomic_write(dst) as fh:
            img.save(fh, format=fmt, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise OutputError(f"{dst}: cannot write {fmt} ({getattr(exc, 'strerror', None) or exc})") \
            from exc
    return dst


def encode_image(image, format: str, *, like: Photo | None = None, quality: int = 95) -> bytes:
    """The bytes :func:`write_image` would write for ``image`` in ``format``, made in memory
    (a download, or a measurement of what the file holds, needs no temporary file)."""
    rgb, alpha, like = _pixels(image, like)
    fmt = _format_name(format)
    img, kwargs = _pil_and_options(rgb, alpha, like, fmt, quality)
    buf = _io.BytesIO()
    try:
        img.save(buf, format=fmt, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise OutputError(f"cannot encode {fmt} ({getattr(exc, 'strerror', None) or exc})") from exc
    return buf.getvalue()


def _pixels(image, like: Photo | None):
    """(rgb, alpha or None, like) of a Photo, PIL image or HxWx3/HxWx4 uint8 array; a Photo
    is its own ``like`` unless one is given."""
    from PIL import Image

    if isinstance(image, Photo):
        like = like or image
        rgb = image.rgb
    elif isinstance(image, Image.Image):
        rgb = np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    else:
        rgb = np.asarray(image)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise UsageError(f"expected HxWx3 or HxWx4 uint8 pixels, got {rgb.shape} {rgb.dtype}")
    if rgb.shape[2] == 4:
        return rgb[:, :, :3], rgb[:, :, 3], like
    return rgb, None, like


def _format_name(fmt: str) -> str:
    fmt = fmt.upper()
    return "JPEG" if fmt == "JPG" else fmt


def _pil_and_options(rgb, alpha, like: Photo | None, fmt: str, quality: int):
    """The PIL image to save and Pillow's save options for it."""
    img = _to_pil(rgb, alpha, like, fmt)
    return img, _save_kwargs(img, like, fmt, quality)


def to_pil(photo: Photo):
    """The photo as a PIL image in its original mode (alpha, palette, gray, CMYK... restored)."""
    return _to_pil(photo.rgb, photo.alpha, photo, (photo.format or "PNG").upper())


def _to_pil(rgb: np.ndarray, alpha: np.ndarray | None, like: Photo | None, fmt: str):
    """Pillow image in the original photo's mode where the output format can hold it."""
    from PIL import Image

    if like is not None and like.rgb.shape != rgb.shape:
        like = None  # different size (e.g. a crop): metadata only, no pixel restoring
    if alpha is None and like is not None:
        alpha = like.alpha
    mode = like.mode if like is not None else ("RGBA" if alpha is not None else "RGB")
    unchanged = None
    if like is not None and like.raw is not None:
        # compare with what the raw values look like, not with like.rgb: ``like`` may be
        # the edited photo itself (Photo.with_rgb)
        unchanged = np.all(rgb == raw_to_rgb(like.raw, like.mode, like.palette), axis=2)

    def restored(new_raw: np.ndarray) -> np.ndarray:
        if unchanged is None or new_raw.shape[:2] != like.raw.shape[:2] or new_raw.dtype != like.raw.dtype:
            return new_raw
        out = new_raw.copy()
        out[unchanged] = like.raw[unchanged]
        return out

    keeps_alpha = fmt in ("PNG", "WEBP", "TIFF", "GIF")
    if mode in ("L", "LA", "1"):
        gray = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L"))
        if mode == "1":
            return Image.fromarray(restored(gray >= 128))
        if mode == "LA" and keeps_alpha and alpha is not None:
            return Image.fromarray(np.dstack([restored_gray(gray, like, unchanged), alpha]), "LA")
        return Image.fromarray(restored_gray(gray, like, unchanged), "L")
    if mode in ("P", "PA") and fmt in ("PNG", "GIF", "TIFF", "BMP") and like.palette:
        pal = Image.new("P", (1, 1))
        pal.putpalette(like.palette)
        q = Image.fromarray(np.ascontiguousarray(rgb)).quantize(palette=pal, dither=Image.Dither.NONE)
        img = Image.fromarray(restored(np.asarray(q)), "P")
        img.putpalette(like.palette)
        if like.transparency is not None:
            img.info["transparency"] = like.transparency
        return img
    if mode == "CMYK" and fmt in ("JPEG", "TIFF"):
        cmyk = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("CMYK"))
        return Image.fromarray(restored(cmyk), "CMYK")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I") and fmt in ("PNG", "TIFF"):
        gray = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L")).astype(np.uint16) * 257
        new = gray.astype(like.raw.dtype)
        return Image.fromarray(restored(new))
    if mode == "F" and fmt == "TIFF" and like.raw is not None:
        # float gray: the inverse of _high_to_8bit's scaling (0..1 stays 0..1)
        gray = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L")).astype(np.float32)
        return Image.fromarray(restored(gray / (255.0 if np.nanmax(like.raw) <= 1.0 else 1.0)), "F")
    if alpha is not None and keeps_alpha:
        return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


def restored_gray(gray: np.ndarray, like: Photo | None, unchanged: np.ndarray | None) -> np.ndarray:
    """Gray values with the original ones where the RGB pixels were not changed."""
    if like is None or like.raw is None or unchanged is None:
        return gray
    orig = like.raw[:, :, 0] if like.raw.ndim == 3 else like.raw
    if orig.dtype != np.uint8:
        return gray
    out = gray.copy()
    out[unchanged] = orig[unchanged]
    return out


def _save_kwargs(img, like: Photo | None, fmt: str, quality: int) -> dict:
    kw: dict = {}
    if fmt == "JPEG" and like is not None and like.jpeg_tables and img.mode in ("RGB", "L", "CMYK") \
            and len(like.jpeg_tables) <= len(img.getbands()):
        # The input's own tables and subsampling: re-encoding the unedited areas then changes
        # them by a level or two at most, and the file stays about its size (quality=95 with
        # 4:4:4 made it ~2.4x larger and moved far-away pixels by up to 5 levels).
        kw["qtables"] = like.jpeg_tables
        if like.jpeg_subsampling is not None and img.mode == "RGB":
            kw["subsampling"] = like.jpeg_subsampling
    elif fmt == "JPEG":
        kw.update(quality=int(quality), subsampling=0)
    elif fmt == "WEBP":
        kw.update(quality=int(quality))
    if like is not None:
        if like.exif and fmt in _EXIF_FORMATS:
            kw["exif"] = like.exif
        if like.icc_profile and fmt in _ICC_FORMATS:
            kw["icc_profile"] = like.icc_profile
    return kw
