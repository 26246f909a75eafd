"""build.spec's rules (packaging/bundle_rules.py), the bundle checker, version-from-one-place."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging"))

import bundle_rules as rules
import check_bundle

Q = "PySide6/Qt/plugins"


@pytest.mark.parametrize(
    "dest, keep",
    [
        (f"{Q}/platforms/libqxcb.so", True),
        (f"{Q}/platforms/libqoffscreen.so", True),
        (f"{Q}/platforms/libqwayland.so", True),
        (f"{Q}/platforms/qwindows.dll", True),
        (f"{Q}/platforms/libqcocoa.dylib", True),
        (f"{Q}/platforms/libqeglfs.so", False),
        (f"{Q}/platforms/libqvnc.so", False),
        (f"{Q}/platforms/libqlinuxfb.so", False),
        (f"{Q}/platformthemes/libqgtk3.so", False),
        (f"{Q}/platformthemes/libqxdgdesktopportal.so", True),
        (f"{Q}/imageformats/libqwebp.so", True),
        (f"{Q}/sqldrivers/libqsqlite.so", False),
        (f"{Q}/qmltooling/libqmldbg_server.so", False),
        (f"{Q}/tls/libqopensslbackend.so", False),
        ("PySide6/Qt/translations/qtbase_de.qm", False),
        ("PySide6\\Qt\\plugins\\platforms\\qdirect2d.dll", False),
        ("numpy/_core/_multiarray_umath.so", True),
        ("resources/models/inceptionv3.onnx", True),
    ],
)
def test_keep_qt_file(dest, keep):
    assert rules.keep_qt_file(dest) is keep


def test_prune_unreferenced_keeps_transitive_needs_only():
    toc = [
        ("PySide6/Qt/plugins/platforms/libqxcb.so", "/s/libqxcb.so", "BINARY"),
        ("PySide6/Qt/lib/libQt6XcbQpa.so.6", "/s/libQt6XcbQpa.so.6", "BINARY"),
        ("PySide6/Qt/lib/libQt6Network.so.6", "/s/libQt6Network.so.6", "BINARY"),
        ("libxcb-cursor.so.0", "/s/libxcb-cursor.so.0", "BINARY"),
        ("libgssapi_krb5.so.2", "/s/libgssapi_krb5.so.2", "BINARY"),
        ("libpython3.11.so.1.0", "/s/libpython3.11.so.1.0", "BINARY"),
        ("resources/models/m.onnx", "/s/m.onnx", "DATA"),
    ]
    needs = {
        "/s/libqxcb.so": ["libQt6XcbQpa.so.6"],
        "/s/libQt6XcbQpa.so.6": ["libxcb-cursor.so.0"],  # only reachable through XcbQpa
        "/s/libQt6Network.so.6": ["libgssapi_krb5.so.2"],
    }
    kept, dropped = rules.prune_unreferenced(toc, lambda src: needs.get(src, []))
    names = {e[0] for e in kept}
    assert dropped == ["PySide6/Qt/lib/libQt6Network.so.6", "libgssapi_krb5.so.2"]
    assert {"libxcb-cursor.so.0", "PySide6/Qt/lib/libQt6XcbQpa.so.6", "libpython3.11.so.1.0"} <= names
    assert "resources/models/m.onnx" in names


def test_training_stack_and_tests_are_excluded_from_the_bundle():
    for mod in ("tensorflow", "keras", "tf2onnx", "onnx", "training", "tests", "matplotlib", "sklearn"):
        assert mod in rules.EXCLUDED_MODULES
    assert "onnxruntime" not in rules.EXCLUDED_MODULES
    for qt in ("QtCore", "QtGui", "QtWidgets", "QtSvg"):
        assert f"PySide6.{qt}" not in rules.QT_EXCLUDED_MODULES


def test_version_comes_from_pyproject_everywhere():
    with open(REPO / "pyproject.toml", "rb") as fh:
        version = tomllib.load(fh)["project"]["version"]
    import engine

    assert engine.__version__ == version, "engine.__version__ must match pyproject.toml (build.spec refuses otherwise)"
    assert metadata.version("leukoscan") == version, "installed metadata is stale: pip install -e ."
    from engine.selftest import app_version

    assert app_version() == version


# --------------------------------------------------------------------------- check_bundle on a fake bundle


def _fake_bundle(root: Path, models: Path, variant: str = "cpu", extra: dict[str, bytes] | None = None) -> Path:
    b = root / "LeukoScan"
    files = {
        "LeukoScan": b"\x7fELF fake",
        "leukoscan-cli": b"\x7fELF fake",
        "_internal/resources/build_info.json": json.dumps({"variant": variant, "version": "9.9"}).encode(),
        "_internal/resources/samples/manifest.csv": b"file,expected_class,subject\n",
        "_internal/docs/user_guide.md": b"# LeukoScan user guide\n",
        "_internal/PySide6/Qt/plugins/platforms/libqxcb.so": b"x",
        "_internal/PySide6/Qt/plugins/platforms/libqoffscreen.so": b"x",
        "install-desktop.sh": b"#!/bin/sh\n",
        "leukoscan.desktop.in": b"[Desktop Entry]\n",
        "leukoscan-mime.xml": b"<mime-info/>\n",
        **(extra or {}),
    }
    for p in models.iterdir():
        files[f"_internal/resources/models/{p.name}"] = p.read_bytes()
    for rel, data in files.items():
        (b / rel).parent.mkdir(parents=True, exist_ok=True)
        (b / rel).write_bytes(data)
    return b


@pytest.fixture
def models(tmp_path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    onnx = b"not really onnx but hashed"
    (d / "m.onnx").write_bytes(onnx)
    (d / "m.json").write_text(json.dumps({"onnx_file": "m.onnx", "sha256": hashlib.sha256(onnx).hexdigest()}))
    return d


MODULES = [
    "engine.offline",
    "engine.selftest",
    "engine.preprocess",
    "engine.cli",
    "engine.cli.classify",
    "onnxruntime",
    "PIL.Image",
    "numpy",
    "gui.app",
]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fake bundle uses Linux plugin names")
def test_check_bundle_accepts_a_clean_bundle(tmp_path, models):
    b = _fake_bundle(tmp_path, models)
    problems, summary = check_bundle.check(b, "cpu", 350, models, modules=MODULES)
    assert problems == [] and summary["variant"] == "cpu"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fake bundle uses Linux plugin names")
def test_check_bundle_reports_every_kind_of_problem(tmp_path, models):
    extra = {
        "_internal/tensorflow/libtensorflow_cc.so.2": b"x",
        "_internal/onnxruntime/capi/libonnxruntime_providers_cuda.so": b"x",
        "_internal/big.bin": b"\0" * (2 * 1024 * 1024),
    }
    b = _fake_bundle(tmp_path, models, variant="gpu", extra=extra)
    (b / "_internal/resources/models/m.onnx").write_bytes(b"tampered")
    (b / "_internal/PySide6/Qt/plugins/platforms/libqxcb.so").unlink()
    (b / "leukoscan-cli").unlink()
    modules = [m for m in MODULES if m not in ("engine.offline", "engine.cli")] + ["keras.src", "training.export"]
    problems, _ = check_bundle.check(b, "cpu", 1, models, modules=modules)
    text = "\n".join(problems)
    assert "module engine.offline missing" in text  # onnxruntime telemetry would be on in the bundle
    assert "executable leukoscan-cli missing" in text and "module engine.cli missing" in text
    assert "variant 'gpu', expected 'cpu'" in text
    assert "m.onnx does not match the sha256" in text
    assert "libqxcb.so missing" in text
    assert "tensorflow/libtensorflow_cc.so.2" in text and "providers_cuda" in text
    assert "keras.src" in text and "training.export" in text
    assert "over the 1 MB limit" in text
    # the GPU variant may carry CUDA providers
    problems, _ = check_bundle.check(b, "gpu", None, models, modules=MODULES)
    assert not any("providers_cuda" in p for p in problems)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fake bundle uses Linux plugin names")
def test_warn_size_downgrades_only_the_size_problem(tmp_path, models, monkeypatch, capsys):
    b = _fake_bundle(tmp_path, models, extra={"_internal/big.bin": b"\0" * (2 * 1024 * 1024)})
    monkeypatch.setattr(check_bundle, "frozen_modules", lambda exe: MODULES)
    assert check_bundle.main([str(b), "--models", str(models), "--max-mb", "1"]) == 1
    assert "over the 1 MB limit" in capsys.readouterr().out
    assert check_bundle.main([str(b), "--models", str(models), "--max-mb", "1", "--warn-size"]) == 0
    assert "WARNING: bundle is" in capsys.readouterr().out
    (b / "_internal/resources/models/m.onnx").write_bytes(b"tampered")
    assert check_bundle.main([str(b), "--models", str(models), "--max-mb", "1", "--warn-size"]) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="shell scripts stand in for the executables")
def test_run_cli_classifies_the_sample_cells_through_the_bundle(
    tmp_path, cells_dir, tiny_models_dir, capsys, _no_bundled_models
):
    """check_bundle --run-cli: the bundle's leukoscan-cli (here a script running the CLI on the fake bundle's
    resources, as the frozen one does) classifies the sample cells as the manifest says; a wrong answer fails."""
    from engine.cli import main as cli_main

    b = _fake_bundle(tmp_path, tiny_models_dir)
    samples = b / "_internal/resources/samples"
    for p in cells_dir.iterdir():
        shutil.copy(p, samples / p.name)
    res = b / "_internal/resources"
    for name, run in (("leukoscan-cli", "-m engine.cli"), ("LeukoScan", str(REPO / "packaging/leukoscan_launcher.py"))):
        (b / name).write_text(f'#!/bin/sh\nLEUKOSCAN_RESOURCES_DIR="{res}" exec "{sys.executable}" {run} "$@"\n')
        (b / name).chmod(0o755)
    assert (
        cli_main(
            [
                "classify",
                str(cells_dir),
                "--out",
                str(tmp_path / "truth.csv"),
                "--models-dir",
                str(tiny_models_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    with open(tmp_path / "truth.csv", newline="", encoding="utf-8") as fh:
        truth = [(r["file"], r["final_label"]) for r in csv.DictReader(fh)]
    manifest = samples / "manifest.csv"
    manifest.write_text("file,expected_class,subject\n" + "".join(f"{f},{c},s{i}\n" for i, (f, c) in enumerate(truth)))
    assert check_bundle.run_cli(b) == []
    flipped = {"ALL": "HEM", "HEM": "ALL"}[truth[0][1]]
    manifest.write_text(manifest.read_text().replace(f"{truth[0][0]},{truth[0][1]},", f"{truth[0][0]},{flipped},"))
    problems = check_bundle.run_cli(b)
    assert len(problems) == 1 and f"{truth[0][0]}: {truth[0][1]} (expected {flipped})" in problems[0]
    (b / "leukoscan-cli").unlink()
    assert check_bundle.run_cli(b) == ["executable leukoscan-cli missing (the headless CLI)"]


def test_a_bundle_without_the_user_guide_is_refused(tmp_path, tiny_models_dir):
    """Help > User guide shows docs/user_guide.md from the bundle (build.spec puts it there)."""
    b = _fake_bundle(tmp_path, tiny_models_dir)
    (b / "_internal" / "docs" / "user_guide.md").unlink()
    problems, _ = check_bundle.check(b, "cpu", 350, tiny_models_dir, modules=MODULES)
    assert "docs/user_guide.md missing (Help > User guide)" in problems
    assert 'GUIDE = ROOT / "docs" / "user_guide.md"' in (REPO / "build.spec").read_text(encoding="utf-8")
