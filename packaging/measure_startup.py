"""Measure how long the bundle takes until its main window is on screen, and take a screenshot.

    python packaging/measure_startup.py [dist/LeukoScan/LeukoScan] [--runs 5] [--screenshot docs/img/bundle.png]
        [--settle 3] [--title LeukoScan] [-- app arguments]

Runs each launch under its own Xvfb (started here, 1600x1000x24, unless --display is given), like a
double-click: no QT_QPA_PLATFORM, a fresh process, a desktop display.  "Visible" = the first moment
a top-level window whose title contains --title is mapped and viewable (polled every 10 ms with
xdotool), measured from just before the process is spawned.  The first run is the cold one (files
not yet in the page cache).  After the last run it waits --settle seconds and saves a screenshot of
the main window (grabbed through this Python's PySide6).  Needs Xvfb and xdotool
(apt-get install xvfb xdotool).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise SystemExit(f"{tool} not found: apt-get install xvfb xdotool")
    return path


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """A fresh Xvfb on a free display number (-displayfd: it tells us the number once it is ready)."""
    rfd, wfd = os.pipe()
    proc = subprocess.Popen(
        [_need("Xvfb"), "-displayfd", str(wfd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(wfd,),
    )
    os.close(wfd)
    with os.fdopen(rfd) as fh:
        number = fh.readline().strip()
    if not number:
        proc.kill()
        raise SystemExit("Xvfb did not start")
    return proc, f":{number}"


def visible_window(title: str, env: dict, pid: int) -> str | None:
    r = subprocess.run(
        [_need("xdotool"), "search", "--onlyvisible", "--pid", str(pid), "--name", title],
        env=env,
        capture_output=True,
        text=True,
    )
    ids = r.stdout.split()
    return ids[0] if r.returncode == 0 and ids else None


class DisplayUnreachable(SystemExit):
    """The app could not connect to the Xvfb just started (a race in the X server's start, not the app)."""


def one_run(exe: Path, args: list[str], env: dict, title: str, timeout: float) -> tuple[float, subprocess.Popen, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(exe), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while True:
        wid = visible_window(title, env, proc.pid)
        if wid:
            return time.perf_counter() - t0, proc, wid
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            kind = DisplayUnreachable if "could not connect to display" in out else SystemExit
            raise kind(f"{exe} exited with {proc.returncode} before showing a window:\n{out[-3000:]}")
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            raise SystemExit(f"no visible '{title}' window after {timeout:.0f} s")
        time.sleep(0.01)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def screenshot(path: Path, env: dict, wid: str = "0") -> None:
    """Grab of X window ``wid`` (0 = whole screen) through Qt's xcb plugin (this Python's PySide6), as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import sys; from PySide6.QtGui import QGuiApplication; app = QGuiApplication([]); "
        "ok = app.primaryScreen().grabWindow(int(sys.argv[2])).save(sys.argv[1]); sys.exit(0 if ok else 1)"
    )
    subprocess.run([sys.executable, "-c", code, str(path), wid], env=dict(env, QT_QPA_PLATFORM="xcb"), check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Time to main window visible under Xvfb, plus a screenshot.")
    ap.add_argument("exe", nargs="?", type=Path, default=ROOT / "dist" / "LeukoScan" / "LeukoScan")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--title", default="LeukoScan")
    ap.add_argument("--display", help="use this X display instead of starting Xvfb")
    ap.add_argument("--screenshot", type=Path)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait before the screenshot")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("app_args", nargs="*")
    a = ap.parse_intermixed_args(argv)
    if not a.exe.is_file():
        raise SystemExit(f"{a.exe} not found: run `make bundle` first")

    times = []
    retried = False
    i = 0
    while i < a.runs:
        xvfb, display = (None, a.display) if a.display else start_xvfb()
        env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
        env["DISPLAY"] = display
        try:
            try:
                dt, proc, wid = one_run(a.exe, a.app_args, env, a.title, a.timeout)
            except DisplayUnreachable as exc:
                if retried or a.display:
                    raise
                retried = True  # once per measurement: a fresh Xvfb, the same run again
                print(
                    f"run {i + 1}: the app could not reach the new Xvfb {display}; retrying once on a fresh one "
                    f"({str(exc).splitlines()[-1][:120]})",
                    flush=True,
                )
                continue
            times.append(dt)
            print(f"run {i + 1}: main window visible after {dt:.3f} s{' (cold)' if i == 0 else ''}", flush=True)
            if a.screenshot and i == a.runs - 1:
                time.sleep(a.settle)
                screenshot(a.screenshot, env, wid)
                print(f"screenshot: {a.screenshot}")
            stop(proc)
            i += 1
        finally:
            if xvfb:
                xvfb.terminate()
                xvfb.wait()
    warm = times[1:] or times
    print(
        f"time to main window: cold {times[0]:.3f} s, warm median {statistics.median(warm):.3f} s "
        f"(min {min(warm):.3f}, max {max(warm):.3f}, {len(warm)} runs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
