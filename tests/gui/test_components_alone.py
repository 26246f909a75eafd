"""The components issue 27 parts 3 and 4 changed, each built from its dependencies alone (no MainWindow): the run
controller reads the model from its one owner and is held and closed through its own methods, the review actions ask
the prompts and widen the filter they were given, the preview's buttons follow the lock test it was given."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from engine.pipeline import ScanItem
from gui.document import Call, DocumentBridge
from gui.preview import PreviewPanel
from gui.review_actions import ReviewActions
from gui.review_command import Accept, Exclude, SetLabel
from gui.run_controller import RunController, RunState


class _Task:
    def __init__(self):
        self.cancelled = False

    def cancel(self):
        self.cancelled = True

    def wait(self, timeout=None):
        return True

    def request_interrupt(self):
        pass


class _Service:
    """Records the runs asked for; none runs."""

    def __init__(self):
        self.runs = []

    def start_run(self, items, classifier, batch_size, *, on_batch, on_end, on_error):
        task = _Task()
        self.runs.append((len(items), classifier, batch_size, task))
        return task


def _bridge_with_cells(n: int = 3) -> DocumentBridge:
    bridge = DocumentBridge()
    root = Path("/data/case 1")
    bridge.doc.add_items([ScanItem(root / f"c{i}.bmp", root, ".") for i in range(n)])
    return bridge


class _Classifier:
    """Just what ModelFacts.of reads."""

    def __init__(self, name: str):
        self.name, self.version, self.display_name = name, "1.0", name
        self.threshold, self.review_margin, self.member_names = 0.5, 0.1, ()
        self.active_provider = "CPUExecutionProvider"
        self.card = SimpleNamespace(raw={"name": name})


def test_a_run_takes_the_model_and_batch_size_of_their_owners_when_it_starts(qtbot):
    service, bridge = _Service(), _bridge_with_cells()
    model, settings = SimpleNamespace(classifier=None), SimpleNamespace(batch_size=4)
    runs = RunController(service, bridge, model, settings)
    assert not runs.start() and service.runs == []  # no model yet
    model.classifier = first = _Classifier("a")
    settings.batch_size = 2
    assert runs.start() and runs.state == RunState.RUNNING
    assert service.runs[-1][:3] == (3, first, 2)
    runs.stop()
    model.classifier = second = _Classifier("b")  # chosen later: the next run uses it, nothing was copied
    assert runs.start() and service.runs[-1][1] is second
    runs.stop()


def test_no_run_starts_while_held_or_once_closed(qtbot):
    service, bridge = _Service(), _bridge_with_cells()
    runs = RunController(service, bridge, SimpleNamespace(classifier=_Classifier("a")), SimpleNamespace(batch_size=8))
    runs.hold()
    assert runs.held and not runs.start() and service.runs == []
    runs.release()
    assert not runs.held and runs.start()
    task = service.runs[-1][3]
    runs.close()  # the window closes: the run stops, and none starts any more
    assert runs.closed and task.cancelled and runs.state == RunState.IDLE
    assert not runs.start() and len(service.runs) == 1


class _Prompts:
    """Answers the review questions as a test says, and records what was asked."""

    def __init__(self, reviewer="tech1", reason="artefact", bulk=True):
        self.reviewer, self.reason, self.bulk, self.asked = reviewer, reason, bulk, []

    def ask_reviewer(self):
        self.asked.append("reviewer")
        return self.reviewer

    def confirm_bulk_accept(self, n, left):
        self.asked.append(("bulk", n))
        return self.bulk

    def ask_exclusion_reason(self, n):
        self.asked.append(("reason", n))
        return self.reason


class _Filters:
    def __init__(self):
        self.widened = 0

    def show_left_before_signoff(self):
        self.widened += 1


def _classified_bridge() -> DocumentBridge:
    from engine.case.values import ModelFacts

    bridge = _bridge_with_cells(2)
    facts = ModelFacts("m", "1", "c" * 64, 0.5, 0.1)
    bridge.doc.set_model(facts)
    results = [
        (
            c,
            SimpleNamespace(
                sha256=f"{i:064x}", status="ok", error="", p_all=0.9, member_p={}, members_disagree=False, qc=""
            ),
        )
        for i, c in enumerate(bridge.doc.cells)
    ]
    bridge.doc.add_results(facts, results)
    bridge.doc.mark_shown(list(bridge.doc.cells), "preview")
    return bridge


class _Browser:
    def __init__(self, cells):
        self.cells = cells
        self.gallery = SimpleNamespace(currentIndex=lambda: SimpleNamespace(isValid=lambda: False))
        self.proxy = SimpleNamespace(proxy_row_of=lambda key: 0, rowCount=lambda: len(cells))
        self.selected_rows: list[int] = []

    def select_row(self, row):
        self.selected_rows.append(row)

    def selected_cells(self):
        return list(self.cells)

    def current_cell(self):
        return self.cells[0] if self.cells else None

    def cells_on_page(self, cells):
        return []


def test_review_actions_ask_the_prompts_they_were_given(qtbot):
    bridge = _classified_bridge()
    cell = bridge.doc.cells[0]
    prompts, settings = _Prompts(), SimpleNamespace(reviewer="", auto_advance=False)
    reviews = ReviewActions(_Browser([cell]), bridge, settings, prompts, _Filters())
    assert reviews.apply(SetLabel(Call.HEM)) == 1 and cell.review.label == "HEM"
    assert prompts.asked == ["reviewer"] and settings.reviewer == "tech1"  # asked once, then remembered
    assert reviews.apply(Exclude()) == 1 and cell.review.label == "EXCLUDED: artefact"
    assert prompts.asked[-1] == ("reason", 1)
    prompts.reason = ""
    assert reviews.apply(Exclude()) == 0  # no reason given: nothing excluded
    reviews.browser = _Browser(list(bridge.doc.cells))
    prompts.bulk = False
    left = [c for c in bridge.doc.cells if c.left_before_signoff]
    assert left  # an ALL call nobody confirmed
    assert reviews.apply(Accept()) == 0 and prompts.asked[-1] == ("bulk", 2)


def test_the_preview_buttons_follow_the_lock_test_it_was_given(qtbot):
    bridge = _classified_bridge()
    cell = bridge.doc.cells[0]
    locked: set[str] = set()
    panel = PreviewPanel(lambda: None, lambda c: c.key in locked)
    qtbot.addWidget(panel)
    buttons = (panel.btn_all, panel.btn_hem, panel.btn_accept, panel.btn_clear, panel.btn_exclude)
    panel.show_cell(cell)
    assert all(b.isEnabled() for b in buttons)
    locked.add(cell.key)
    panel.show_cell(cell)
    assert not any(b.isEnabled() for b in buttons)
    assert "signed off" in panel.btn_all.toolTip()
    panel.close_loader()


def test_the_prompts_keep_no_log_for_tests(qtbot):
    """What was shown is read through the tests' double (gui_helpers.RecordedPrompts), not a list the app keeps."""
    from gui_helpers import RecordedPrompts
    from PySide6.QtWidgets import QWidget

    from gui.prompts import Prompts

    parent = QWidget()
    qtbot.addWidget(parent)
    assert not hasattr(Prompts(parent), "messages")
    double = RecordedPrompts(parent)
    double.note("Open", "3 images gone")
    double.show_message("Export failed", "disk full").close()
    assert double.messages == [("Open", "3 images gone"), ("Export failed", "disk full")]


