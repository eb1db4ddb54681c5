"""The bad-input corpus of `realedit PHOTO --attr ...`, generated on demand.

Nothing binary is committed: every file is written by code here into a folder the tests give
(a pytest temp dir), from CelebA crops in ../shared (or, without them, crops of the repository's
demo/photos/astronaut.jpg) and a few bytes of hand-made junk.

    photos = write_photos(folder)          # {case name: path}, see PHOTO_CASES
    model = make_model(folder / "m")       # tiny StyleGAN2 + D + encoder + direction bank
    bad = write_bad_models(folder / "w", model)   # {case name: path}, see MODEL_CASES

Each case says what `realedit FILE --attr age=+1` must do with it: the exit code (see
``exit_code`` in realedit/errors.py; 0 = edited) and a regex the one-line message matches.
Run ``python tests/bad_inputs/make.py OUT`` to write the corpus to OUT and look at it.
"""
from __future__ import annotations

import io
import pickle
import shutil
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

try:
    from datapaths import ASTRONAUT, SHARED  # REALEDIT_SHARED honoured, see tests/datapaths.py
except ImportError:  # run as a script: python tests/bad_inputs/make.py OUT
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from datapaths import ASTRONAUT, SHARED
CELEBA = SHARED / "data" / "celeba" / "images"
ATTRS = ("age", "gender", "smile")


def celeba_files() -> list[Path]:
    return sorted(CELEBA.glob("*.jpg")) if CELEBA.is_dir() else []


# Without ../shared, the faces come from the repository's own photo: the astronaut's face
# (dlib box x 175-265, y 76-166 in the 512 px photo) cut out at CelebA's crop size and scale.
_ASTRO_CENTRE = (220, 125)
CROP_W, CROP_H = 178, 218


