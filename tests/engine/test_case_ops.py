"""The case store's operations are typed like the document's events (issue 20): every operation type has a
writer, an unknown one fails loudly, and the split store keeps its one replay rule and public names."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from engine.case import ops, writer
from engine.case.kinds import CellStatus, ReviewAction, SignOffAction


def test_every_operation_type_has_a_writer():
    assert set(writer.WRITES) == set(ops.OP_TYPES)


def test_operation_types_are_frozen_dataclasses_of_one_base_and_declared():
    for t in ops.OP_TYPES:
        assert issubclass(t, ops.StoreOp) and dataclasses.is_dataclass(t) and t.__dataclass_params__.frozen
    defined = {
        t for t in vars(ops).values() if isinstance(t, type) and issubclass(t, ops.StoreOp) and t is not ops.StoreOp
    }
    assert defined == set(ops.OP_TYPES)  # a new operation must be declared (and so written)


def test_an_unknown_operation_fails_loudly_and_rolls_back(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Surprise(ops.StoreOp):
        pass

    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
    with pytest.raises(KeyError):
        writer.write(conn, [ops.SetMeta({"a": "1"}), Surprise()])
    assert conn.execute("SELECT count(*) FROM meta").fetchone()[0] == 0  # the batch is one transaction
    conn.close()


def test_enums_are_the_strings_the_record_holds():
    # the store, the CSV files and the hash chain hold these exact words: the enums must not change them
    assert [str(s) for s in CellStatus] == ["pending", "ok", "error"]
    assert f"{CellStatus.OK}" == "ok" and CellStatus("error") is CellStatus.ERROR
    assert {str(a) for a in ReviewAction} == {"review", "undo", "redo", "stale", "import", "closed", "upgrade"}
    assert [str(a) for a in SignOffAction] == ["sign_off", "reopen"]
    conn = sqlite3.connect(":memory:")
    assert conn.execute("SELECT ?, typeof(?)", (CellStatus.OK, CellStatus.OK)).fetchone() == ("ok", "text")
