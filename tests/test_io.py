"""Reading photos in every common mode, and writing them back atomically and faithfully."""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from realedit.errors import ImageError, OutputError, UsageError
from realedit.io import Photo, encode_image, extension_for, format_for, read_image, write_image


def pattern(h: int = 40, w: int = 60) -> np.ndarray:
    """Asymmetric RGB test pattern: every orientation of it is distinguishable."""
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x * 4 % 256, y * 6 % 256, (x * y) % 256]).astype(np.uint8)


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# ----------------------------------------------------------------------------------- reading

def test_all_input_kinds_give_the_same_pixels(tmp_path):
    a = pattern()
    path = tmp_path / "p.png"
    Image.fromarray(a).save(path)
    for src in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes()),
                Image.open(path), a):
        photo = read_image(src)
        assert isinstance(photo, Photo)
        assert photo.rgb.dtype == np.uint8 and photo.rgb.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(photo.rgb, a)
    p = read_image(path)
    assert p.path == path and p.format == "PNG" and p.mode == "RGB" and (p.width, p.height) == (60, 40)
    assert read_image(p) is p


def test_numpy_inputs_of_other_types():
    a = pattern()
    np.testing.assert_array_equal(read_image(a[:, :, 0]).rgb, np.repeat(a[:, :, :1], 3, axis=2))
    np.testing.assert_array_equal(read_image(a.astype(np.uint16) * 257).rgb, a)
    np.testing.assert_array_equal(read_image(a.astype(np.float32) / 255).rgb, a)
    rgba = np.dstack([a, np.full(a.shape[:2], 7, np.uint8)])
    p = read_image(rgba)
    assert p.mode == "RGBA" and (p.alpha == 7).all()
    assert (read_image(np.ones((3, 3), bool)).rgb == 255).all()
    for bad in (np.zeros((0, 5, 3), np.uint8), np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4), np.int64)):
        with pytest.raises(ImageError):
            read_image(bad)
    with pytest.raises(UsageError):
        read_image(12345)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_and_reset(tmp_path, orientation):
    a = pattern()
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "realedit-test"  # Make
    path = tmp_path / "o.png"
    img.save(path, exif=exif.tobytes())
    photo = read_image(path)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(photo.rgb, expected)
    assert photo.orientation == orientation
    # written back upright, orientation 1, other tags kept
    out = write_image(tmp_path / "out.png", photo)
    back = Image.open(out)
    assert back.getexif().get(0x0112) == 1 and back.getexif().get(0x010F) == "realedit-test"
    np.testing.assert_array_equal(np.asarray(back.convert("RGB")), expected)


def test_grayscale_round_trip_keeps_mode_and_untouched_pixels(tmp_path):
    g = pattern()[:, :, 0]
    path = tmp_path / "g.png"
    Image.fromarray(g, "L").save(path)
    photo = read_image(path)
    assert photo.mode == "L"
    np.testing.assert_array_equal(photo.rgb, np.repeat(g[:, :, None], 3, axis=2))
    rgb = photo.rgb.copy()
    rgb[:10, :10] = [255, 0, 0]  # an edit
    out = Image.open(write_image(tmp_path / "g2.png", photo.with_rgb(rgb)))
    assert out.mode == "L"
    o = np.asarray(out)
    np.testing.assert_array_equal(o[10:], g[10:])
    assert (o[:10, :10] == round(0.299 * 255)).all()


def test_palette_with_transparency(tmp_path):
    a = pattern()
    pimg = Image.fromarray(a).quantize(colors=16)
    pimg.info["transparency"] = 0
    path = tmp_path / "p.png"
    pimg.save(path, transparency=0)
    photo = read_image(path)
    assert photo.mode == "P" and photo.alpha is not None
    idx = np.asarray(pimg)
    assert ((photo.alpha == 0) == (idx == 0)).all()
    rgb = photo.rgb.copy()
    rgb[0, 0] = [1, 2, 3]
    out = Image.open(write_image(tmp_path / "p2.png", photo.with_rgb(rgb)))
    assert out.mode == "P" and out.info.get("transparency") == 0
    o = np.asarray(out)
    assert np.array_equal(o.ravel()[1:], idx.ravel()[1:])


def test_rgba_alpha_is_restored_and_dropped_only_for_jpeg(tmp_path):
    a = pattern()
    alpha = np.tile(np.linspace(0, 255, 60).astype(np.uint8), (40, 1))
    path = tmp_path / "a.png"
    Image.fromarray(np.dstack([a, alpha]), "RGBA").save(path)
    photo = read_image(path)
    assert photo.mode == "RGBA"
    np.testing.assert_array_equal(photo.alpha, alpha)
    np.testing.assert_array_equal(photo.rgb, a)
    out = Image.open(write_image(tmp_path / "b.png", photo))
    assert out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out)[:, :, 3], alpha)
    jpg = Image.open(write_image(tmp_path / "b.jpg", photo))
    assert jpg.format == "JPEG" and jpg.mode == "RGB"


def test_cmyk_read_and_written_back_as_cmyk(tmp_path):
    rng = np.random.default_rng(0)
    cmyk = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    path = tmp_path / "c.tif"
    Image.fromarray(cmyk, "CMYK").save(path)
    photo = read_image(path)
    assert photo.mode == "CMYK" and photo.rgb.shape == (20, 30, 3)
    np.testing.assert_array_equal(photo.rgb, np.asarray(Image.open(path).convert("RGB")))
    rgb = photo.rgb.copy()
    rgb[5, 5] = [10, 20, 30]
    out = Image.open(write_image(tmp_path / "c2.tif", photo.with_rgb(rgb)))
    assert out.mode == "CMYK"
    o = np.asarray(out)
    keep = np.ones((20, 30), bool)
    keep[5, 5] = False
    np.testing.assert_array_equal(o[keep], cmyk[keep])  # K channel etc. survive untouched
    np.testing.assert_array_equal(np.asarray(out.convert("RGB"))[5, 5], [10, 20, 30])
    cm_jpg = tmp_path / "c.jpg"
    Image.fromarray(cmyk, "CMYK").save(cm_jpg)
    assert read_image(cm_jpg).mode == "CMYK"
    assert Image.open(write_image(tmp_path / "c3.jpg", read_image(cm_jpg))).mode == "CMYK"


