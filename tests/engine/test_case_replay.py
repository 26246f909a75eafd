"""The one replay of the review log (engine/case/replay.py, issue 20): the undo history a store restores and the
history the record check derives are the same rule (the store's copy ignored ``import`` rows: an undo after reopening
a document written whole put back the label alone, without reviewer, time or image sha256); and what a loaded
document reports as unexported (it read ``Review.at``, which does not exist)."""

from __future__ import annotations

from pathlib import Path

from engine.case import CaseDocument, ModelFacts, replay
from engine.case.kinds import CellStatus
from engine.case.store import CaseStore
from engine.case.values import Review
from engine.pipeline import CellResult, ScanItem

F = ModelFacts("single", "2.1", "card-b", 0.5, 0.05, (), "CPUExecutionProvider", "Single")


def _doc(root: Path, n: int = 4) -> CaseDocument:
    doc = CaseDocument()
    cells = doc.add_items([ScanItem(root / f"c{i}.bmp", root, ".") for i in range(n)])
    doc.set_model(F)
    doc.add_results(
        F,
        [
            (c, CellResult(i, c.path, c.root, c.folder, c.file, f"sha-{i}", CellStatus.OK, "", 0.9, {}, False, ""))
            for i, c in enumerate(cells)
        ],
    )
    return doc


def test_undo_after_reopening_a_document_written_whole_restores_the_imported_review(tmp_path):
    doc = _doc(tmp_path / "slide")
    doc.review(doc.cells[:1], "HEM", "ann", at="2026-01-01T10:00:00Z")  # made before any store: written whole
    first = doc.cells[0].review
    path = tmp_path / "case.leukoscan"
    store = CaseStore.open(path)
    store.attach(doc)  # the review reaches the log as an "import" row
    store.close()

    store = CaseStore.open(path)
    doc = store.load()
    store.attach(doc)
    doc.review(doc.cells[:1], "ALL", "bob")
    store.close()

    store = CaseStore.open(path)
    doc = store.load()  # the undo stack is rebuilt from the log
    store.attach(doc)
    doc.undo("bob")
    assert doc.cells[0].review == first  # the whole review, not its label alone
    assert store.verify() is None  # and the live table is what the history leads to
    store.close()
    assert CaseStore.open(path, read_only=True).problem is None


def test_an_undo_puts_back_only_the_cells_it_logged():
    # a step of two cells, one of which went stale before the undo: the undo logged a row for the other only
    rv = {k: Review(k, "ann", "t", f"sha-{k}") for k in ("ALL", "HEM")}
    rows = [
        (1, "review", "a", None, "ALL", "ann", "t", "", "", None, None, "sha-ALL"),
        (1, "review", "b", None, "HEM", "ann", "t", "", "", None, None, "sha-HEM"),
        (0, "stale", "b", "HEM", None, "", "t", "", "", None, None, "sha-HEM"),
        (1, "undo", "a", "ALL", None, "bob", "t", "", "", None, None, "sha-ALL"),
    ]
    h = replay.replay(rows)
    assert h.current == {"a": None, "b": None}  # b stays set aside; it is not brought back by the undo
    assert not h.undo and [s.number for s in h.redo] == [1]
    assert [new for _p, _old, new in h.redo[0].changes] == [rv["ALL"], rv["HEM"]]


def test_a_loaded_document_counts_the_reviews_made_after_its_last_export(tmp_path):
    doc = _doc(tmp_path / "slide")
    path = tmp_path / "case.leukoscan"
    store = CaseStore.open(path)
    store.attach(doc)
    doc.review(doc.cells[:1], "HEM", "ann", at="2026-01-01T10:00:00Z")
    doc.mark_exported("2026-01-01T11:00:00Z")
    doc.review(doc.cells[1:3], "HEM", "ann", at="2026-01-01T12:00:00Z")
    store.close()
    loaded = CaseStore.open(path).load()
    assert loaded.unexported and loaded.exported_at == "2026-01-01T11:00:00Z"
    assert loaded.unexported_reviews() == 2  # (read Review.at, which does not exist: AttributeError)
