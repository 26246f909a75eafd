"""The case document's own behaviour that the case store relies on: who/when of every review step
(also a clear, an undo, a redo), and step numbers that stay unique after a restore."""

from __future__ import annotations

from pathlib import Path

from engine.case import CaseDocument, ModelFacts
from engine.case.events import ReviewsChanged, SignOffAction, SignOffChanged
from engine.pipeline import CellResult, ScanItem

FACTS = ModelFacts("m", "1", "card", 0.5, 0.1)


def _doc(n: int = 3) -> CaseDocument:
    doc = CaseDocument()
    root = Path("/data/slide")
    cells = doc.add_items([ScanItem(root / f"c{i}.bmp", root, ".") for i in range(n)])
    doc.set_model(FACTS)
    doc.add_results(
        FACTS,
        [
            (c, CellResult(i, c.path, root, ".", c.file, f"s{i}", "ok", "", 0.9, {}, False, ""))
            for i, c in enumerate(cells)
        ],
    )
    return doc


def test_every_step_says_who_and_when():
    doc = _doc()
    events = []
    doc.subscribe(events.append)
    s1 = doc.review(doc.cells[:2], "ALL", "  ann ", at="2024-01-01T00:00:00Z")
    s2 = doc.review(doc.cells[:1], "clear", "bob", at="2024-01-01T00:01:00Z")
    s3 = doc.undo(" carl")
    s4 = doc.redo("dora")
    assert (s1.reviewer, s1.at) == ("ann", "2024-01-01T00:00:00Z")
    assert (s2.reviewer, s2.at, s2.changes[0].new) == ("bob", "2024-01-01T00:01:00Z", None)
    assert (s3.action, s3.reviewer, s4.action, s4.reviewer) == ("undo", "carl", "redo", "dora")
    assert s3.at and s4.at
    assert [e.step for e in events if isinstance(e, ReviewsChanged)] == [s1, s2, s3, s4]
    assert doc.undo().reviewer == ""  # who undid may be unknown


def test_load_history_keeps_step_numbers_unique():
    doc = _doc()
    doc.load_history([], [], last_step=41)
    assert doc.review(doc.cells[:1], "HEM", "ann").number == 42


def _result(c, i, sha, p=0.9):
    return CellResult(i, c.path, c.root, ".", c.file, sha, "ok", "", p, {}, False, "")


def test_undo_never_puts_back_a_review_of_another_image_content():
    """HEM, then ALL; the image changes (the ALL review is set aside as stale); undo must not bring back the
    HEM review of the old pixels onto the new image, nor redo the ALL one."""
    doc = _doc(1)
    c = doc.cells[0]
    doc.review([c], "HEM", "ann")
    doc.review([c], "ALL", "ann")
    doc.add_results(FACTS, [(c, _result(c, 0, "another image"))])
    assert c.review is None and c.stale is not None and c.stale.label == "ALL"
    doc.undo("ann")
    assert c.review is None  # nothing of the old image comes back
    doc.redo("ann")
    assert c.review is None


def test_a_changed_image_reopens_its_signed_off_case_with_the_reason_logged():
    doc = _doc(2)
    doc.review(doc.cells, "accept", "ann")
    case = next(iter(doc.cases.values()))
    doc.set_sample_id(case, "BM-1")
    doc.sign_off(case, "ann")
    events = []
    doc.subscribe(events.append)
    doc.content_changed([doc.cells[0]])
    assert case.signoff is None  # what was signed is no longer what is on disk
    (e,) = [e for e in events if isinstance(e, SignOffChanged)]
    assert e.action is SignOffAction.REOPEN and doc.cells[0].file in e.text
    assert e.by == "LeukoScan (automatic)"


def test_a_name_with_control_characters_is_refused_before_anything_changes():
    """Case-record issue, item 3: the store refused such a name, but the window had already shown the change."""
    import pytest

    doc = _doc()
    for bad in ("ann\nSigned off by: Dr. X", "ann\x1b[2J", "ann\u202e"):
        with pytest.raises(ValueError, match="control"):
            doc.review(doc.cells[:1], "ALL", bad)
    assert doc.cells[0].review is None and not doc.can_undo
