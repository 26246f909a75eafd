"""engine.selftest: the bundle's `--self-test` (manifest parsing, verdicts, exit codes)."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tinymodels import make_tiny_ensemble, make_tiny_model

from engine import selftest
from engine.preprocess import load_rgb
from engine.registry import Registry

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "resources" / "samples"


def _write_samples(d: Path, rows: list[tuple[str, str, str, int]]) -> Path:
    """rows: (file, expected_class, subject, grey level). The tiny seed-0 model says ALL for bright
    cells (logit = 150 * (mean - 0.04)): grey 128 -> P(ALL) ~ 1, grey 0 -> P(ALL) ~ 0.0025."""
    d.mkdir(parents=True, exist_ok=True)
    for name, _cls, _subj, grey in rows:
        Image.fromarray(np.full((64, 64, 3), grey, np.uint8), "RGB").save(d / name)
    with open(d / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "expected_class", "subject"])
        w.writerows([(n, c, s) for n, c, s, _g in rows])
    return d


GOOD = [
    ("a1.png", "ALL", "1", 128),
    ("a2.bmp", "ALL", "2", 200),
    ("h1.png", "HEM", "H1", 0),
    ("h2.webp", "HEM", "H2", 0),
]


@pytest.fixture
def toy_models(tmp_path) -> Path:
    d = tmp_path / "models"
    make_tiny_model(d, "tiny_a", size=32, seed=0)
    make_tiny_model(d, "tiny_c", size=24, seed=0, crop_fraction=0.5)
    make_tiny_ensemble(d, ["tiny_a", "tiny_c"], name="tiny_ens")
    return d


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = selftest.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_pass_one_verdict_line_on_stdout(tmp_path, toy_models, capsys):
    samples = _write_samples(tmp_path / "s", GOOD)
    rc, out, err = _run(capsys, "--self-test", "--models-dir", str(toy_models), "--samples-dir", str(samples))
    assert rc == 0, out + err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("LeukoScan ") and " self-test: PASS - 3 model(s) x 4 sample cells" in lines[0]
    assert "[CPU," in lines[0]
    # details (one line per model and cell) go to stderr
    assert err.count("expected ALL") == 6 and err.count("expected HEM") == 6


def test_wrong_class_fails_and_names_the_cell(tmp_path, toy_models, capsys):
    rows = [r if r[0] != "h2.webp" else ("h2.webp", "HEM", "H2", 255) for r in GOOD]  # bright "HEM" cell
    samples = _write_samples(tmp_path / "s", rows)
    rc, out, _ = _run(capsys, "--models-dir", str(toy_models), "--samples-dir", str(samples))
    assert rc == 1
    assert "self-test: FAIL - " in out and "h2.webp: expected HEM, got ALL" in out


def test_cell_in_review_band_is_drift(tmp_path, toy_models, capsys):
    # grey 10 -> mean 0.039 -> P(ALL) ~ 0.46: HEM as expected but within the review margin of 0.5
    rows = GOOD[:3] + [("h2.png", "HEM", "H2", 10)]
    samples = _write_samples(tmp_path / "s", rows)
    rc, out, _ = _run(capsys, "--models-dir", str(toy_models), "--samples-dir", str(samples), "-q")
    assert rc == 1 and "inside the review band" in out


def test_corrupted_model_and_missing_models_fail(tmp_path, toy_models, capsys):
    samples = _write_samples(tmp_path / "s", GOOD)
    onnx = toy_models / "tiny_c.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    rc, out, _ = _run(capsys, "--models-dir", str(toy_models), "--samples-dir", str(samples))
    assert rc == 1 and "invalid model card" in out and "sha256 mismatch" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, out, _ = _run(capsys, "--models-dir", str(empty), "--samples-dir", str(samples))
    assert rc == 1 and "no usable model found" in out


def test_cuda_required_fails_cleanly_without_cuda(tmp_path, toy_models, capsys):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA onnxruntime")
    samples = _write_samples(tmp_path / "s", GOOD)
    rc, out, err = _run(capsys, "--models-dir", str(toy_models), "--samples-dir", str(samples), "--device", "cuda")
    assert rc == 1
    assert "CUDA was required but the model runs on CPU" in out
    rc, out, _ = _run(capsys, "--models-dir", str(toy_models), "--samples-dir", str(samples), "--device", "auto")
    assert rc == 0 and "[CPU," in out


def test_output_file_gets_details_and_verdict(tmp_path, toy_models, capsys):
    samples = _write_samples(tmp_path / "s", GOOD)
    report = tmp_path / "selftest.txt"
    rc, out, _ = _run(capsys, "--models-dir", str(toy_models), "--samples-dir", str(samples), "--output", str(report))
    text = report.read_text(encoding="utf-8")
    assert rc == 0 and text.strip().endswith(out.strip()) and "tiny_ens" in text


@pytest.mark.parametrize(
    "manifest, message",
    [
        (None, "sample manifest not found"),
        ("file,expected_class,subject\na1.png,BLAST,1\n", "expected_class must be ALL or HEM"),
        ("file,expected_class,subject\nmissing.png,ALL,1\n", "sample file missing.png is missing"),
        ("name,class\na1.png,ALL\n", "header must contain"),
        ("file,expected_class,subject\na1.png,ALL,1\n", "both classes"),
    ],
)
def test_bad_manifest_is_a_clear_fail(tmp_path, toy_models, capsys, manifest, message):
    d = _write_samples(tmp_path / "s", GOOD)
    if manifest is None:
        (d / "manifest.csv").unlink()
    else:
        (d / "manifest.csv").write_text(manifest, encoding="utf-8")
    rc, out, _ = _run(capsys, "--models-dir", str(toy_models), "--samples-dir", str(d))
    assert rc == 1 and message in out and out.count("\n") == 1


# --------------------------------------------------------------------------- the bundled sample cells


def test_bundled_samples_are_real_cells_of_distinct_subjects():
    samples = selftest.read_manifest(SAMPLES)
    assert len(samples) >= 6
    for cls in ("ALL", "HEM"):
        subj = [s.subject for s in samples if s.expected == cls]
        assert len(subj) >= 3 and len(set(subj)) == len(subj), f"{cls}: one cell per subject"
    for s in samples:
        arr = load_rgb(s.path)
        assert arr.shape == (450, 450, 3), s.path.name
        stem_cls = s.path.stem.rsplit("_", 1)[-1].upper()
        assert stem_cls == s.expected, f"{s.path.name}: file name and expected class disagree"
        assert s.path.stem.split("_")[1].upper() == s.subject.upper()
    # the three decoders a lab's files need in the bundle are exercised
    assert {s.path.suffix.lower() for s in samples} >= {".png", ".bmp", ".webp"}


def test_bundled_samples_are_pixel_identical_to_the_dataset(shared_data_dir):
    for s in selftest.read_manifest(SAMPLES):
        src = list((shared_data_dir / "training_data").glob(f"fold_*/*/{s.path.stem}.*"))
        assert len(src) == 1, s.path.name
        assert (
            hashlib.sha256(load_rgb(src[0]).tobytes()).digest() == hashlib.sha256(load_rgb(s.path).tobytes()).digest()
        )


def test_shipped_models_pass_on_the_bundled_samples(capsys):
    """The release check itself: every shipped model classifies every sample cell as expected."""
    reg = Registry([REPO / "resources" / "models"])
    if not reg.cards() and not reg.problems:
        pytest.skip("no model shipped in resources/models yet")
    rc, out, err = _run(capsys, "--models-dir", str(REPO / "resources" / "models"), "--device", "cpu")
    assert rc == 0, out + err


def test_module_entry_point_runs_headless_without_qt(tmp_path, toy_models):
    samples = _write_samples(tmp_path / "s", GOOD)
    code = (
        "import sys, engine.selftest as st; rc = st.main(sys.argv[1:]); "
        "assert 'PySide6' not in sys.modules, 'self-test imported Qt'; sys.exit(rc)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "--models-dir", str(toy_models), "--samples-dir", str(samples)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].split(" self-test: ")[1].startswith("PASS")
