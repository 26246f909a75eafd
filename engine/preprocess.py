"""The one function that turns an image file into a model input.

Training (``training/``) and the app call exactly these functions, so a model sees the same pixels
when it is trained and when it is used.  Everything here is deterministic and thread-safe.

Pipeline: decode (BMP, PNG, JPEG, TIFF, WebP; extensions case-insensitive) -> EXIF orientation ->
8-bit RGB (grayscale, RGBA, palette, 16-bit, CMYK ... converted; transparency composited onto black,
the background of C-NMC cells) -> the crop (``crop_mode``: ``"centre"``, a square centre crop of ``crop_fraction`` of the
shorter side; ``"centroid"``, a square window of ``window_px`` native pixels centred on the cell's
centroid, black beyond the frame: it keeps the cell's absolute size *and* its detail and drops the empty
border) -> resize to the model's input size with the card's filter -> float32 HxWx3 in [0, 255].

Normalisation (scaling to [-1, 1], mean subtraction ...) lives inside the model graph, never here.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .fileio import FileRefused, describe_os_error, read_regular_file

#: File extensions the engine reads (compared lower-case).
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".bmp", ".dib", ".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".webp"}
)

#: Largest image accepted, in pixels.  C-NMC cells are 450x450 (0.2 MP); anything above this is
#: refused as a likely decompression bomb before its pixels are decoded.
MAX_PIXELS = 40_000_000
# Pillow warns (DecompressionBombWarning, on stderr) while opening an image above its own limit (89 M pixels),
# before decode_file refuses it above MAX_PIXELS with a clear error row: the raw warning says nothing more.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

RESIZE_FILTERS: Mapping[str, int] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


_ORIENTATION = 0x0112  # EXIF tag

#: How the model's square is cut from the image (see the module docstring).
CROP_MODES: frozenset[str] = frozenset({"centre", "centroid"})

#: A pixel is part of the cell when any channel is above this (0-255); the C-NMC background is black.
FOREGROUND_LEVEL = 10


class ImageDecodeError(Exception):
    """A single file could not be turned into a model input.  ``str(err)`` is a reason for a user."""


def is_supported(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes a model input; stored in every model card."""

    height: int
    width: int
    crop_fraction: float = 1.0
    resize_filter: str = "bilinear"
    crop_mode: str = "centre"  # "centre" | "centroid" (see the module docstring)
    window_px: int = 0  # "centroid": side of the window in native pixels

    def __post_init__(self) -> None:
        if not (isinstance(self.height, int) and isinstance(self.width, int)):
            raise ValueError("height and width must be integers")
        if self.height < 8 or self.width < 8:
            raise ValueError(f"input size {self.height}x{self.width} is too small")
        if not (0.05 <= float(self.crop_fraction) <= 1.0):
            raise ValueError(f"crop_fraction must be in [0.05, 1], got {self.crop_fraction}")
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"unknown crop_mode {self.crop_mode!r}; use one of {sorted(CROP_MODES)}")
        if self.crop_mode == "centroid" and not (isinstance(self.window_px, int) and 16 <= self.window_px <= 4096):
            raise ValueError(f"crop_mode 'centroid' needs window_px in [16, 4096], got {self.window_px!r}")
        if self.resize_filter not in RESIZE_FILTERS:
            raise ValueError(f"unknown resize_filter {self.resize_filter!r}; use one of {sorted(RESIZE_FILTERS)}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], height: int, width: int) -> Preprocessing:
        return cls(
            height=int(height),
            width=int(width),
            crop_fraction=float(d.get("crop_fraction", 1.0)),
            resize_filter=str(d.get("resize_filter", "bilinear")),
            crop_mode=str(d.get("crop_mode", "centre")),
            window_px=int(d.get("window_px", 0)),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"crop_fraction": self.crop_fraction, "resize_filter": self.resize_filter}
        if self.crop_mode != "centre":  # cards written before crop modes existed stay byte-identical
            d.update(crop_mode=self.crop_mode, window_px=self.window_px)
        return d


#: The eight symmetries of a square image (see :func:`dihedral`).
DIHEDRAL_VIEWS: tuple[int, ...] = tuple(range(8))


def dihedral(batch: np.ndarray, k: int) -> np.ndarray:
    """View ``k`` (0-7) of an NHWC batch: rotation by 90*(k % 4) degrees, then a horizontal flip when k >= 4.

    A single cell has no preferred orientation, so these are the training augmentations and the test-time
    augmentation views a model card may ask for (``test_time_augmentation``).  View 0 is the identity.
    """
    if int(k) not in DIHEDRAL_VIEWS:
        raise ValueError(f"dihedral view must be 0-7, got {k!r}")
    y = np.rot90(batch, int(k) % 4, axes=(1, 2))
    if k >= 4:
        y = y[:, :, ::-1]
    return np.ascontiguousarray(y)


def _to_rgb8(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB.  Transparency is composited onto black."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.int64)
        # 16-bit (or 32-bit integer) samples: map the 16-bit range onto 8 bits.
        arr = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr * scale), 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if mode == "1":
        return im.convert("L").convert("RGB")
    return im.convert("RGB")


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to an 8-bit RGB array (H, W, 3), EXIF orientation applied.

    Raises :class:`ImageDecodeError` with a readable reason for anything that is not a usable image
    (missing, empty, not an image, truncated, too large, unsupported extension, not a regular file).
    The file is opened read-only and never modified; a FIFO or device is never read.
    """
    return np.asarray(_open_rgb(path))


def open_rgb(path: str | Path, data: bytes | None = None) -> Image.Image:
    """Decode an image file to an 8-bit RGB Pillow image (EXIF orientation applied).

    ``data``: the file's bytes when the caller already read them (the pipeline reads each file once,
    for its sha256 and its pixels); ``path`` then only names the file and gives its extension.
    Raises :class:`ImageDecodeError` like :func:`load_rgb`.
    """
    return _open_rgb(path, data)


def _open_rgb(path: str | Path, data: bytes | None = None) -> Image.Image:
    p = Path(path)
    if not is_supported(p):
        raise ImageDecodeError(f"unsupported file type '{p.suffix or '(none)'}'")
    if data is None:
        try:
            data = read_regular_file(p)
        except FileRefused as exc:
            raise ImageDecodeError(str(exc)) from None
        except FileNotFoundError:
            raise ImageDecodeError("file not found") from None
        except OSError as exc:
            raise ImageDecodeError(f"cannot read file: {describe_os_error(exc)}") from None
    if len(data) == 0:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with io.BytesIO(data) as fh, Image.open(fh) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageDecodeError(
                    f"image too large ({w}x{h} pixels, limit {MAX_PIXELS:,}): possible decompression bomb"
                )
            im.load()
            if im.format != "BMP" and im.getexif().get(_ORIENTATION, 1) != 1:
                return _to_rgb8(ImageOps.exif_transpose(im))  # (a copy: only when there is something to rotate)
            return _to_rgb8(im)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image too large: possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not a readable image (unknown or corrupt format)") from None
    except OSError as exc:
        msg = str(exc) or exc.__class__.__name__
        if "truncated" in msg.lower():
            raise ImageDecodeError("image file is truncated") from None
        raise ImageDecodeError(f"cannot decode image: {msg}") from None
    except (ValueError, SyntaxError, MemoryError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from None


def preprocess_image(im: Image.Image | np.ndarray, spec: Preprocessing) -> np.ndarray:
    """8-bit RGB image -> float32 (height, width, 3) in [0, 255] per ``spec`` (crop, then resize)."""
    if isinstance(im, np.ndarray):
        if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
            raise ValueError("expected a uint8 (H, W, 3) RGB array")
        im = Image.fromarray(im, "RGB")
    if im.mode != "RGB":
        im = _to_rgb8(im)
    size, resample = (spec.width, spec.height), RESIZE_FILTERS[spec.resize_filter]
    box = crop_box(im, spec)
    if spec.crop_mode == "centroid":
        window = im.crop(box)  # black beyond the frame
        return np.asarray(window.resize(size, resample=resample), dtype=np.float32)
    return np.asarray(im.resize(size, resample=resample, box=box), dtype=np.float32)


def crop_box(im: Image.Image, spec: Preprocessing) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) in the image's pixels of the square the model sees (it may reach beyond the
    frame in centroid mode): :func:`preprocess_image` crops it, and the class-activation overlay (``engine.cam``)
    is drawn over it."""
    if spec.crop_mode == "centroid":
        cx, cy = cell_centroid(np.asarray(im))
        half = spec.window_px / 2.0
        x0, y0 = int(round(cx - half)), int(round(cy - half))
        return (x0, y0, x0 + spec.window_px, y0 + spec.window_px)
    w, h = im.size
    side = min(w, h) * float(spec.crop_fraction)
    left = (w - side) / 2.0
    top = (h - side) / 2.0
    return (left, top, left + side, top + side)


def cell_centroid(rgb: np.ndarray) -> tuple[float, float]:
    """(x, y) centre of mass of the foreground (any channel > FOREGROUND_LEVEL) of an (H, W, 3) uint8 image;
    the frame's centre when there is no foreground or everything is foreground (not a segmented cell)."""
    h, w = rgb.shape[:2]
    fg = rgb.max(axis=2) > FOREGROUND_LEVEL
    n = int(fg.sum())
    if n == 0 or n == fg.size:
        return (w - 1) / 2.0, (h - 1) / 2.0
    ys, xs = np.nonzero(fg)
    return float(xs.mean()), float(ys.mean())


def preprocess_file(path: str | Path, spec: Preprocessing) -> np.ndarray:
    """File -> model input (float32, (height, width, 3), values 0-255).  THE shared function.

    Raises :class:`ImageDecodeError` for an unusable file.
    """
    return preprocess_image(_open_rgb(path), spec)