def test_16bit_gray_is_scaled_and_kept_exact_where_untouched(tmp_path):
    v = (np.arange(40 * 60, dtype=np.uint32).reshape(40, 60) * 27 % 65536).astype(np.uint16)
    path = tmp_path / "s.png"
    Image.fromarray(v).save(path)
    photo = read_image(path)
    assert photo.mode.startswith("I")
    np.testing.assert_array_equal(photo.rgb[:, :, 0], np.rint(v / 257.0).astype(np.uint8))
    rgb = photo.rgb.copy()
    rgb[0, :5] = 255
    out = np.asarray(Image.open(write_image(tmp_path / "s2.png", photo.with_rgb(rgb))))
    assert out.dtype.itemsize >= 2
    np.testing.assert_array_equal(out[1:], v[1:])  # full 16-bit precision where untouched
    assert (out[0, :5] == 65535).all()


def test_decompression_bomb_and_pixel_limit(tmp_path):
    # a 100000 x 100000 PNG that is a few dozen bytes long: refused from the header alone
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(ImageError, match="refused"):
        read_image(path)
    with pytest.raises(ImageError, match="refused"):
        read_image(bomb)
    small = tmp_path / "s.png"
    Image.fromarray(pattern()).save(small)
    with pytest.raises(ImageError, match=r"60x40 .* exceeds"):
        read_image(small, max_pixels=1000)


def test_non_images_and_broken_files_are_refused_with_one_line(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("just text")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    good = io.BytesIO()
    Image.fromarray(pattern(200, 200)).save(good, format="JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.getvalue()[: len(good.getvalue()) // 3])
    for src, words in ((text, "not an image"), (empty, "not an image|empty"),
                       (cut, "cannot decode"), (tmp_path / "nope.png", "no such file"),
                       (tmp_path, "not a file"), (b"", "empty image data")):
        with pytest.raises(ImageError, match=words) as err:
            read_image(src)
        assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------- writing

def test_write_is_atomic_and_never_overwrites_the_input(tmp_path, monkeypatch):
    src = tmp_path / "in.png"
    Image.fromarray(pattern()).save(src)
    before = src.read_bytes()
    photo = read_image(src)
    with pytest.raises(OutputError, match="input"):
        write_image(src, photo)
    with pytest.raises(OutputError, match="input"):
        write_image(tmp_path / "." / "in.png", photo)
    link = tmp_path / "link.png"
    os.symlink(src, link)
    with pytest.raises(OutputError, match="input"):
        write_image(link, photo)
    assert src.read_bytes() == before

    dst = tmp_path / "out.png"
    dst.write_bytes(b"old contents")
    with pytest.raises(OutputError, match="exists"):
        write_image(dst, photo, overwrite=False)

    # a failure in the middle of encoding leaves the old file and no temporary behind
    def broken_save(self, fp, *a, **k):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError, match="disk full"):
        write_image(dst, photo)
    monkeypatch.undo()
    assert dst.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "link.png", "out.png"]

    write_image(dst, photo)
    np.testing.assert_array_equal(read_image(dst).rgb, photo.rgb)
    with pytest.raises(OutputError, match="does not exist"):
        write_image(tmp_path / "missing" / "x.png", photo)
    with pytest.raises(UsageError):
        write_image(tmp_path / "y.png", np.zeros((4, 4), np.float64))


def test_format_exif_and_icc_are_kept(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = Image.fromarray(pattern())
    exif = img.getexif()
    exif[0x010F] = "CameraMaker"
    src = tmp_path / "in.jpg"
    img.save(src, exif=exif.tobytes(), icc_profile=icc, quality=95)
    photo = read_image(src)
    assert photo.format == "JPEG" and photo.icc_profile == icc
    # no extension: the original format is kept
    assert format_for(tmp_path / "result", photo) == "JPEG" and extension_for(photo) == ".jpg"
    out = Image.open(write_image(tmp_path / "result", photo))
    assert out.format == "JPEG"
    assert out.info.get("icc_profile") == icc and out.getexif().get(0x010F) == "CameraMaker"
    png = Image.open(write_image(tmp_path / "r.png", photo))
    assert png.format == "PNG" and png.info.get("icc_profile") == icc
    assert format_for("x.webp") == "WEBP" and format_for("x.unknown") == "PNG"


def test_encode_image_is_the_bytes_write_image_writes(tmp_path):
    rgba = np.dstack([pattern(), np.full(pattern().shape[:2], 200, np.uint8)])
    src = tmp_path / "in.png"
    Image.fromarray(rgba, "RGBA").save(src)
    Image.fromarray(pattern()).save(tmp_path / "in.jpg", quality=80, subsampling=2)
    for path in (src, tmp_path / "in.jpg"):
        photo = read_image(path)
        edited = photo.with_rgb(255 - photo.rgb)
        for fmt in ("PNG", "JPEG", "WEBP"):
            written = write_image(tmp_path / f"out.{fmt.lower()}", edited, like=photo)
            assert encode_image(edited, fmt, like=photo) == written.read_bytes(), (path, fmt)
    with pytest.raises(UsageError):
        encode_image(np.zeros((4, 4), np.uint8), "PNG")
