"""Shared fixtures: isolated user folder, tiny real ONNX models, real cells, the bad-input folder.

- Every test runs with ``LEUKOSCAN_DATA_DIR`` pointing at its own empty temporary folder, so nothing
  reads or writes the real user data/models folder.
- ``tiny_models_dir``: a folder with two tiny real ONNX models and an ensemble card
  (``tiny_a``: 32x32, seed 0; ``tiny_b``: 48x48, seed 3, crop 0.8; ``tiny_ensemble`` = both).
  Use ``Registry(dirs=[tiny_models_dir])``.
- ``cells_dir``: a folder of the eight real C-NMC cells in ``tests/data/cells`` converted to BMP.
- ``bad_input``: a folder mixing real cells in many formats with broken files (see :func:`build_bad_input`).
- ``shared_data_dir``: ``../shared/data/C-NMC_Leukemia`` beside the repository; skips when absent.
"""

from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
DATA_DIR = TESTS_DIR / "data"
CELLS_SRC = DATA_DIR / "cells"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "C-NMC_Leukemia"

if str(TESTS_DIR) not in sys.path:  # `import tinymodels` from any test module
    sys.path.insert(0, str(TESTS_DIR))

# isort: off
import engine  # noqa: F401 - first: onnxruntime's telemetry off (engine/offline.py) before a test imports it
from tinymodels import make_tiny_ensemble, make_tiny_model

# isort: on

TINY_A = dict(name="tiny_a", size=32, seed=0)
TINY_B = dict(name="tiny_b", size=48, seed=3, crop_fraction=0.8)


@pytest.fixture(autouse=True)
def _isolated_user_data(monkeypatch, tmp_path_factory):
    """Never touch the real per-user LeukoScan folder from a test."""
    monkeypatch.setenv("LEUKOSCAN_DATA_DIR", str(tmp_path_factory.mktemp("leukoscan-user-data")))


@pytest.fixture
def _no_bundled_models(monkeypatch, tmp_path_factory):
    """Model look-ups see only the models a test gives (the shipped ones are tested in test_bundled_models)."""
    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path_factory.mktemp("no-bundled-resources")))


@pytest.fixture
def tiny_models_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny-models")
    make_tiny_model(d, **TINY_A)
    make_tiny_model(d, **TINY_B)
    make_tiny_ensemble(d, ["tiny_a", "tiny_b"], name="tiny_ensemble")
    return d


def real_cell_sources() -> list[Path]:
    return sorted(CELLS_SRC.glob("*.webp"))


def rgb_of(src: Path) -> Image.Image:
    with Image.open(src) as im:
        return im.convert("RGB")


@pytest.fixture
def cells_dir(tmp_path_factory) -> Path:
    """Eight real cells as 24-bit BMP (the format labs have), in a folder named ``cells``."""
    d = tmp_path_factory.mktemp("cells-root") / "cells"
    d.mkdir()
    for src in real_cell_sources():
        rgb_of(src).save(d / f"{src.stem}.bmp")
    return d


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"C-NMC development data not found at {SHARED_DATA} (expected ../shared beside the repo)")
    return SHARED_DATA


# ----------------------------------------------------------------------------------------------------
# The bad-input folder
# ----------------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb_bytes(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid-looking PNG that declares ``width x height`` grey pixels in a few hundred bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)  # first 4 rows only
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


@dataclass
class BadInput:
    """``path``: the folder to classify.  Paths below are relative to it, with '/' separators."""

    path: Path
    ok: set[str] = field(default_factory=set)  # must be classified
    errors: dict[str, str] = field(default_factory=dict)  # must be an error row; value: word in reason
    skipped: set[str] = field(default_factory=set)  # must not be a row at all

    @property
    def rows(self) -> set[str]:
        return self.ok | set(self.errors)


def build_bad_input(root: Path) -> BadInput:
    """Real cells in every supported flavour + every kind of broken/irrelevant file."""
    root.mkdir(parents=True, exist_ok=True)
    srcs = real_cell_sources()
    cells = [rgb_of(s) for s in srcs]
    b = BadInput(root)

    def ok(rel: str, save) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        save(p)
        b.ok.add(rel)

    def bad(rel: str, content: bytes, reason_word: str) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        b.errors[rel] = reason_word

    def skip(rel: str, content: bytes) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        b.skipped.add(rel)

    # Good cells, many formats and names.
    ok(f"{srcs[0].stem}.bmp", lambda p: cells[0].save(p))
    ok(f"{srcs[1].stem}.BMP", lambda p: cells[1].save(p, format="BMP"))  # upper-case extension
    ok("Zelle ñ 細胞 01.bmp", lambda p: cells[2].save(p))  # unicode + spaces
    ok("sub folder/deeper/cell in nested.bmp", lambda p: cells[3].save(p))  # nested folders
    ok("formats/rgba.png", lambda p: cells[4].convert("RGBA").save(p))
    ok(
        "formats/gray16.png",
        lambda p: Image.fromarray(np.asarray(cells[5].convert("L"), dtype=np.uint16) * 257).save(p),
    )
    ok("formats/gray.jpg", lambda p: cells[6].convert("L").save(p, quality=95))
    ok("formats/cell.tiff", lambda p: cells[7].save(p))
    ok("formats/cell.webp", lambda p: cells[0].save(p, lossless=True))
    ok("formats/palette.png", lambda p: cells[1].convert("P", palette=Image.Palette.ADAPTIVE).save(p))

    # Broken files: each one is a row with status "error" and a reason.
    bmp = (root / f"{srcs[0].stem}.bmp").read_bytes()
    bad("broken/empty.bmp", b"", "empty")
    bad("broken/truncated.bmp", bmp[: len(bmp) // 3], "truncated")
    bad("broken/text pretending.png", b"This is a lab note, not an image.\n" * 20, "not a readable image")
    bad("broken/bomb.png", png_bomb_bytes(), "too large")

    # Never rows: hidden files and folders, non-image files.
    skip(".hidden_cell.bmp", bmp)
    skip(".thumbnails/cell.bmp", bmp)
    skip("notes.txt", b"patient notes\n")
    skip("Thumbs.db", b"\x00" * 64)
    return b


@pytest.fixture
def bad_input(tmp_path_factory) -> BadInput:
    return build_bad_input(tmp_path_factory.mktemp("bad-input-root") / "slide 01")


@pytest.fixture
def locked_folders(monkeypatch):
    """Folders named ``locked`` cannot be listed (PermissionError from the engine's ``os.scandir``), as an
    unreadable sub-folder on a share behaves; root ignores chmod, so the scan is faked instead."""
    import os

    from engine import pipeline

    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(pipeline.os, "scandir", scandir)
