"""The case document's three parts, each on its own over a bare core (issue 27 part 1): decisions (models,
thresholds, each cell's class and flag), sign-off (what is locked, reopen) and the review history (undo, redo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.case import events as ev
from engine.case.core import DocumentCore
from engine.case.decisions import Decisions
from engine.case.history import ReviewHistory
from engine.case.kinds import ReviewAction, ReviewCommand
from engine.case.signoffs import AUTOMATIC, SignOffs
from engine.case.values import ModelFacts, Review
from engine.decision import Decision
from engine.pipeline import CellResult, ScanItem

A = ModelFacts("a", "1.0", "card-a", 0.5, 0.1, (), "CPUExecutionProvider", "A")
A2 = ModelFacts("a", "1.1", "card-a-v2", 0.5, 0.1, (), "CPUExecutionProvider", "A")  # another card version
B = ModelFacts("b", "1.0", "card-b", 0.3, 0.05, (), "CPUExecutionProvider", "B")
ROOT = Path("/slides/BM-1")


def _core(n: int = 3) -> tuple[DocumentCore, list[ev.CaseEvent]]:
    core = DocumentCore()
    heard: list[ev.CaseEvent] = []
    core.subscribe(heard.append)
    core.new_cells(ScanItem(ROOT / f"c{i}.bmp", ROOT, ".") for i in range(n))
    return core, heard


def _result(cell, p: float, sha: str | None = None, qc: str = "") -> CellResult:
    return CellResult(0, cell.path, cell.root, ".", cell.file, sha or f"sha-{cell.file}", "ok", "", p, {}, False, qc)


def _classified(ps=(0.9, 0.45, 0.1), qc=("", "", "")):
    core, heard = _core(len(ps))
    d = Decisions(core)
    d.set_model(A)
    d.add_results(A, [(c, _result(c, p, qc=q)) for c, p, q in zip(core.cells, ps, qc)])
    return core, d, heard


# ------------------------------------------------------------------------------------------ decisions


def test_decisions_decide_each_cell_under_the_current_model_and_its_threshold():
    core, d, heard = _classified()
    assert [c.decision for c in core.cells] == [
        Decision("ALL", False, (), False),
        Decision("HEM", True, ("review_band",), True),
        Decision("HEM", False, (), False),
    ]
    assert [c.prediction for c in core.cells] == ["ALL", "HEM", "HEM"] and core.cells[1].flagged
    d.set_threshold(0.4)
    assert [c.prediction for c in core.cells] == ["ALL", "ALL", "HEM"] and core.unexported
    assert isinstance(heard[-1], ev.DecisionsChanged) and isinstance(heard[-2], ev.ThresholdChanged)
    d.set_model(B)  # no result of B yet: every cell is to classify, and undecided
    assert d.unclassified() == core.cells and all(c.decision is None for c in core.cells)
    d.set_model(A)  # back: A's threshold was remembered
    assert d.threshold == 0.4 and d.threshold_for("b") == 0.3 and core.cells[1].prediction == "ALL"


def test_a_result_of_an_earlier_card_version_is_classified_again():
    core, d, _ = _classified()
    assert d.set_model(A2) == core.cells and core.cells[0].result is None


def test_decisions_set_a_changed_images_review_aside_and_say_which():
    core, d, heard = _classified()
    c = core.cells[0]
    c.review = Review("ALL", "ann", "t", c.result.sha256 if c.result else "")
    assert d.add_results(A, [(c, _result(c, 0.9, sha="other"))]) == [c]
    assert c.review is None and c.stale is not None and isinstance(heard[-1], ev.StaleFound)
    assert d.content_changed([c]) == [c] and c.result is None and not c.results


def test_a_score_that_is_not_finite_is_an_error_not_a_call():
    core, _ = _core(1)
    d = Decisions(core)
    d.set_model(A)
    c = core.cells[0]
    d.add_results(A, [(c, _result(c, float("nan")))])
    assert c.status == "error" and c.prediction is None and c.decision == Decision()


# ------------------------------------------------------------------------------------------ sign-off


def _signable():
    core, d, heard = _classified(ps=(0.9, 0.1, 0.2))
    s = SignOffs(core, d)
    core.set_sample_id(core.find_case(str(ROOT)), "BM-1")
    return core, d, s, heard


def test_sign_off_needs_every_blast_confirmed_and_a_sample_id():
    core, d, _ = _classified(ps=(0.9, 0.1))
    s = SignOffs(core, d)
    ok, why = s.can_sign_off(str(ROOT))
    assert not ok and "1 ALL call is not confirmed" in why and "no sample id" in why
    with pytest.raises(ValueError, match="cannot be signed off"):
        s.sign_off(str(ROOT), "Dr. Ada")


def test_a_sign_off_rests_on_the_model_threshold_and_images_and_locks_the_case():
    core, d, s, heard = _signable()
    core.cells[0].review = Review("ALL", "ann", "t")  # the blast call confirmed (the history part's job)
    so = s.sign_off("BM-1", "Dr. Ada", "fine", at="2026-01-01T00:00:00Z")
    assert so.basis.startswith("a 1.0, threshold 0.500; cells 3, set ") and s.signoffs == {str(ROOT): so}
    assert s.locked(core.cells[1]) and s.signed_names() == {"BM-1"} and s.signoff_mismatch("BM-1") == ""
    assert isinstance(heard[-1], ev.SignOffChanged) and core.unexported
    d.set_threshold(0.6)
    assert [c.name for c in s.signed_off_elsewhere()] == ["BM-1"]
    s.reopen_touched([core.cells[2]], "image(s) changed on disk after the sign-off")
    assert s.signoff_of("BM-1") is None and not s.locked(core.cells[1])
    last = heard[-1]
    assert isinstance(last, ev.SignOffChanged) and last.by == AUTOMATIC and "c2.bmp" in last.text


def test_reopen_needs_who_and_why():
    core, _d, s, _ = _signable()
    core.cells[0].review = Review("ALL", "ann", "t")
    s.sign_off("BM-1", "Dr. Ada")
    with pytest.raises(ValueError, match="needs a reason"):
        s.reopen("BM-1", "Dr. Ada", " ")
    s.reopen("BM-1", "Dr. Ada", "wrong slide")
    with pytest.raises(ValueError, match="is not signed off"):
        s.reopen("BM-1", "Dr. Ada", "again")


# ------------------------------------------------------------------------------------------ review history


def _history():
    core, d, s, heard = _signable()
    return core, s, ReviewHistory(core, d, s), heard


def test_review_steps_undo_and_redo():
    core, _s, h, heard = _history()
    step = h.review(core.cells[:2], "HEM", " ann ")
    assert step is not None and step.action == ReviewAction.REVIEW and step.reviewer == "ann"
    assert [c.review.label if c.review else None for c in core.cells] == ["HEM", "HEM", None]
    assert core.cells[0].review is not None and core.cells[0].review.model_label == "ALL"  # what the model said
    assert h.review(core.cells[:2], "HEM", "ann") is None  # nothing would change: no step
    assert h.can_undo and not h.can_redo and isinstance(heard[-1], ev.ReviewsChanged)
    undone = h.undo("bob")
    assert undone is not None and undone.action == ReviewAction.UNDO and all(c.review is None for c in core.cells)
    assert h.can_redo and h.redo("bob") is not None and core.cells[1].review is not None
    h.review([core.cells[2]], ReviewCommand.CLEAR)  # clearing nothing: no step, the redo stack stays empty
    assert h.undo_steps and not h.redo_steps


def test_accept_confirms_what_the_cell_shows_and_a_review_needs_a_reviewer():
    core, d, heard = _classified(ps=(0.95, 0.1), qc=("uniform image", ""))
    h = ReviewHistory(core, d, SignOffs(core, d))
    h.review(core.cells, ReviewCommand.ACCEPT, "ann")
    assert [c.review.label if c.review else None for c in core.cells] == [
        "EXCLUDED: failed the quality check (uniform image)",  # never a counted blast
        "HEM",
    ]
    with pytest.raises(ValueError, match="needs a reviewer"):
        h.review(core.cells, "ALL", "")
    with pytest.raises(ValueError, match="unknown review action"):
        h.review(core.cells, "maybe", "ann")


def test_a_signed_off_case_is_locked_for_reviews_undo_and_redo():
    core, s, h, _ = _history()
    h.review([core.cells[0]], ReviewCommand.ACCEPT, "ann")  # the blast confirmed
    s.sign_off("BM-1", "Dr. Ada")
    assert h.review(core.cells, "HEM", "ann") is None  # every cell is locked
    assert not h.can_undo and h.undo("ann") is None and core.cells[0].review is not None
    s.reopen("BM-1", "Dr. Ada", "one more look")
    assert h.can_undo and h.undo("ann") is not None and core.cells[0].review is None
