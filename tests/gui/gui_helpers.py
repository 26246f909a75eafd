"""Fixtures and helpers for the Qt tests: an isolated settings file, a window factory on the tiny models.

Not a ``conftest.py``: tests elsewhere do ``from conftest import ...`` and a second conftest module
would shadow the shared one.  Test modules import what they use from here (pytest puts this folder
on sys.path).  The shared ``tests/conftest.py`` points ``LEUKOSCAN_DATA_DIR`` at a fresh temporary
folder for every test; :class:`gui.settings.Settings` keeps its INI file there, and autosaved sessions
go there too.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui.mainwindow import MainWindow
from gui.prompts import Prompts
from gui.service import EngineService
from gui.settings import Settings

RUN_TIMEOUT_MS = 30_000


class RecordedPrompts(Prompts):
    """The test double of the window's prompts: every message shown or noted is kept in ``messages`` (title, text) for
    the test to read; questions are answered by replacing a method (``monkeypatch.setattr(w.prompts, ...)``)."""

    def __init__(self, parent) -> None:
        super().__init__(parent)
        self.messages: list[tuple[str, str]] = []

    def show_message(self, title: str, text: str, *args, **kwargs):
        self.messages.append((title, text))
        return super().show_message(title, text, *args, **kwargs)

    def note(self, title: str, text: str) -> None:
        self.messages.append((title, text))
        super().note(title, text)

    def ask_other_sample(self, text: str) -> bool:
        self.messages.append(("Not this case's images", text))
        return super().ask_other_sample(text)


@pytest.fixture
def make_window(qtbot, tiny_models_dir):
    """``make_window(models_dir=None, reviewer="tech1", **settings)`` -> a shown MainWindow whose models
    are listed and whose default model (the tiny ensemble) is loaded."""
    windows = []

    def make(models_dir=None, reviewer="tech1", check_orphans=False, wait_model=True, **opts):
        s = Settings()
        s.reviewer = reviewer
        s.batch_size = opts.pop("batch_size", 8)
        for k, v in opts.items():
            setattr(s, k, v)
        svc = EngineService([models_dir or tiny_models_dir])
        w = MainWindow(svc, s, check_orphans=check_orphans, prompts=RecordedPrompts)
        # not qtbot.addWidget(w): pytest-qt would close it before this fixture's teardown, and a window
        # with unexported reviews asks before closing (a modal box would block the test run)
        if wait_model:
            qtbot.waitUntil(lambda: w.model_chooser.classifier is not None, timeout=RUN_TIMEOUT_MS)
        w.show()
        qtbot.waitExposed(w)
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.doc.unexported = False  # no close prompt in teardown
        w.close()
        w.deleteLater()


def open_and_classify(qtbot, w, paths, timeout=RUN_TIMEOUT_MS):
    """Open ``paths`` and wait until the run they start has finished; returns the finished args."""
    with qtbot.waitSignal(w.runs.finished, timeout=timeout) as blocker:
        w.opener.open_paths([str(p) for p in paths])
    qtbot.waitUntil(lambda: not w.runs.running, timeout=timeout)
    return blocker.args


def stored(path):
    """The document a case store holds on disk now, read back without any window."""
    from engine.case.store import CaseStore

    store = CaseStore.open(path, create=False)
    try:
        return store.load()
    finally:
        store.close()


def wait_page_drawn(qtbot, w, timeout=20_000):
    """Wait until every gallery tile has its thumbnail: a bulk accept confirms only the cells a person could see
    on the page (:meth:`gui.browser.CellBrowser.cells_on_page`)."""
    qtbot.waitUntil(lambda: all(w.thumbs.has(c.key) for c in w.cell_model.cells), timeout=timeout)


def scans_settled(w) -> bool:
    """Every folder scan the window started has handed its answer over (or was cancelled): what a folder re-opened
    with a case would add, and any run that would start for new images, has happened by now.  For
    ``qtbot.waitUntil`` instead of a sleep."""
    return all(t.delivered or t.cancelled for t in w.opener._scans)


def settled(qtbot, task, timeout=10_000) -> None:
    """Wait until ``task``'s worker has returned and all it handed out has arrived (or was dropped): where a test
    checks that nothing late arrives, instead of sleeping."""
    with qtbot.waitCallback(timeout=timeout) as done:
        task.when_settled(done)
