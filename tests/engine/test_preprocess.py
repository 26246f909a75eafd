"""The shared preprocessing: every format and pixel flavour -> the same 8-bit RGB; bad files -> a reason."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from conftest import png_bomb_bytes, real_cell_sources, rgb_of
from PIL import Image

from engine.preprocess import (
    MAX_PIXELS,
    ImageDecodeError,
    Preprocessing,
    is_supported,
    load_rgb,
    open_rgb,
    preprocess_file,
    preprocess_image,
)


@pytest.fixture(scope="module")
def cell() -> Image.Image:
    return rgb_of(real_cell_sources()[0])


@pytest.mark.parametrize(
    "name,kw",
    [
        ("c.bmp", {}),
        ("c.BMP", {"format": "BMP"}),
        ("c.png", {}),
        ("c.tif", {}),
        ("c.TIFF", {"format": "TIFF"}),
        ("c.webp", {"lossless": True}),
    ],
)
def test_lossless_formats_decode_to_identical_pixels(tmp_path, cell, name, kw):
    p = tmp_path / name
    cell.save(p, **kw)
    assert np.array_equal(load_rgb(p), np.asarray(cell))


def test_jpeg_and_grayscale_jpeg(tmp_path, cell):
    cell.save(tmp_path / "c.jpg", quality=95)
    cell.convert("L").save(tmp_path / "g.jpeg", quality=95)
    rgb = load_rgb(tmp_path / "c.jpg")
    assert rgb.shape == (450, 450, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - np.asarray(cell, dtype=int)).mean() < 3
    g = load_rgb(tmp_path / "g.jpeg")
    assert g.shape == (450, 450, 3)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])


def test_16bit_png_is_scaled_to_8bit(tmp_path):
    v8 = np.arange(256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(v8 * 257).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")
    rgb = load_rgb(tmp_path / "g16.png")
    assert rgb.dtype == np.uint8
    assert np.array_equal(rgb[..., 0], v8.astype(np.uint8))


def test_rgba_is_composited_on_black(tmp_path, cell):
    rgba = cell.convert("RGBA")
    a = np.asarray(rgba).copy()
    a[:10, :10, 3] = 0  # transparent corner with bright colour underneath
    a[:10, :10, :3] = 255
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    rgb = load_rgb(tmp_path / "a.png")
    assert (rgb[:10, :10] == 0).all()
    assert np.array_equal(rgb[100:200, 100:200], np.asarray(cell)[100:200, 100:200])


def test_palette_and_la_and_bilevel(tmp_path, cell):
    cell.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    cell.convert("LA").save(tmp_path / "la.png")
    cell.convert("1").save(tmp_path / "b.bmp")
    for n in ("p.png", "la.png", "b.bmp"):
        rgb = load_rgb(tmp_path / n)
        assert rgb.shape == (450, 450, 3) and rgb.dtype == np.uint8


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)  # left half red
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    im.save(tmp_path / "o.jpg", exif=exif, quality=100)
    rgb = load_rgb(tmp_path / "o.jpg")
    assert rgb.shape == (40, 20, 3)  # rotated
    assert rgb[5, 10, 0] > 200 and rgb[35, 10, 0] < 60  # red now on top


@pytest.mark.parametrize(
    "name,content,word",
    [
        ("empty.bmp", b"", "empty"),
        ("text.png", b"not an image at all\n" * 10, "not a readable image"),
        ("bomb.png", png_bomb_bytes(), "too large"),
        ("bomb_below_pillow_limit.png", png_bomb_bytes(8000, 8000), "too large"),
        ("notes.txt", b"hello", "unsupported file type"),
    ],
)
def test_bad_files_raise_a_reason(tmp_path, name, content, word):
    assert 8000 * 8000 > MAX_PIXELS
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ImageDecodeError, match=word):
        load_rgb(p)


def test_truncated_bmp(tmp_path, cell):
    cell.save(tmp_path / "full.bmp")
    data = (tmp_path / "full.bmp").read_bytes()
    (tmp_path / "t.bmp").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="truncated"):
        load_rgb(tmp_path / "t.bmp")


def test_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match="not found"):
        load_rgb(tmp_path / "nope.bmp")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")
def test_fifo_and_device_are_refused_without_reading(tmp_path):
    """load_rgb (thumbnails, tools) never blocks on a FIFO nor reads a device."""
    os.mkfifo(tmp_path / "pipe.bmp")
    os.symlink("/dev/zero", tmp_path / "zero.png")
    try:
        with pytest.raises(ImageDecodeError, match="not a regular file: a named pipe"):
            load_rgb(tmp_path / "pipe.bmp")
    finally:  # code that blocked on the FIFO gets its EOF: a failing test cannot hang
        try:
            os.close(os.open(tmp_path / "pipe.bmp", os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    with pytest.raises(ImageDecodeError, match="not a regular file: a character device"):
        load_rgb(tmp_path / "zero.png")


def test_bytes_and_path_give_the_same_pixels(tmp_path, cell):
    cell.save(tmp_path / "c.bmp")
    data = (tmp_path / "c.bmp").read_bytes()
    assert np.array_equal(np.asarray(open_rgb(tmp_path / "c.bmp", data)), load_rgb(tmp_path / "c.bmp"))


def test_preprocess_crop_resize_and_range(tmp_path, cell):
    cell.save(tmp_path / "c.bmp")
    spec = Preprocessing(64, 48, crop_fraction=0.5, resize_filter="bicubic")
    x = preprocess_file(tmp_path / "c.bmp", spec)
    assert x.shape == (64, 48, 3) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 255 and x.max() > 50
    # centre crop of half the side, then resize: same as doing it by hand with Pillow
    ref = cell.resize((48, 64), Image.Resampling.BICUBIC, box=(112.5, 112.5, 337.5, 337.5))
    assert np.array_equal(x, np.asarray(ref, dtype=np.float32))
    assert np.array_equal(x, preprocess_image(np.asarray(cell), spec))


def test_preprocessing_validation():
    with pytest.raises(ValueError):
        Preprocessing(4, 4)
    with pytest.raises(ValueError):
        Preprocessing(32, 32, crop_fraction=1.5)
    with pytest.raises(ValueError):
        Preprocessing(32, 32, resize_filter="magic")
    assert hash(Preprocessing(32, 32)) == hash(Preprocessing(32, 32))


def test_is_supported_is_case_insensitive():
    assert is_supported("a.BMP") and is_supported("x/y.Tiff") and is_supported("c.webp")
    assert not is_supported("notes.txt") and not is_supported("README")


def test_unreadable_bytes_in_memory_never_crash():
    buf = io.BytesIO()
    Image.new("RGB", (30, 30)).save(buf, "PNG")
    data = buf.getvalue()
    for cut in (8, 20, 40, len(data) // 2):
        with pytest.raises(ImageDecodeError):
            open_rgb("x.png", data[:cut])


def _off_centre_cell(side=450, cx=300, cy=160, r=60):
    a = np.zeros((side, side, 3), np.uint8)
    yy, xx = np.mgrid[:side, :side]
    a[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (150, 80, 170)
    return a


def test_cell_centroid_finds_the_cell_and_falls_back_to_the_centre():
    from engine.preprocess import cell_centroid

    cx, cy = cell_centroid(_off_centre_cell())
    assert abs(cx - 300) < 1 and abs(cy - 160) < 1
    assert cell_centroid(np.zeros((40, 60, 3), np.uint8)) == (29.5, 19.5)  # no foreground: the frame's centre
    assert cell_centroid(np.full((40, 60, 3), 255, np.uint8)) == (29.5, 19.5)  # all foreground: not a cell


def test_centroid_window_keeps_the_cell_centred_at_native_scale():
    spec = Preprocessing(96, 96, crop_mode="centroid", window_px=192)
    x = preprocess_image(_off_centre_cell(), spec)
    fg = x.max(axis=2) > 10
    ys, xs = np.nonzero(fg)
    assert abs(xs.mean() - 47.5) < 1.5 and abs(ys.mean() - 47.5) < 1.5  # centred although the cell is not
    # 192 native px -> 96: a radius-60 disc becomes radius ~30 (absolute size kept, only the window's scale)
    assert abs(fg.sum() - np.pi * 30 * 30) / (np.pi * 30 * 30) < 0.08
    # a window reaching beyond the frame is black there
    edge = preprocess_image(_off_centre_cell(cx=440, cy=10, r=20), spec)
    assert edge[:20].max() == 0 and edge[:, -20:].max() == 0


def test_crop_mode_round_trips_through_the_card_dict_and_is_validated():
    spec = Preprocessing(192, 192, crop_mode="centroid", window_px=288)
    d = spec.to_dict()
    assert d["crop_mode"] == "centroid" and d["window_px"] == 288
    assert Preprocessing.from_dict(d, 192, 192) == spec
    assert "crop_mode" not in Preprocessing(32, 32, 0.85).to_dict()  # older cards stay as they were
    assert Preprocessing.from_dict({"crop_fraction": 0.85}, 32, 32).crop_mode == "centre"
    with pytest.raises(ValueError, match="crop_mode"):
        Preprocessing(32, 32, crop_mode="bbox")
    with pytest.raises(ValueError, match="window_px"):
        Preprocessing(32, 32, crop_mode="centroid")