def repo_face_crop(i: int) -> Image.Image:
    """Crop ``i`` of the astronaut's face, 178x218 like a CelebA crop. Each index is a
    different image (mirrored, shifted by a few pixels, a little brighter or darker, warmer or
    cooler) so a batch is not one file repeated, yet every crop is one clear frontal face."""
    from PIL import ImageOps

    img = Image.open(ASTRONAUT).convert("RGB")
    dx, dy = (i % 5) * 3 - 6, (i // 5 % 5) * 2 - 4
    cx, cy = _ASTRO_CENTRE[0] + dx, _ASTRO_CENTRE[1] + dy
    crop = img.crop((cx - CROP_W // 2, cy - CROP_H // 2, cx + CROP_W - CROP_W // 2,
                     cy + CROP_H - CROP_H // 2))
    if i % 2:
        crop = ImageOps.mirror(crop)
    gain = np.array([1.0 + 0.04 * ((i * 7) % 5 - 2), 1.0, 1.0 + 0.04 * ((i * 3) % 5 - 2)])
    gain *= 1.0 + 0.05 * ((i // 2) % 5 - 2)
    px = np.clip(np.asarray(crop, np.float32) * gain, 0, 255)
    return Image.fromarray(px.round().astype(np.uint8))


def face_crop(i: int) -> Image.Image:
    """CelebA crop ``i`` when ../shared has them, otherwise :func:`repo_face_crop` ``i``."""
    files = celeba_files()
    return Image.open(files[i]).convert("RGB") if files else repo_face_crop(i)


def face_photo(i: int = 0, size: int = 256, background=(90, 100, 110)) -> Image.Image:
    """Face crop ``i`` (178x218) centred on a plain square canvas: one clear frontal face."""
    crop = face_crop(i)
    canvas = Image.new("RGB", (size, size), background)
    canvas.paste(crop, ((size - crop.width) // 2, (size - crop.height) // 2))
    return canvas


# 30 CelebA crops that dlib's HOG detector finds when tiled 6 x 5 (crops 20 and 31 of the
# sorted list are missed in a grid, so they are left out).
CROWD = tuple(i for i in range(10, 42) if i not in (20, 31))


# CelebA crops (sorted order, from 100 on) in which dlib's HOG detector finds no face when
# centred on a 256 px canvas: left out of the batch of good photos.
UNDETECTED = frozenset({145, 150, 166, 173, 179, 185})


def good_faces(n: int, start: int = 100) -> list[int]:
    """Indices of n face crops that make good one-face photos with face_photo()."""
    if not celeba_files():
        return list(range(start, start + n))
    return [i for i in range(start, start + n + len(UNDETECTED)) if i not in UNDETECTED][:n]


def group_photo(indices=CROWD, cols: int = 6) -> Image.Image:
    """CelebA crops in a grid (30 -> 1068x1090): a crowd of similar-sized faces."""
    crops = [face_crop(i) for i in indices]
    n = len(crops)
    w, h = CROP_W, CROP_H
    rows = -(-n // cols)
    canvas = Image.new("RGB", (w * cols, h * rows), (40, 40, 40))
    for k, c in enumerate(crops):
        canvas.paste(c, ((k % cols) * w, (k // cols) * h))
    return canvas


def _jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int, valid_data: bool) -> bytes:
    """A 1-bit PNG claiming width x height pixels. valid_data: a real deflate stream of all
    the (zero) rows -- a genuine decompression bomb, ~1000:1; else a few junk bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    if valid_data:
        row = b"\x00" * (1 + (width + 7) // 8)
        comp = zlib.compressobj(9)
        data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    else:
        data = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def jpeg_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A small real JPEG whose frame header (SOF0) claims width x height."""
    data = bytearray(_jpeg_bytes(Image.new("RGB", (16, 16), (128, 128, 128))))
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def landscape(w: int = 320, h: int = 200, seed: int = 0) -> Image.Image:
    """Sky gradient over noisy green hills: texture and edges, no face."""
    rng = np.random.default_rng(seed)
    y = np.arange(h)[:, None]
    x = np.arange(w)[None, :]
    sky = np.stack([100 + 0 * y + 0 * x, 150 + 0 * y + 0 * x, 230 - y // 2 + 0 * x], -1)
    ridge = (h * 0.55 + 20 * np.sin(x / 37.0) + 10 * np.sin(x / 11.0 + 1)).astype(int)
    hills = np.stack([40 + 0 * y + 0 * x, 120 + y // 4 + 0 * x, 50 + 0 * y + 0 * x], -1)
    img = np.where((y >= ridge)[:, :, None], hills, sky).astype(float)
    img += rng.normal(0, 18, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def exif_rotated(img: Image.Image, orientation: int) -> bytes:
    """JPEG whose stored pixels are ``img`` turned so that a viewer applying EXIF
    ``orientation`` shows ``img`` upright."""
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
            8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _jpeg_bytes(img.transpose(undo), exif=exif.tobytes())


def with_exif_segment(jpeg: bytes, payload: bytes) -> bytes:
    """``jpeg`` with an APP1 segment holding ``payload`` (b"Exif\\0\\0" + TIFF header...)."""
    seg = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + seg + jpeg[2:]


def orientation_ifd(field_type: int, count: int, value: bytes) -> bytes:
    """EXIF payload whose only tag is Orientation stored with an arbitrary TIFF type."""
    if len(value) <= 4:
        entry = struct.pack("<HHI", 0x0112, field_type, count) + value.ljust(4, b"\x00")
        tail = b""
    else:  # out-of-line value right after the IFD
        entry = struct.pack("<HHII", 0x0112, field_type, count, 8 + 2 + 12 + 4)
        tail = value
    return (b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry
            + struct.pack("<I", 0) + tail)


def _broken_exif(payload: bytes, i: int) -> Callable[[], bytes]:
    return lambda: with_exif_segment(_jpeg_bytes(face_photo(i)), payload)


# ------------------------------------------------------------------------------ photo cases

@dataclass(frozen=True)
class PhotoCase:
    name: str                          # file name in the corpus folder
    make: Callable[[], bytes]          # the file's bytes
    code: int                          # exit code of `realedit FILE --attr age=+1`
    message: str = ""                  # regex the error line matches ("" when code == 0)


def _gray16() -> bytes:
    g = np.asarray(face_photo(3).convert("L")).astype(np.uint16) * 257
    return _png_bytes(Image.fromarray(g))


def _rgba() -> bytes:
    rgb = np.asarray(face_photo(5))
    alpha = np.tile(np.linspace(60, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    return _png_bytes(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"))


def _palette_transparent() -> bytes:
    img = face_photo(7).quantize(64)
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    return buf.getvalue()


def _saved(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _float_tiff() -> bytes:
    """32-bit float grayscale in 0..1 (scientific/HDR pipelines)."""
    g = np.asarray(face_photo(3).convert("L")).astype(np.float32) / 255
    return _saved(Image.fromarray(g, "F"), "TIFF")


def _bilevel_face() -> Image.Image:
    """A dithered black-and-white face that dlib still finds and accepts: the astronaut's face
    needs three times CelebA's scale for that (dithered at 90 px its landmarks fall apart)."""
    if celeba_files():
        return face_photo(0).convert("1")
    crop = repo_face_crop(2)
    crop = crop.resize((3 * crop.width, 3 * crop.height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (crop.width + 40, crop.height + 40), (90, 100, 110))
    canvas.paste(crop, (20, 20))
    return canvas.convert("1")


def _truncated(data: bytes, frac: float = 0.5) -> bytes:
    return data[:int(len(data) * frac)]


_NOT_IMAGE = r"not an image|cannot decode|truncated"

PHOTO_CASES = [
    # unreadable files: ImageError (3)
    PhotoCase("empty.jpg", lambda: b"", 3, _NOT_IMAGE),
    PhotoCase("truncated.jpg", lambda: _truncated(_jpeg_bytes(face_photo(0))), 3, _NOT_IMAGE),
    PhotoCase("truncated.png", lambda: _truncated(_png_bytes(face_photo(0))), 3, _NOT_IMAGE),
    PhotoCase("header_only.jpg", lambda: _jpeg_bytes(face_photo(0))[:20], 3, _NOT_IMAGE),
    PhotoCase("soi_only.jpg", lambda: b"\xff\xd8", 3, _NOT_IMAGE),
    PhotoCase("text.jpg", lambda: b"This is not a picture.\n" * 3, 3, _NOT_IMAGE),
    PhotoCase("page.png", lambda: b"<!DOCTYPE html>\n<html><body><img src='x.png'></body></html>\n",
              3, _NOT_IMAGE),
    PhotoCase("bomb_header.png", lambda: png_bomb(40000, 40000, valid_data=False), 3, r"bomb|too many"),
    PhotoCase("bomb_deflate.png", lambda: png_bomb(13000, 13000, valid_data=True), 3, r"bomb|too many"),
    PhotoCase("bomb.jpg", jpeg_bomb, 3, r"bomb|too many"),
    # readable, but no usable face: NoFaceError (4)
    PhotoCase("one_pixel.png", lambda: _png_bytes(Image.new("RGB", (1, 1), (200, 150, 120))), 4,
              r"no (usable )?face"),
    PhotoCase("tiny8.png", lambda: _png_bytes(face_photo(0).resize((8, 8))), 4, r"no (usable )?face"),
    PhotoCase("tiny_face.png", lambda: _png_bytes(face_photo(0).resize((40, 40))), 4,
              r"no (usable )?face"),
    PhotoCase("blank.png", lambda: _png_bytes(Image.new("RGB", (320, 240), (120, 130, 140))), 4,
              r"no (usable )?face"),
    PhotoCase("landscape.jpg", lambda: _jpeg_bytes(landscape()), 4, r"no (usable )?face"),
    PhotoCase("stripe.png", lambda: _png_bytes(Image.new("RGB", (3000, 1), (90, 90, 90))), 4,
              r"no (usable )?face"),
    # unusual but fine: edited, same size and mode (0)
    PhotoCase("gray.png", lambda: _png_bytes(face_photo(2).convert("L")), 0),
    PhotoCase("gray.jpg", lambda: _jpeg_bytes(face_photo(2).convert("L")), 0),
    PhotoCase("gray_alpha.png", lambda: _png_bytes(face_photo(2).convert("LA")), 0),
    PhotoCase("cmyk.jpg", lambda: _jpeg_bytes(face_photo(1).convert("CMYK")), 0),
    PhotoCase("gray16.png", _gray16, 0),
    PhotoCase("rgba.png", _rgba, 0),
    PhotoCase("palette.png", lambda: _png_bytes(face_photo(4).quantize(256)), 0),
    PhotoCase("palette_transparent.png", _palette_transparent, 0),
    PhotoCase("exif_rot6.jpg", lambda: exif_rotated(face_photo(6, size=224).resize((224, 288)), 6), 0),
    PhotoCase("exif_rot3.jpg", lambda: exif_rotated(face_photo(8), 3), 0),
    PhotoCase("png_named.jpg", lambda: _png_bytes(face_photo(9)), 0),
    # broken metadata: ignored (orientation treated as upright), the photo is still edited
    PhotoCase("exif_garbage.jpg", _broken_exif(b"Exif\x00\x00" + b"\x13\x37" * 40, 21), 0),
    PhotoCase("exif_bad_offset.jpg", _broken_exif(b"Exif\x00\x00II*\x00\xff\xff\xff\x7f", 22), 0),
    PhotoCase("exif_orientation_text.jpg", _broken_exif(orientation_ifd(2, 4, b"abc\x00"), 23), 0),
    PhotoCase("exif_orientation_nan.jpg",
              _broken_exif(orientation_ifd(5, 1, struct.pack("<II", 6, 0)), 24), 0),
    PhotoCase("exif_orientation_9.jpg", _broken_exif(orientation_ifd(3, 1, struct.pack("<H", 9)), 25), 0),
    PhotoCase("icc_garbage.jpg", lambda: _saved(face_photo(26), "JPEG", icc_profile=b"not a profile"), 0),
    PhotoCase("UPPER.JPG", lambda: _jpeg_bytes(face_photo(10)), 0),
    PhotoCase("name with spaces é.png", lambda: _png_bytes(face_photo(11)), 0),
    PhotoCase("bilevel.png", lambda: _png_bytes(_bilevel_face()), 0),
    PhotoCase("float.tif", _float_tiff, 0),
    PhotoCase("lab.tif", lambda: _saved(face_photo(13).convert("LAB"), "TIFF"), 0),
    PhotoCase("two_pages.tif", lambda: _saved(face_photo(14), "TIFF", save_all=True,
                                              append_images=[face_photo(15)]), 0),
    PhotoCase("animated.gif", lambda: _saved(face_photo(16), "GIF", save_all=True,
                                             append_images=[face_photo(17)], duration=100), 0),
    PhotoCase("photo.webp", lambda: _saved(face_photo(18), "WEBP"), 0),
    PhotoCase("photo.bmp", lambda: _saved(face_photo(19), "BMP"), 0),
    PhotoCase("crowd30.jpg", lambda: _jpeg_bytes(group_photo()), 0),
]
PHOTOS = {c.name: c for c in PHOTO_CASES}


def write_photos(folder: Path, names=None) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for case in PHOTO_CASES:
        if names is None or case.name in names:
            out[case.name] = folder / case.name
            out[case.name].write_bytes(case.make())
    return out


# ------------------------------------------------------------------------------ models

def make_model(folder: Path, *, name: str = "tiny", encoder: bool = True, seed: int = 0,
               bank_space: str = "w", bank_dim: int | None = None) -> Path:
    """A 32 px StyleGAN2 with its discriminator (the offline perceptual loss), optionally an
    untrained encoder beside it, and a direction bank (age, gender, smile) beside it."""
    import torch

    from realedit import models
    from realedit.edit import Direction, DirectionBank, save_bank

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    G = models.build("stylegan2", 32, z_dim=32, w_dim=32, channel_base=32 * 32, channel_max=32,
                     mapping_layers=2)
    D = models.build_discriminator("stylegan2", 32, channel_base=32 * 32, channel_max=32)
    path = folder / f"{name}.pt"
    models.save(G, path, discriminator=D)
    rng = np.random.default_rng(seed)
    dim = bank_dim or 32
    bank = DirectionBank([Direction(a, rng.standard_normal(dim), str(path), bank_space, source="test")
                          for a in ATTRS])
    save_bank(bank, folder / f"{name}.directions")
    if encoder:
        from realedit.invert.encoder import Encoder, EncoderConfig, save_encoder
        E = Encoder(EncoderConfig.for_generator(G, channels=8, max_channels=16))
        E.set_generator_stats(G)
        save_encoder(E, folder / f"{name}.encoder.pt")
    return path


def make_pggan_model(folder: Path, *, name: str = "pg", seed: int = 0) -> Path:
    """A 32 px PGGAN (Z space only) with an untrained Z encoder and a Z direction bank."""
    import torch

    from realedit import models
    from realedit.edit import Direction, DirectionBank, save_bank
    from realedit.invert.encoder import Encoder, EncoderConfig, save_encoder

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    G = models.build("pggan", 32, z_dim=32, fmap_base=64, fmap_max=32)
    path = folder / f"{name}.pt"
    models.save(G, path)
    rng = np.random.default_rng(seed)
    save_bank(DirectionBank([Direction(a, rng.standard_normal(32), str(path), "z", source="test")
                             for a in ATTRS]), folder / f"{name}.directions")
    E = Encoder(EncoderConfig.for_generator(G, channels=8, max_channels=16))
    E.set_generator_stats(G)
    save_encoder(E, folder / f"{name}.encoder.pt")
    return path


def copy_model(model: Path, folder: Path, name: str, *, bank: bool = True,
               encoder: bool = False) -> Path:
    """The same model under another name, with or without its bank and encoder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / f"{name}.pt"
    shutil.copyfile(model, dst)
    stem = model.with_suffix("")
    if bank:
        for ext in (".json", ".npz"):
            shutil.copyfile(f"{stem}.directions{ext}", folder / f"{name}.directions{ext}")
    if encoder:
        shutil.copyfile(f"{stem}.encoder.pt", folder / f"{name}.encoder.pt")
    return dst


class _System:
    """Unpickles as os.system(cmd): what a malicious model file would do."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        import os
        return (os.system, (self.cmd,))


def evil_pickle(marker: Path) -> bytes:
    """A pickle that, if ever unpickled with plain pickle, creates ``marker``."""
    return pickle.dumps({"G": _System(f"touch {marker}")}, protocol=2)


def evil_torch_file(marker: Path, path: Path) -> None:
    """A torch zip file whose data.pkl runs os.system when loaded without weights_only."""
    import torch
    torch.save({"format": "realedit-model", "G": _System(f"touch {marker}")}, path)


@dataclass(frozen=True)
class ModelCase:
    name: str
    code: int
    message: str


MODEL_CASES = [
    ModelCase("missing", 5, r"no such|not found|missing"),
    ModelCase("random_bytes", 5, r"not a model|cannot|corrupt|not a"),
    ModelCase("truncated_zip", 5, r"corrupt|truncated|cannot|not a|zip|read"),
    ModelCase("empty", 5, r"empty"),
    ModelCase("evil_pickle", 5, r"os\.system|posix\.system|not allowed|unsafe|global"),
    ModelCase("evil_torch", 5, r"os\.system|posix\.system|not allowed|unsafe|global|weights_only"),
    ModelCase("not_a_model", 5, r"not a|no generator|unknown|format"),
    ModelCase("photo_as_model", 5, r"not a model"),
    ModelCase("folder", 5, r"not a|folder|directory|no such|cannot"),
    ModelCase("unknown_name", 5, r"unknown|not found|no such|registry"),
    ModelCase("no_bank", 6, r"no direction bank"),
    ModelCase("bank_other_model", 6, r"another model|dimensions"),
    ModelCase("bank_corrupt", 6, r"not valid JSON|not a realedit direction bank"),
    ModelCase("encoder_corrupt", 5, r"encoder"),
]


def write_bad_models(folder: Path, model: Path, marker: Path) -> dict[str, str]:
    """{case name: value for --model}. ``marker`` is the file the evil pickles would create."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    out = {"missing": str(folder / "missing.pt"), "unknown_name": "no-such-model-xyz"}
    p = folder / "random_bytes.pt"
    p.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out["random_bytes"] = str(p)
    data = model.read_bytes()
    p = folder / "truncated_zip.pt"
    p.write_bytes(data[:len(data) // 2])
    out["truncated_zip"] = str(p)
    p = folder / "empty.pt"
    p.write_bytes(b"")
    out["empty"] = str(p)
    p = folder / "evil_pickle.pkl"
    p.write_bytes(evil_pickle(marker))
    out["evil_pickle"] = str(p)
    p = folder / "evil_torch.pt"
    evil_torch_file(marker, p)
    out["evil_torch"] = str(p)
    p = folder / "not_a_model.pt"
    torch.save({"hello": torch.zeros(3), "epoch": 3}, p)
    out["not_a_model"] = str(p)
    p = folder / "photo_as_model.pt"
    p.write_bytes(_jpeg_bytes(face_photo(0)))
    out["photo_as_model"] = str(p)
    p = folder / "folder.pt"
    p.mkdir(exist_ok=True)
    out["folder"] = str(p)
    out["no_bank"] = str(copy_model(model, folder, "no_bank", bank=False))
    other = make_model(folder / "other", name="other", encoder=False, bank_dim=48)
    p = copy_model(model, folder, "bank_other_model", bank=False)
    for ext in (".json", ".npz"):
        shutil.copyfile(other.with_suffix("").as_posix() + f".directions{ext}",
                        folder / f"bank_other_model.directions{ext}")
    out["bank_other_model"] = str(p)
    p = copy_model(model, folder, "bank_corrupt")
    (folder / "bank_corrupt.directions.json").write_text("{ not json")
    out["bank_corrupt"] = str(p)
    p = copy_model(model, folder, "encoder_corrupt")
    (folder / "encoder_corrupt.encoder.pt").write_bytes(rng.integers(0, 256, 999, dtype=np.uint8).tobytes())
    out["encoder_corrupt"] = str(p)
    return out


if __name__ == "__main__":
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs_out")
    for name, path in write_photos(dest / "photos").items():
        print(path)
    m = make_model(dest / "model")
    for name, value in write_bad_models(dest / "models", m, dest / "PWNED").items():
        print(name, value)
