"""Nothing leaves the workstation: a CLI run and an app run in a fresh HOME and TMPDIR open no socket
and write nothing outside the user data folder and the chosen report.

The run is started through a bootstrap that installs an audit hook before anything is imported: it
records every Python-level socket call, and an ``import onnxruntime`` that happens while
onnxruntime's telemetry switch (engine/offline.py) is still off.  onnxruntime's own telemetry lives
in native code, whose DNS lookup no Python hook sees; the files it creates the moment the library
loads (``~/.cache/Microsoft/DeveloperTools/.onnxruntime/``, ``$TMPDIR/.ses``) are what the file check
catches.  Where ``strace`` works, the run is also traced at the system-call level for IP connects.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

BOOT = r"""
import atexit, json, os, runpy, sys
log, target = sys.argv[1], sys.argv[2]
seen = []
NET = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.sendto",
       "socket.sendmsg", "socket.bind", "http.client.connect", "urllib.Request", "ftplib.connect", "smtplib.connect"}

def hook(event, args):
    if event in NET:
        seen.append(f"{event} {args[1:]!r}")
    elif event == "import" and args[0] == "onnxruntime" and os.environ.get("ORT_DISABLE_TELEMETRY") != "1":
        seen.append("onnxruntime imported before its telemetry was switched off")

sys.addaudithook(hook)
atexit.register(lambda: open(log, "w", encoding="utf-8").write(json.dumps(seen)))
sys.argv = [target, *sys.argv[3:]]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""

# The app, run offscreen: open the folder, classify it, export the report, quit.
GUI_DRIVER = r"""
import sys
from pathlib import Path
import gui.app as app

report = Path(sys.argv.pop())
build = app.build_window

def build_and_finish(args):
    win = build(args)
    win.runs.finished.connect(lambda *_: win.exports.csv(report))
    win.exports.written.connect(lambda *_: (setattr(win.doc, "unexported", False), win.close()))
    win.exports.failed.connect(lambda msg: sys.exit(f"export failed: {msg}"))
    return win

app.build_window = build_and_finish
sys.exit(app.main(sys.argv[1:]))
"""


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if not p.is_dir()}


def _strace() -> list[str]:
    exe = shutil.which("strace")
    if not exe or subprocess.run([exe, "-f", "-qq", "-o", os.devnull, "true"], capture_output=True).returncode:
        return []  # not installed, or ptrace not permitted here
    return [exe, "-f", "-qq", "-e", "trace=connect,sendto,sendmsg"]


def _run_isolated(
    tmp_path: Path, argv: list[str], cells: Path, report_dir: Path, rc: int = 0
) -> tuple[list[str], set[Path]]:
    """Run ``boot.py LOG TARGET ARGS`` in a fresh HOME/TMPDIR; returns (network/import events, stray files)."""
    home, tmp, data = tmp_path / "home", tmp_path / "tmp", tmp_path / "home" / "userdata"
    for d in (home, tmp, data):
        d.mkdir(parents=True, exist_ok=True)
    boot = tmp_path / "boot.py"
    boot.write_text(BOOT, encoding="utf-8")
    log, trace = tmp_path / "events.json", tmp_path / "strace.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "ORT_", "LEUKOSCAN_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update(
        HOME=str(home),
        TMPDIR=str(tmp),
        LEUKOSCAN_DATA_DIR=str(data),
        PYTHONDONTWRITEBYTECODE="1",
        LEUKOSCAN_RESOURCES_DIR=str(tmp_path / "no-bundled-resources"),
        QT_QPA_PLATFORM="offscreen",
    )
    tracer = _strace()
    cmd = [*tracer, *(["-o", str(trace)] if tracer else []), sys.executable, str(boot), str(log), *argv]
    before = _files(cells)
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == rc, r.stdout[-2000:] + r.stderr[-3000:]
    events = json.loads(log.read_text(encoding="utf-8"))
    if tracer:
        ip = re.compile(r"AF_INET6?\b|nscd")
        events += [ln for ln in trace.read_text().splitlines() if ip.search(ln)]
    stray = (_files(home) - _files(data)) | _files(tmp) | (_files(cells) - before)
    stray |= {p for p in _files(report_dir) if not p.name.startswith("report")}
    return events, stray


def test_cli_run_stays_on_the_workstation(tiny_models_dir, cells_dir, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    argv = [
        "engine.cli",
        "classify",
        str(cells_dir),
        "--model",
        "tiny_ensemble",
        "--models-dir",
        str(tiny_models_dir),
        "--out",
        str(reports / "report.csv"),
        "--summary",
        str(reports / "report_summary.csv"),
        "--no-progress",
    ]
    events, stray = _run_isolated(tmp_path, argv, cells_dir, reports)
    assert (events, stray) == ([], set())
    assert (reports / "report.csv").is_file()


def test_app_run_stays_on_the_workstation(tiny_models_dir, cells_dir, tmp_path):
    pytest.importorskip("PySide6")
    driver = tmp_path / "drive_app.py"
    driver.write_text(GUI_DRIVER, encoding="utf-8")
    reports = tmp_path / "reports"
    reports.mkdir()
    argv = [
        str(driver),
        "--no-restore",
        "--model",
        "tiny_ensemble",
        "--models-dir",
        str(tiny_models_dir),
        str(cells_dir),
        str(reports / "report.csv"),
    ]
    events, stray = _run_isolated(tmp_path, argv, cells_dir, reports)
    assert (events, stray) == ([], set())
    assert (reports / "report.csv").is_file() and (reports / "report_summary.csv").is_file()


def test_bundle_entry_points_stay_on_the_workstation(tiny_models_dir, cells_dir, tmp_path):
    """The bundle's paths into onnxruntime: the GPU runtime hook (it loads onnxruntime before the app's
    code runs) and ``LeukoScan --self-test`` through the launcher (FAILs on the tiny models: exit 1)."""
    meipass = tmp_path / "_internal"
    (meipass / "onnxruntime" / "capi").mkdir(parents=True)
    driver = tmp_path / "frozen_start.py"
    driver.write_text(
        "import runpy, sys\n"
        f"sys._MEIPASS = {str(meipass)!r}\n"
        f"runpy.run_path({str(REPO / 'packaging' / 'rthooks' / 'rthook_onnxruntime_gpu.py')!r})\n"
        f"sys.argv = [{str(REPO / 'packaging' / 'leukoscan_launcher.py')!r}, *sys.argv[1:]]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n",
        encoding="utf-8",
    )
    argv = [
        str(driver),
        "--self-test",
        "-q",
        "--models-dir",
        str(tiny_models_dir),
        "--samples-dir",
        str(REPO / "resources" / "samples"),
        "--device",
        "cpu",
    ]
    (tmp_path / "reports").mkdir()
    events, stray = _run_isolated(tmp_path, argv, cells_dir, tmp_path / "reports", rc=1)
    assert (events, stray) == ([], set())
