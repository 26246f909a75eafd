"""The window's components are built from their dependencies alone (no MainWindow): what they decide is
tested against small stand-ins."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui_helpers import RecordedPrompts
from PySide6.QtWidgets import QMessageBox, QWidget

from engine.case.values import ModelFacts
from engine.pipeline import ScanItem
from gui.case_actions import CaseActions
from gui.document import DocumentBridge
from gui.exports import ExportFlow
from gui.prompts import Prompts
from gui.service import EngineService
from gui.settings import Settings


def _bridge_with_a_case() -> DocumentBridge:
    bridge = DocumentBridge()
    root = Path("/data/case 1")
    bridge.doc.add_items([ScanItem(root / "a.bmp", root, "."), ScanItem(root / "b.bmp", root, ".")])
    return bridge


def test_export_flow_says_why_not_from_its_own_dependencies(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    bridge, runs, files = _bridge_with_a_case(), SimpleNamespace(running=False), SimpleNamespace(broken="")
    service = EngineService([])
    try:
        flow = ExportFlow(service, bridge, runs, files, Settings(), RecordedPrompts(parent), lambda: None)
        assert flow.why_not() == "No model is loaded."
        bridge.doc.set_model(ModelFacts("m", "1", "c" * 64, 0.5, 0.1))
        runs.running = True
        assert flow.why_not().startswith("Classification is still running")
        runs.running, files.broken = False, "row 3 changed"
        assert "broken (row 3 changed)" in flow.why_not()
        files.broken = ""
        assert flow.why_not() == "No classified cells to export."
        assert not flow.can_export(interactive=True)
        assert flow.prompts.messages == [("Cannot export yet", "No classified cells to export.")]
    finally:
        service.shutdown()


def test_case_actions_offer_the_walk_through_the_callable_they_were_given(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    bridge = _bridge_with_a_case()
    browser = SimpleNamespace(current_cell=lambda: None, proxy=SimpleNamespace(case=None))
    walked = []
    actions = CaseActions(
        bridge, browser, SimpleNamespace(reviewer=lambda: "tech1"), Prompts(parent), lambda: walked.append(True)
    )
    case = actions.current_case()  # the only case, with no cell selected
    assert case is not None and case.root == "/data/case 1"
    assert not actions.sign_off()  # nothing classified: refused, and the walk is offered
    box = next(b for b in parent.findChildren(QMessageBox) if b.windowTitle() == "Cannot sign off yet")
    next(b for b in box.buttons() if b.text().startswith("Walk them now")).click()
    assert walked == [True]
