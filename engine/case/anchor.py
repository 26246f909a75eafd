"""A printed report as the anchor of a case record: ``leukoscan-cli verify STORE --report FILE``.

The hash chain (:mod:`.audit`) shows any change made by anything but LeukoScan's own appends, but a person with
write access and a copy of the code can cut rows off its end or hash the whole chain again, and it is then
intact in itself.  The signed PDF and the summary CSV print the chain's length and head (the hash of its last
row) when they were written; a record is then checked against what was printed: the row of that number must
still exist and still have that hash.  Rows appended since are listed (they may be honest later work).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import NamedTuple

from ..report import csv_rows
from . import audit

__all__ = ["Anchor", "AnchorError", "compare", "read_anchor", "record_line"]

_LINE = re.compile(r"(\d+) history rows, chain head ([0-9a-f]{64})")


class Anchor(NamedTuple):
    """What a report printed of its record: the chain's length and head."""

    rows: int
    head: str


class AnchorError(ValueError):
    """The file names no case record (no chain head printed in it)."""


def record_line(rows: int, head: str) -> str:
    """How a report prints the record it was written from (one line; :func:`read_anchor` reads it back)."""
    return f"Case record: {rows} history rows, chain head {head}"


def _from_pdf(data: bytes) -> list[Anchor]:
    """The PDF's keywords (its document information, not compressed) hold the line."""
    return [Anchor(int(m.group(1)), m.group(2)) for m in _LINE.finditer(data.decode("latin-1"))]


def read_anchor(path: str | Path) -> Anchor:
    """The chain length and head a report printed: a summary CSV's ``record_rows``/``record_head`` columns, or
    the "Case record" line of a PDF.  :class:`AnchorError` when there is none, or two that differ."""
    path = Path(path)
    data = path.read_bytes()
    found: list[Anchor] = []
    if data.startswith(b"%PDF"):
        found = _from_pdf(data)
    else:
        for r in csv_rows(data.decode("utf-8-sig", errors="replace")):  # any delimiter a summary was written with
            if (r.get("record_rows") or "").strip().isdigit() and re.fullmatch(
                r"[0-9a-f]{64}", r.get("record_head") or ""
            ):
                found.append(Anchor(int(r["record_rows"]), r["record_head"]))
    if not found:
        raise AnchorError(
            f"{path} names no case record (no chain head in it: a report written before case file version 4, or not from a case store)"
        )
    if len(set(found)) > 1:
        raise AnchorError(
            f"{path} names more than one case record state ({len(set(found))}): print one report per record"
        )
    return found[0]


def compare(conn: sqlite3.Connection, anchor: Anchor) -> tuple[bool, list[str]]:
    """(the record still holds what the report printed, the lines that say so): the chain row number
    ``anchor.rows`` must exist with the hash ``anchor.head``; the rows added since are listed."""
    rows = audit.chain_rows(conn)
    n = len(rows)
    if anchor.rows == 0:
        return True, [f"the report was printed from an empty history; {n} rows added since"]
    if n < anchor.rows:
        return False, [
            f"truncated: the report was printed at {anchor.rows} history rows (head {anchor.head[:16]}), "
            f"the record now has {n}: {anchor.rows - n} row(s) were cut off its end"
        ]
    at = rows[anchor.rows - 1]
    if at.seq != anchor.rows or at.hash != anchor.head:
        return False, [
            f"rewritten: history row #{anchor.rows} has hash {at.hash[:16]}, the report printed {anchor.head[:16]}: "
            "the record was changed (or hashed again) after the report was printed"
        ]
    later = rows[anchor.rows :]
    lines = [f"holds the record the report printed ({anchor.rows} history rows, head {anchor.head[:16]})"]
    if later:
        lines.append(f"{len(later)} row(s) added since the report:")
        lines += [f"  {r.describe()}" for r in later]
    return True, lines
