"""Issue 26 item 7: SIGTERM to the app left its case store's ``.lock`` behind (the default action ends the process
at once); the app now closes its window as the close button would, so the store is closed and the lock goes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.name == "nt", reason="no SIGTERM on Windows")
def test_sigterm_closes_the_app_and_leaves_no_lock(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LEUKOSCAN_DATA_DIR": str(data)}
    p = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gui.app import main; sys.exit(main([]))"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(data.rglob("*.lock")) and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
        locks = list(data.rglob("*.lock"))
        assert locks, "the app never took its session store's lock"
        time.sleep(0.5)  # the store opened behind the lock
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=60)[0]
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out
    assert list(data.rglob("*.lock")) == [], out
