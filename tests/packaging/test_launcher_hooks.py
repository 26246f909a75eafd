"""The bundle's entry script (display pre-flight of gui.preflight, headless self-test), the GPU runtime
hook and the Linux desktop entry installer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging"))

import leukoscan_launcher as launcher

from gui import preflight

HOOK = REPO / "packaging" / "rthooks" / "rthook_onnxruntime_gpu.py"


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({}, "no graphical display found"),
        ({"QT_QPA_PLATFORM": "offscreen"}, None),
        ({"QT_QPA_PLATFORM": "wayland"}, "WAYLAND_DISPLAY is not set"),
        ({"QT_QPA_PLATFORM": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, None),
        ({"WAYLAND_DISPLAY": "wayland-0"}, None),
    ],
)
def test_display_preflight(env, fragment):
    problem = preflight.linux_display_problem(env)
    assert (problem is None) if fragment is None else (fragment in problem)


def test_missing_xcb_libraries_are_named_with_the_packages_to_install(monkeypatch):
    missing = ["libxcb-cursor.so.0", "libGL.so.1"]
    monkeypatch.setattr(preflight, "missing_libraries", lambda names=None, bundle_dir=None: missing)
    problem = preflight.linux_display_problem({"DISPLAY": ":0"})
    assert "libxcb-cursor.so.0, libGL.so.1" in problem and problem.endswith(
        "sudo apt-get install libxcb-cursor0 libgl1"
    )
    monkeypatch.setattr(preflight, "missing_libraries", lambda names=None, bundle_dir=None: [])
    assert preflight.linux_display_problem({"DISPLAY": ":0"}) is None


def test_missing_libraries_looks_in_the_bundle_and_the_system(tmp_path):
    (tmp_path / "libonly-in-bundle.so.1").write_bytes(b"")
    names = ("libonly-in-bundle.so.1", "libc.so.6", "libdefinitely-not-there-leukoscan.so.9")
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux loader names")
    assert preflight.missing_libraries(names, bundle_dir=tmp_path) == ["libdefinitely-not-there-leukoscan.so.9"]


def test_startup_error_is_logged_for_double_click_users(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    for moved in ("LEUKOSCAN_DATA_DIR", "LEUKOSCAN_LOG_DIR"):  # the platform's log folder, as on a workstation
        monkeypatch.delenv(moved, raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux pre-flight")
    assert launcher.main([]) == 2
    assert "LeukoScan cannot start: no graphical display found" in capsys.readouterr().err
    logs = list(tmp_path.rglob("startup-error.log"))
    assert logs and "no graphical display" in logs[0].read_text()


def test_self_test_and_version_never_load_qt(tmp_path):
    code = (
        "import sys; sys.path.insert(0, 'packaging'); import leukoscan_launcher as l; "
        "rc = l.main(sys.argv[1:]); assert 'PySide6' not in sys.modules; sys.exit(rc)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-c", code, "--version"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("LeukoScan "), r.stderr
    empty = tmp_path / "none"
    empty.mkdir()
    r = subprocess.run(
        [sys.executable, "-c", code, "--self-test", "--models-dir", str(empty), "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    assert "self-test: FAIL - no usable model found" in r.stdout


# --------------------------------------------------------------------------- GPU runtime hook


def test_gpu_hook_puts_bundled_cuda_folders_on_the_search_path_and_never_raises(tmp_path):
    meipass = tmp_path / "_internal"
    for d in ("onnxruntime/capi", "nvidia/cublas/lib", "nvidia/cudnn/lib", "nvidia/cuda_runtime/lib"):
        (meipass / d).mkdir(parents=True)
    code = (
        "import os, sys, runpy; sys._MEIPASS = sys.argv[1]; runpy.run_path(sys.argv[2]); "
        "print(os.environ.get('LD_LIBRARY_PATH' if sys.platform != 'win32' else 'PATH')); "
        "print(os.environ['LEUKOSCAN_GPU_PRELOAD'])"
    )
    env = dict(os.environ, LD_LIBRARY_PATH="/opt/existing")
    r = subprocess.run([sys.executable, "-c", code, str(meipass), str(HOOK)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    search, report = r.stdout.strip().splitlines()[-2:]
    parts = search.split(os.pathsep)
    assert parts[0] == str(meipass / "onnxruntime" / "capi")
    assert str(meipass / "nvidia" / "cudnn" / "lib") in parts and parts[-1] == "/opt/existing"
    assert report.startswith("3 bundled CUDA library folder(s)")


def test_gpu_hook_does_nothing_outside_a_bundle():
    code = "import os, runpy, sys; before = dict(os.environ); runpy.run_path(sys.argv[1]); sys.exit(int(before != dict(os.environ)))"
    r = subprocess.run([sys.executable, "-c", code, str(HOOK)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------- Linux desktop entry


@pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("sh"), reason="Linux desktop entry")
def test_install_desktop_writes_entry_and_icons_and_uninstalls(tmp_path):
    bundle = tmp_path / "Lab Apps" / "LeukoScan"
    icons = bundle / "_internal" / "resources" / "icons"
    icons.mkdir(parents=True)
    for s in (16, 48, 256):
        shutil.copy(REPO / "resources" / "icons" / f"leukoscan-{s}.png", icons / f"leukoscan-{s}.png")
    exe = bundle / "LeukoScan"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), HOME=str(tmp_path))
    script = REPO / "packaging" / "install-desktop.sh"
    r = subprocess.run(["sh", str(script), str(bundle)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    entry = (tmp_path / "data" / "applications" / "leukoscan.desktop").read_text()
    assert f'Exec="{exe}" %F' in entry and f"TryExec={exe}" in entry
    assert "Icon=leukoscan" in entry and "Terminal=false" in entry and "@" not in entry
    assert (tmp_path / "data/icons/hicolor/48x48/apps/leukoscan.png").is_file()
    # case stores are a file type LeukoScan opens ("Open with LeukoScan" in the file manager)
    assert "MimeType=application/x-leukoscan-case;" in entry
    xml = tmp_path / "data" / "mime" / "packages" / "leukoscan.xml"
    assert xml.read_bytes() == (REPO / "packaging" / "leukoscan-mime.xml").read_bytes()
    if shutil.which("update-mime-database"):  # the shared-mime-info database now knows *.leukoscan
        globs = (tmp_path / "data" / "mime" / "globs2").read_text()
        assert "application/x-leukoscan-case:*.leukoscan" in globs
    if shutil.which("desktop-file-validate"):
        v = subprocess.run(
            ["desktop-file-validate", str(tmp_path / "data/applications/leukoscan.desktop")],
            capture_output=True,
            text=True,
        )
        assert v.returncode == 0, v.stdout + v.stderr
    r = subprocess.run(["sh", str(script), "--uninstall"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and not (tmp_path / "data/applications/leukoscan.desktop").exists()
    assert not (tmp_path / "data/icons/hicolor/48x48/apps/leukoscan.png").exists()
    assert not xml.exists()
    if shutil.which("update-mime-database"):
        assert "leukoscan" not in (tmp_path / "data" / "mime" / "globs2").read_text()
    # the copy build.spec puts beside the executable installs its own bundle, no argument needed
    for name in ("install-desktop.sh", "leukoscan.desktop.in", "leukoscan-mime.xml"):
        shutil.copy(REPO / "packaging" / name, bundle / name)
    r = subprocess.run(
        ["sh", str(bundle / "install-desktop.sh")], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert f'Exec="{exe}" %F' in (tmp_path / "data" / "applications" / "leukoscan.desktop").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux desktop entry")
def test_install_desktop_refuses_missing_bundle_and_unsafe_paths(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), HOME=str(tmp_path))
    script = str(REPO / "packaging" / "install-desktop.sh")
    r = subprocess.run(["sh", script, str(tmp_path / "nothing")], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "make bundle" in r.stderr
    bad = tmp_path / "a&b" / "LeukoScan"
    bad.mkdir(parents=True)
    (bad / "LeukoScan").write_text("#!/bin/sh\n")
    (bad / "LeukoScan").chmod(0o755)
    r = subprocess.run(["sh", script, str(bad)], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "must not contain" in r.stderr
    assert not (tmp_path / "data" / "applications" / "leukoscan.desktop").exists()


# --------------------------------------------------------------------------- the bundle's headless CLI


@pytest.mark.parametrize(
    "argv, executable",
    [
        (["cli", "models", "--json"], "/opt/LeukoScan/LeukoScan"),  # LeukoScan cli ...
        (["models", "--json"], "/opt/LeukoScan/leukoscan-cli"),  # the second executable
        (["models", "--json"], r"C:\LeukoScan\leukoscan-cli.exe"),
    ],
)
def test_the_bundle_runs_the_cli_without_qt(argv, executable, tiny_models_dir, _no_bundled_models):
    code = (
        "import json, sys; sys.path.insert(0, 'packaging'); import leukoscan_launcher as l; "
        "rc = l.main(sys.argv[2:], executable=sys.argv[1]); assert 'PySide6' not in sys.modules; sys.exit(rc)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run(
        [sys.executable, "-c", code, executable, *argv, "--models-dir", str(tiny_models_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["schema"] == "leukoscan.models/1"


def test_only_the_cli_name_or_the_cli_word_starts_the_cli():
    assert launcher.cli_args(["cli", "classify", "x"], "/b/LeukoScan") == ["classify", "x"]
    assert launcher.cli_args(["classify", "x"], "/b/leukoscan-cli") == ["classify", "x"]
    assert launcher.cli_args(["/data/cli"], "/b/LeukoScan") is None  # a folder to open in the app
    assert launcher.cli_args(["cli"], "/usr/bin/python3") == []
    assert launcher.cli_args([], "/b/LeukoScan") is None
