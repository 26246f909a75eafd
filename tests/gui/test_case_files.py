"""Which case store the window writes, and that none is ever lost by switching, closing or exporting
(found by review: opening another store, or Close all then quit, deleted a session that held work)."""

from __future__ import annotations

from gui_helpers import make_window, open_and_classify, stored  # noqa: F401  (fixture + helper)

from engine.case.store import CaseStore
from gui.document import Call
from gui.review_command import Clear, SetLabel


def test_opening_another_store_keeps_the_current_session_as_a_closed_store(qtbot, make_window, cells_dir, tmp_path):
    other = tmp_path / "other.db"
    CaseStore.open(other).close()
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(0)
    w.reviews.apply(SetLabel(Call.ALL))
    session = w.case_files.path
    w.doc.unexported = False  # no close prompt in the test
    w.opener.open_store(other)
    qtbot.waitUntil(lambda: w.case_files.path == other, timeout=10_000)
    w.service.flush()
    assert session.exists()  # the work of that session is kept...
    assert CaseStore.peek(session).get("closed_at")  # ...as a closed session, not a crash to offer
    assert len(stored(session).reviews) == 1


def test_close_all_then_quit_keeps_the_store_and_its_audit_trail(qtbot, make_window, cells_dir):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(0)
    w.reviews.apply(SetLabel(Call.HEM))
    w.doc.unexported = False
    path = w.case_files.path
    w.opener.close_cases()
    w.close()
    assert path.exists()
    assert CaseStore.open(path, create=False).review_events()  # the audit trail survives Close all
    assert len(stored(path).reviews) == 1  # and so does the review itself (the record is closed, not cleared)


def test_a_clear_is_logged_with_who_cleared(qtbot, make_window, cells_dir):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(0)
    w.reviews.apply(SetLabel(Call.ALL))
    w.browser.select_row(0)
    w.reviews.apply(Clear())
    assert w.bridge.store.flush(10)
    last = CaseStore.open(w.case_files.path, create=False).review_events()[-1]
    assert (last["old_label"], last["new_label"], last["reviewer"]) == ("ALL", None, "tech1")


def test_a_review_made_while_the_report_is_written_keeps_the_case_unexported(qtbot, make_window, cells_dir, tmp_path):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    with qtbot.waitSignal(w.exports.written, timeout=30_000):
        assert w.exports.csv(tmp_path / "r.csv")
        w.browser.select_row(1)
        w.reviews.apply(SetLabel(Call.HEM))  # before the report's "done" comes back: not in that report
    assert w.doc.unexported  # so closing still asks
    assert "not in it" in w.statusBar().currentMessage()
