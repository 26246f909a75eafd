"""How the app fits the desktop (issue 19 §3): no two commands share a key (Ctrl+Shift+S stays Save As); the log
goes to the platform's log folder, beside startup-error.log, without fontTools' INFO lines, and About says where
it is.  (Opening a case store handed over by the file manager: test_open_with.py.)"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import QKeySequence


def test_no_two_commands_share_a_key_and_save_as_stays_free(qtbot):
    from gui.actions import COMMANDS, _sequences

    owner: dict[str, str] = {}
    clashes = []
    for c in COMMANDS:
        for s in _sequences(c.keys):
            k = s.toString(QKeySequence.SequenceFormat.PortableText)
            if k in owner:
                clashes.append((k, owner[k], c.name))
            owner[k] = c.name
    assert not clashes, clashes
    save_as = {
        s.toString(QKeySequence.SequenceFormat.PortableText)
        for s in QKeySequence.keyBindings(QKeySequence.StandardKey.SaveAs)
    } | {"Ctrl+Shift+S"}
    assert not save_as & set(owner), save_as & set(owner)
    assert owner["Ctrl+Alt+O"] == "open_store"


@pytest.fixture
def _root_logging():
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    quiet = {n: logging.getLogger(n).level for n in ("fontTools",)}
    yield
    for h in root.handlers[:]:
        if h not in before:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)
    for n, lv in quiet.items():
        logging.getLogger(n).setLevel(lv)


def test_the_log_goes_to_the_platform_log_folder_without_fonttools_info(tmp_path, monkeypatch, _root_logging):
    from platformdirs import user_log_dir

    from engine.paths import user_log_dir as engine_log_dir
    from gui.app import configure_logging

    # the real default: the platform's log folder, the one preflight writes startup-error.log to
    monkeypatch.delenv("LEUKOSCAN_DATA_DIR", raising=False)
    monkeypatch.delenv("LEUKOSCAN_LOG_DIR", raising=False)
    assert engine_log_dir() == Path(user_log_dir("LeukoScan", appauthor=False))
    monkeypatch.setenv("LEUKOSCAN_DATA_DIR", str(tmp_path / "data"))
    assert engine_log_dir() == tmp_path / "data" / "logs"  # tests and screenshots never write a real user's log

    monkeypatch.setenv("LEUKOSCAN_LOG_DIR", str(tmp_path / "logs"))
    path = configure_logging()
    assert path == tmp_path / "logs" / "leukoscan.log"
    logging.getLogger("leukoscan").info("model loaded: tiny")
    logging.getLogger("fontTools.subset").info("maxp pruned")
    logging.getLogger("fontTools.ttLib").warning("a broken font table")
    from fpdf import FPDF

    from engine.pdf_fonts import install_fonts

    pdf = FPDF()  # a PDF with a subset Unicode font, as the case report writes (fontTools logs "... pruned")
    pdf.add_page()
    fonts = install_fonts(pdf)
    pdf.set_font(fonts.sans, size=10)
    pdf.cell(text=fonts.text("Zürich: 3 ALL, 2 HEM"))
    pdf.output(str(tmp_path / "report.pdf"))
    for h in logging.getLogger().handlers:
        h.flush()
    text = path.read_text(encoding="utf-8")
    assert "model loaded: tiny" in text and "a broken font table" in text
    assert "maxp pruned" not in text and "fontTools.subset" not in text  # none of the real PDF's either


def test_about_says_where_the_log_is(qtbot, tmp_path, monkeypatch):
    from gui.dialogs import AboutDialog
    from gui.settings import log_path

    monkeypatch.setenv("LEUKOSCAN_LOG_DIR", str(tmp_path / "logs"))
    d = AboutDialog("9.9", [], [])
    qtbot.addWidget(d)
    from PySide6.QtWidgets import QTextBrowser

    text = d.findChild(QTextBrowser).toPlainText()
    assert str(log_path()) in text and str(tmp_path / "logs") in text
