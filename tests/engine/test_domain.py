"""The ground floor (engine.domain): labels typed and written once, the store's error kinds and side files."""

from __future__ import annotations

import os

import pytest

from engine import card
from engine.case import rules as case_rules
from engine.case.schema import StoreError, move_aside
from engine.domain import labels
from engine.domain.kinds import StoreErrorKind
from engine.domain.labels import ALL, HEM, LABELS, Call, Excluded, is_excluded, label_class, parse_label
from engine.domain.store_files import SQLITE_FILES, WAL_FILES, store_paths
from engine.report import ReportRow, count_rows


def test_a_label_reads_and_writes_the_stored_text():
    assert parse_label("ALL") is Call.ALL and parse_label("HEM") is Call.HEM
    ex = parse_label("EXCLUDED: not a cell")
    assert ex == Excluded("not a cell") and str(ex) == "EXCLUDED: not a cell"
    assert str(Call.ALL) == "ALL" and LABELS == (ALL, HEM) == ("ALL", "HEM")
    for bad in (None, "", "all", "EXCLUDED", "EXCLUDED: ", "EXCLUDED:x", 3):
        assert parse_label(bad) is None, bad
    assert labels.excluded_label("  not  a cell ") == "EXCLUDED: not a cell"
    with pytest.raises(ValueError):
        labels.excluded_label(" ")


def test_excluded_is_one_rule_for_a_label_and_its_class():
    assert is_excluded("EXCLUDED: artefact") and is_excluded(label_class("EXCLUDED: artefact"))
    assert not is_excluded("ALL") and not is_excluded(None) and not is_excluded("EXCLUDED: ")
    assert label_class("EXCLUDED: artefact") == "EXCLUDED" and label_class("HEM") == "HEM"


def test_the_class_names_are_one_tuple():
    assert card.CLASSES is LABELS and case_rules.LABELS is LABELS


def test_store_error_kinds_are_the_stored_words():
    assert StoreErrorKind.DAMAGED == "damaged" and StoreErrorKind.SIGNED_OFF == "signed_off"
    assert {k for k in StoreErrorKind if k.movable} == {StoreErrorKind.DAMAGED, StoreErrorKind.NOT_SQLITE}
    assert StoreError("x").kind is StoreErrorKind.DAMAGED


def test_one_rule_for_a_stores_side_files(tmp_path):
    store = tmp_path / "a.leukoscan"
    assert [p.name for p in store_paths(store, lock=True)] == [
        "a.leukoscan",
        "a.leukoscan-wal",
        "a.leukoscan-shm",
        "a.leukoscan-journal",
        "a.leukoscan.lock",
    ]
    assert set(WAL_FILES) < set(SQLITE_FILES)
    for p in store_paths(store):
        p.write_bytes(b"x")
    moved = move_aside(store)  # every SQLite file beside it goes along
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in store_paths(moved))


def test_one_final_label_rule_for_a_report_row():
    rows = [
        {"status": "ok", "prediction": "ALL", "reviewed_label": "", "qc": ""},
        {"status": "ok", "prediction": "ALL", "reviewed_label": "HEM", "qc": ""},
        {"status": "ok", "prediction": "HEM", "reviewed_label": "", "qc": "blank"},
        {"status": "ok", "prediction": "HEM", "reviewed_label": "EXCLUDED: duplicate", "qc": ""},
    ]
    typed = [ReportRow.from_csv(r) for r in rows]  # a report read back: the rule applied in one place
    assert [r.final_label for r in typed] == [
        "ALL",
        "HEM",
        "EXCLUDED: failed the quality check (blank)",
        "EXCLUDED: duplicate",
    ]
    assert [r.excluded_reason for r in typed][2:] == ["failed the quality check (blank)", "duplicate"]
    cc = count_rows(typed)
    assert (cc.all, cc.hem, cc.excluded) == (1, 1, 2)
