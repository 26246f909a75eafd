"""A case is its root folder, never its display name (issue 17, item 1: one patient per record).

Found by a probe: two ``leukoscan-cli classify --store`` runs that loaded the case file before either
wrote both named their case ``patientA`` (two folders of that name on two sites); read back, the cells of
both patients were pooled into one case: one count, one % blasts, one sign-off."""

from __future__ import annotations

from pathlib import Path

from engine.case import CaseDocument, ModelFacts
from engine.case.store import CaseStore
from engine.pipeline import CellResult, ScanItem

FACTS = ModelFacts("m", "1", "card", 0.5, 0.1)


def _items(root: Path, n: int) -> list[ScanItem]:
    return [ScanItem(root / f"c{i}.bmp", root, ".") for i in range(n)]


def _classify(doc: CaseDocument, cells, p: float) -> None:
    doc.set_model(FACTS)
    doc.add_results(
        FACTS,
        [
            (c, CellResult(i, c.path, c.root, ".", c.file, f"sha-{c.key}", "ok", "", p, {}, False, ""))
            for i, c in enumerate(cells)
        ],
    )


def _two_runs_that_loaded_before_either_wrote(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Patient A (3 cells, all ALL) from site 1 and patient B (2 cells, all HEM) from site 2, both in a
    folder named ``patientA``, written into one case file by two runs that each loaded it empty."""
    db = tmp_path / "case.db"
    a, b = tmp_path / "site1" / "patientA", tmp_path / "site2" / "patientA"
    s1, s2 = CaseStore.open(db), CaseStore.open(db)
    d1, d2 = s1.load(), s2.load()  # both load before either writes
    s1.attach(d1)
    s2.attach(d2)
    _classify(d1, d1.add_items(_items(a, 3)), 0.9)
    _classify(d2, d2.add_items(_items(b, 2)), 0.1)
    assert d1.cases[str(a)].name == d2.cases[str(b)].name == "patientA"  # each run named its case so
    assert s1.close() and s2.close()
    return db, a, b


def _load(db: Path) -> CaseDocument:
    store = CaseStore.open(db, create=False)
    try:
        return store.load()
    finally:
        store.close()


def test_two_cases_stored_with_one_display_name_stay_two_cases(tmp_path):
    db, a, b = _two_runs_that_loaded_before_either_wrote(tmp_path)
    doc = _load(db)
    assert set(doc.cases) == {str(a), str(b)}  # (in the order the two runs happened to write)
    ca, cb = doc.cases[str(a)], doc.cases[str(b)]
    assert ca.name != cb.name  # a display name names one case in the document
    assert [c.file for c in doc.cells_of(ca.name)] == ["c0.bmp", "c1.bmp", "c2.bmp"]
    assert [c.file for c in doc.cells_of(cb.name)] == ["c0.bmp", "c1.bmp"]
    assert {str(c.root) for c in doc.cells_of(cb.name)} == {str(b)}
    counts = {cc.case: (cc.cells, cc.all, cc.hem) for cc in doc.counts("total")}
    assert counts == {ca.name: (3, 3, 0), cb.name: (2, 0, 2), "total": (5, 3, 2)}  # never pooled
    assert doc.case_named(cb.name) is cb


def test_a_review_or_sign_off_of_one_case_does_not_reach_the_other(tmp_path):
    db, a, b = _two_runs_that_loaded_before_either_wrote(tmp_path)
    doc = _load(db)
    ca, cb = doc.cases[str(a)], doc.cases[str(b)]
    doc.review(list(doc.cells_of(ca.name)), "accept", "ann")
    doc.set_sample_id(ca, "BM-A")
    assert doc.can_sign_off(ca) == (True, "")
    doc.sign_off(ca, "ann")
    assert all(doc.locked(c) for c in doc.cells_of(ca.name))
    assert not any(doc.locked(c) for c in doc.cells_of(cb.name))  # patient B is not signed off
    assert doc.review(list(doc.cells_of(cb.name)), "ALL", "bob") is not None


def test_cells_of_takes_the_case_itself_or_its_root(tmp_path):
    db, a, b = _two_runs_that_loaded_before_either_wrote(tmp_path)
    doc = _load(db)
    cb = doc.cases[str(b)]
    assert (
        [c.key for c in doc.cells_of(cb)]
        == [c.key for c in doc.cells_of(str(b))]
        == [str(b / "c0.bmp"), str(b / "c1.bmp")]
    )
    assert list(doc.cells_of("no such case")) == []
    assert len(list(doc.cells_of(None))) == 5


def test_a_new_root_whose_folder_name_is_taken_gets_its_own_name():
    doc = CaseDocument()
    doc.add_items(
        _items(Path("/site1/patientA"), 1) + _items(Path("/site2/patientA"), 1) + _items(Path("/site3/x/patientA"), 1)
    )
    names = [c.name for c in doc.cases.values()]
    assert len(set(names)) == 3 and names[0] == "patientA"
    assert [len(list(doc.cells_of(n))) for n in names] == [1, 1, 1]