class _Gate:
    """The run controller as the opener sees it (RunGate): records when runs are held and released."""

    def __init__(self):
        self.calls = []

    def hold(self):
        self.calls.append("hold")

    def release(self):
        self.calls.append("release")

    def stop(self, timeout=2.0):
        self.calls.append("stop")


def test_the_opener_holds_the_runs_while_it_adds_cells(qtbot, cells_dir, tmp_path):
    """No run starts before every scanned cell is in the document: the opener holds the runs through the gate it
    was given and releases them before it says the cells are added."""
    from gui_helpers import RecordedPrompts
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QWidget

    from gui.opening import CaseOpener
    from gui.service import EngineService
    from gui.settings import Settings

    class _Files(QObject):
        askRestore = Signal(object)
        adopted = Signal(object)
        orphansChecked = Signal()

        def __init__(self):
            super().__init__()
            self.path = None
            self.files = SimpleNamespace(dir=tmp_path / "sessions")

        def name_after(self, name):
            return None

    parent = QWidget()
    qtbot.addWidget(parent)
    bridge, gate, service = DocumentBridge(), _Gate(), EngineService([])
    try:
        opener = CaseOpener(service, bridge, _Files(), gate, Settings(), RecordedPrompts(parent), parent=parent)
        seen_at_added = []
        opener.added.connect(lambda: seen_at_added.append((list(gate.calls), len(bridge.doc.cells))))
        with qtbot.waitSignal(opener.added, timeout=10_000):
            opener.open_paths([str(cells_dir)])
        assert seen_at_added == [(["hold", "release"], 8)]
    finally:
        service.shutdown()
