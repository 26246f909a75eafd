"""Small parts of the app without a window: thumbnails, the session store, counts, the filter proxy."""

from __future__ import annotations

from pathlib import Path

import pytest
from gui_helpers import RUN_TIMEOUT_MS  # noqa: F401  (sets QT_QPA_PLATFORM before Qt is used)

from engine.case.document import CaseDocument, ModelFacts, Review
from engine.case.store import CaseStore
from engine.pipeline import CellResult, ScanItem
from gui.cells import Cell, CellFilterProxy, CellModel
from gui.document import ALL_CASES
from gui.session import SessionFiles, lock_path, new_session_id
from gui.thumbs import ImageLoader, decode_thumbnail


def test_thumbnails_of_every_readable_format_and_none_for_broken(qapp, bad_input):
    for rel in bad_input.ok:
        img = decode_thumbnail(str(bad_input.path / rel), 96)
        assert img is not None and max(img.width(), img.height()) == 96, rel
        # a cell on a black background: the centre is brighter than the corner (not a blank tile)
        c = img.pixelColor(img.width() // 2, img.height() // 2)
        k = img.pixelColor(0, 0)
        assert c.red() + c.green() + c.blue() > k.red() + k.green() + k.blue(), rel
    for rel in bad_input.errors:
        assert decode_thumbnail(str(bad_input.path / rel), 96) is None, rel


def test_thumbnail_cache_is_bounded_and_lazy(qtbot, cells_dir):
    files = sorted(str(p) for p in cells_dir.iterdir())
    loader = ImageLoader(size=64, budget_mb=0)  # budget 0: keeps one image at most
    try:
        assert loader.get(files[0]) is None  # a miss queues a load
        qtbot.waitUntil(lambda: loader.get(files[0]) is not None, timeout=10_000)
        for f in files[1:]:
            loader.get(f)
        qtbot.waitUntil(lambda: loader.get(files[-1]) is not None, timeout=10_000)
        assert loader.cached_count() == 1
    finally:
        loader.close()


def test_session_store_claim_write_peek_and_load(tmp_path):
    files = SessionFiles(tmp_path)
    path = files.claim(files.new_path(new_session_id()))
    assert path.parent == tmp_path / "sessions" and path.name.startswith("session-") and path.suffix == ".leukoscan"
    assert lock_path(path).exists()
    doc = CaseDocument()
    doc.note_opened("/data/case 1", True)
    doc.add_items([ScanItem(Path("/data/case 1/a.bmp"), Path("/data/case 1"), ".")])
    facts = ModelFacts("ensemble", "1.0", "c" * 64, 0.5, 0.1)
    doc.set_model(facts)
    cell = doc.cells[0]
    doc.add_results(facts, [(cell, CellResult(0, cell.path, cell.root, ".", "a.bmp", "ab" * 32, "ok", "", 0.41))])
    doc.set_threshold(0.61)
    doc.review([cell], "ALL", "J. Rivera")
    store = CaseStore.open(path)
    store.attach(doc)
    store.flush()
    meta = CaseStore.peek(path)
    assert (meta["cells"], meta["reviews"], meta["model"]) == ("1", "1", "ensemble")
    store.close()
    back = CaseStore.open(path, create=False)
    try:
        got = back.load()
    finally:
        back.close()
    rv = got.cells[0].review
    assert (rv.label, rv.reviewer, rv.sha256, rv.model_label) == ("ALL", "J. Rivera", "ab" * 32, "HEM")
    assert got.thresholds == {"ensemble": 0.61} and got.opened == {"/data/case 1": True}
    assert got.cells[0].result is not None and got.cells[0].prediction == "HEM"  # 0.41 < 0.61: no classification
    assert files.orphans() == []  # held by this window
    files.release()
    assert files.orphans() == [path]  # lock free (a normal close also writes closed_at: see the service)
    with pytest.raises(ValueError):
        Review("BLAST", "x", "t", "s")


class _R:  # the fields of engine.pipeline.CellResult that the counts read
    def __init__(self, status, p):
        self.status, self.error = status, "" if status == "ok" else "broken"
        self.p_all = p if status == "ok" else None


def _cell(case, status="ok", pred="ALL", nr=False, review=None, name="c.bmp"):
    c = Cell(Path(f"/{case}/{name}"), Path(f"/{case}"), ".", case)
    c.result = None if status == "pending" else _R(status, 0.7 if pred == "ALL" else 0.2)
    c.prediction = pred if status == "ok" else None
    c.flagged = nr
    if review:
        c.review = Review(review, "t", "now", "x", model_label=c.prediction)
    return c


def _doc(specs):
    """A document whose cells have the given (case, name, p_all or "error"/"pending", review label)."""
    doc = CaseDocument()
    facts = ModelFacts("m", "1", "d" * 64, 0.5, 0.1)
    doc.set_model(facts)
    items = [ScanItem(Path(f"/{case}/{name}"), Path(f"/{case}"), ".") for case, name, _p, _rv in specs]
    cells = doc.add_items(items)
    results = []
    for i, (c, (_case, _name, p, _rv)) in enumerate(zip(cells, specs)):
        if p == "pending":
            continue
        st = "error" if p == "error" else "ok"
        results.append(
            (
                c,
                CellResult(
                    i,
                    c.path,
                    c.root,
                    ".",
                    c.file,
                    "ab" * 32,
                    st,
                    "broken" if st != "ok" else "",
                    None if st != "ok" else p,
                ),
            )
        )
    doc.add_results(facts, results)
    for c, (_case, _name, _p, rv) in zip(cells, specs):
        if rv:
            doc.review([c], rv, "t")
    return doc


def test_counts_use_the_final_label_per_case_and_total():
    doc = _doc(
        [
            ("A", "1", 0.9, ""),
            ("A", "2", 0.45, ""),  # 0.45: inside the review margin (flagged)
            ("A", "3", 0.55, "HEM"),
            ("A", "4", "error", ""),  # 0.55: flagged, reviewed (overridden)
            ("B", "5", 0.1, ""),
            ("B", "6", "pending", ""),
        ]
    )
    a, b, total = doc.counts(ALL_CASES)
    assert (a.cells, a.classified, a.all, a.hem, a.review_open, a.flagged, a.errors, a.reviewed, a.overridden) == (
        4,
        3,
        1,
        2,
        1,
        2,
        1,
        1,
        1,
    )
    assert a.pct_blasts == pytest.approx(100 / 3)
    assert (b.cells, b.classified, b.hem, b.pending) == (2, 1, 1, 1)
    assert total.case == ALL_CASES and total.cells == 6 and total.all == 1 and total.hem == 3
    assert total.pct_blasts is None  # no pooled % blasts over several patients


def test_filter_proxy_by_case_kind_and_text(qapp):
    model = CellModel()
    model.add_cells(
        [
            _cell("A", pred="ALL", name="x1"),
            _cell("A", pred="HEM", nr=True, name="x2"),
            _cell("B", status="error", name="y1"),
            _cell("B", pred="ALL", review="HEM", name="y2"),
        ]
    )
    assert model.add_cells([_cell("A", name="x1")]) == []  # the same path twice is one row
    px = CellFilterProxy()
    px.setSourceModel(model)
    assert px.rowCount() == 4
    px.set_case("B")
    assert px.rowCount() == 2
    px.set_kind("errors")
    assert [px.cell_at(r).file for r in range(px.rowCount())] == ["y1"]
    px.set_case(None)
    px.set_kind("overridden")
    assert [px.cell_at(r).file for r in range(px.rowCount())] == ["y2"]
    px.set_kind("review_open")
    assert [px.cell_at(r).file for r in range(px.rowCount())] == ["x2"]
    px.set_kind("all")
    px.set_text("Y")
    assert sorted(px.cell_at(r).file for r in range(px.rowCount())) == ["y1", "y2"]


def test_filter_proxy_by_p_all_range(qapp):
    model = CellModel()
    cells = [_cell("A", pred="ALL", name="hi"), _cell("A", pred="HEM", name="lo"), _cell("A", status="error", name="e")]
    model.add_cells(cells)
    px = CellFilterProxy()
    px.setSourceModel(model)
    px.set_p_range(0.5, 1.0)
    assert [px.cell_at(r).file for r in range(px.rowCount())] == ["hi"]  # P(ALL) 0.7; errors have none
    px.set_p_range(0.0, 0.3)
    assert [px.cell_at(r).file for r in range(px.rowCount())] == ["lo"]
    px.set_p_range(0.0, 1.0)
    assert px.rowCount() == 3


def test_card_view_states_the_test_time_views(tmp_path):
    import json

    from tinymodels import make_tiny_model

    from engine.card import load_card
    from gui.dialogs import card_html

    plain = make_tiny_model(tmp_path, "plain")
    assert "the cell as it is" in card_html(load_card(plain))
    tta = make_tiny_model(tmp_path, "tta")
    card = json.loads(tta.read_text())
    card["test_time_augmentation"] = {"views": [0, 5, 2]}
    tta.write_text(json.dumps(card))
    assert "mean over 3 rotations/mirrors" in card_html(load_card(tta))


def test_card_view_states_the_held_out_donors_in_plain_words(tmp_path):
    import json

    from tinymodels import make_tiny_model

    from engine.card import load_card
    from engine.heldout import held_out_block
    from gui.dialogs import card_html

    path = make_tiny_model(tmp_path, "honest")
    assert "never saw" not in card_html(load_card(path))  # no block, no claim
    card = json.loads(path.read_text())
    card["metrics"]["held_out"] = held_out_block(
        {"1": {"n": 10, "class": "ALL", "accuracy": 0.9}, "H1": {"n": 10, "class": "HEM", "accuracy": 0.8}},
        {"ALL": {"recall": 0.9}, "HEM": {"recall": 0.8}},
        "fold 1 of a split by subject",
    )
    path.write_text(json.dumps(card))
    html = card_html(load_card(path))
    assert "2 donors the model never saw" in html and "8 of 10 normal cells called normal" in html
    assert html.index("never saw") < html.index("Validation metrics")  # plain words come first


def test_every_document_event_type_has_a_bridge_handler():
    """Typed events (refactoring issue, item 2): the window's bridge covers every kind the document emits."""
    from engine.case.events import EVENT_TYPES
    from gui.document import HANDLERS

    assert set(HANDLERS) == set(EVENT_TYPES)


def test_pct_blasts_of_a_run_still_going_is_labelled_partial():
    """Review-safety issue, item 5: "1 of 60 classified" is not a result."""
    from engine.case.rules import CaseCounts
    from gui.summary import pct_text

    cc = CaseCounts("slide")
    cc.add("ok", "ALL", False, False)
    for _ in range(59):
        cc.add(None, None, False, False)
    assert pct_text(cc).startswith("partial: 100.0") and "1 of 60 classified" in pct_text(cc)
    done = CaseCounts("slide")
    done.add("ok", "ALL", False, False)
    done.add("ok", "HEM", False, False)
    assert not pct_text(done).startswith("partial")


def test_settings_live_in_the_user_data_folder(tmp_path, monkeypatch):
    """Case-record issue, item 5: the app wrote ~/.config/LeukoScan/LeukoScan.conf although the README says
    the settings live in the user data folder."""
    from gui.settings import Settings, settings_path, user_data_dir

    assert settings_path() == user_data_dir() / "settings.ini"
    s = Settings()
    s.reviewer = "ann"
    del s
    assert settings_path().is_file() and "ann" in settings_path().read_text()
