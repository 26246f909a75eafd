"""The one rule for "a person looked" (issue 26 item 8): a cell left before sign-off (a flagged cell or an ALL
call) is reviewed only after it was shown on screen, and its review says where."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.case import CaseDocument, ModelFacts
from engine.case.rules import SHOWN_IN, seen_enough
from engine.pipeline import CellResult, ScanItem

FACTS = ModelFacts("m", "1", "card", 0.5, 0.1)


def _doc() -> CaseDocument:
    doc = CaseDocument()
    root = Path("/data/slide")
    cells = doc.add_items([ScanItem(root / f"c{i}.bmp", root, ".") for i in range(3)])
    doc.set_model(FACTS)
    ps = (0.95, 0.05, 0.97)  # ALL, HEM, ALL
    doc.add_results(
        FACTS,
        [
            (c, CellResult(i, c.path, root, ".", c.file, f"s{i}", "ok", "", p, {}, False, ""))
            for i, (c, p) in enumerate(zip(cells, ps, strict=True))
        ],
    )
    return doc


def test_a_cell_left_before_sign_off_needs_to_have_been_shown():
    assert not seen_enough(True, "")
    assert all(seen_enough(True, where) for where in SHOWN_IN)
    assert seen_enough(False, "")


def test_the_document_names_the_unseen_blast_calls_and_the_review_records_where_a_cell_was_seen():
    doc = _doc()
    a0, h1, a2 = doc.cells
    assert doc.unseen(doc.cells) == [a0, a2]
    doc.mark_shown([a2], "gallery page")
    assert doc.unseen(doc.cells) == [a0]
    doc.review([a2], "accept", "tech1")
    assert a2.review.shown_in == "gallery page"
    with pytest.raises(ValueError):
        doc.mark_shown([a0], "somewhere")
