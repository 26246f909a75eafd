"""Small parts of the app without a window: thumbnails, session files, counts, the filter proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui_helpers import RUN_TIMEOUT_MS  # noqa: F401  (sets QT_QPA_PLATFORM before Qt is used)
from gui.cells import Cell, CellFilterProxy, CellModel
from gui.session import ReviewRecord, SessionFiles, SessionState
from gui.summary import ALL_CASES, count_cases
from gui.thumbs import ThumbnailLoader, decode_thumbnail


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
    loader = ThumbnailLoader(size=64, budget_mb=0, threads=1)  # budget 0: keeps one image at most
    try:
        assert loader.get(files[0]) is None  # a miss queues a load
        qtbot.waitUntil(lambda: loader.get(files[0]) is not None, timeout=10_000)
        for f in files[1:]:
            loader.get(f)
        qtbot.waitUntil(lambda: loader.get(files[-1]) is not None, timeout=10_000)
        assert loader.cached_count() == 1
    finally:
        loader.close()


def test_session_json_round_trip_and_atomic_write(tmp_path):
    st = SessionState(model="ensemble", threshold=0.61, folders=["/data/case 1", "/data/cell.bmp"])
    st.reviews["/data/case 1/a.bmp"] = ReviewRecord("ALL", "J. Rivera", "2026-11-26T10:00:00Z", "ab" * 32, "HEM", 0.41)
    path = tmp_path / "sessions" / "session-x.json"
    SessionFiles.write(path, st)
    back = SessionState.from_json(path.read_text(encoding="utf-8"))
    assert back.reviews == st.reviews and back.threshold == 0.61 and back.folders == st.folders
    assert [p.name for p in path.parent.iterdir()] == ["session-x.json"]  # no temp file left behind
    with pytest.raises(ValueError):
        ReviewRecord("BLAST", "x", "t", "s")
    with pytest.raises(ValueError):
        SessionState.from_json('{"version": 99}')


class _R:  # the fields of engine.pipeline.CellResult that the counts read
    def __init__(self, status, p):
        self.status, self.error = status, "" if status == "ok" else "broken"
        self.p_all = p if status == "ok" else None


def _cell(case, status="ok", pred="ALL", nr=False, review=None, name="c.bmp"):
    c = Cell(Path(f"/{case}/{name}"), Path(f"/{case}"), ".", case)
    c.result = None if status == "pending" else _R(status, 0.7 if pred == "ALL" else 0.2)
    c.prediction = pred if status == "ok" else None
    c.needs_review = nr
    if review:
        c.review = ReviewRecord(review, "t", "now", "x")
    return c


def test_counts_use_the_final_label_per_case_and_total():
    cells = [
        _cell("A", pred="ALL", name="1"), _cell("A", pred="HEM", nr=True, name="2"),
        _cell("A", pred="ALL", review="HEM", nr=True, name="3"), _cell("A", status="error", name="4"),
        _cell("B", pred="HEM", name="5"), _cell("B", status="pending", name="6"),
    ]
    a, b, total = count_cases(cells)
    assert (a.cells, a.classified, a.all, a.hem, a.needs_review, a.errors, a.reviewed) == (4, 3, 1, 2, 1, 1, 1)
    assert a.pct_blasts == pytest.approx(100 / 3)
    assert (b.cells, b.classified, b.hem) == (2, 1, 1)
    assert total.case == ALL_CASES and total.cells == 6 and total.all == 1 and total.hem == 3


def test_filter_proxy_by_case_kind_and_text(qapp):
    model = CellModel()
    model.add_cells([
        _cell("A", pred="ALL", name="x1"), _cell("A", pred="HEM", nr=True, name="x2"),
        _cell("B", status="error", name="y1"), _cell("B", pred="ALL", review="HEM", name="y2"),
    ])
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
    px.set_kind("needs_review")
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

    from engine.card import load_card
    from gui.dialogs import card_html
    from tinymodels import make_tiny_model

    plain = make_tiny_model(tmp_path, "plain")
    assert "the cell as it is" in card_html(load_card(plain))
    tta = make_tiny_model(tmp_path, "tta")
    card = json.loads(tta.read_text())
    card["test_time_augmentation"] = {"views": [0, 5, 2]}
    tta.write_text(json.dumps(card))
    assert "mean over 3 rotations/mirrors" in card_html(load_card(tta))


def test_card_view_states_the_held_out_donors_in_plain_words(tmp_path):
    import json

    from engine.card import load_card
    from engine.heldout import held_out_block
    from gui.dialogs import card_html
    from tinymodels import make_tiny_model

    path = make_tiny_model(tmp_path, "honest")
    assert "never saw" not in card_html(load_card(path))  # no block, no claim
    card = json.loads(path.read_text())
    card["metrics"]["held_out"] = held_out_block(
        {"1": {"n": 10, "class": "ALL", "accuracy": 0.9}, "H1": {"n": 10, "class": "HEM", "accuracy": 0.8}},
        {"ALL": {"recall": 0.9}, "HEM": {"recall": 0.8}}, "fold 1 of a split by subject")
    path.write_text(json.dumps(card))
    html = card_html(load_card(path))
    assert "2 donors the model never saw" in html and "8 of 10 normal cells called normal" in html
    assert html.index("never saw") < html.index("Validation metrics")  # plain words come first
