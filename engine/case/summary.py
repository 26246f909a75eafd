"""One row per case across many case files (``leukoscan-cli summary``), as a QuPath project table is.

A case is one opened root of a case file (:class:`.values.Case`): its sample id, sign-off and cells.  Its figures
come from the same report rows as ``export`` (:func:`.export.cell_rows`, counted by :class:`.rules.CaseCounts`),
so a summary never disagrees with a case's own report.  Case files are only read (the app may hold them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import report
from .document import CaseDocument
from .store import CaseStore, StoreError
from .values import Case

SUFFIX = ".leukoscan"

#: The columns of a summary row, in order (``leukoscan-cli summary``'s CSV; its JSON has the same keys).
COLUMNS: tuple[str, ...] = (
    "case_file",
    "sample_id",
    "folder",
    "cells",
    "included",
    "excluded",
    "pct_all",
    "pct_all_ci_low",
    "pct_all_ci_high",
    "verdict",
    "verdict_detail",
    "signed_off_by",
    "signed_off_at",
    "model",
    "model_version",
    "threshold",
    "chain_head",
    "chain_rows",
)

#: A case's state in one word: signed off (and still covering its images), ready for sign-off, open (with what is
#: left, in ``verdict_detail``), or the case file's record cannot be trusted or read.
SIGNED_OFF, SIGNED_OFF_CHANGED, READY, OPEN = "signed off", "signed off, images changed", "ready for sign-off", "open"
BROKEN, UNREADABLE = "record broken", "unreadable"


def find_case_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """The case files named by ``paths`` (a file is one; a folder is searched recursively for ``*.leukoscan``,
    hidden folders skipped), each once, in order; and what was wrong with the rest (a path missing, a folder
    holding none)."""
    found: list[Path] = []
    seen: set[str] = set()
    problems: list[str] = []
    for given in paths:
        p = Path(os.path.abspath(Path(given).expanduser()))
        if p.is_file():
            hits = [p]
        elif p.is_dir():
            hits = sorted(_walk(p))
            if not hits:
                problems.append(f"{p}: no {SUFFIX} case file in this folder")
        else:
            problems.append(f"{p}: no such file or folder")
            continue
        for h in hits:
            key = os.path.normcase(os.path.realpath(h))
            if key not in seen:
                seen.add(key)
                found.append(h)
    return found, problems


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if f.endswith(SUFFIX) and not f.startswith("."):
                yield Path(dirpath) / f


def verdict(doc: CaseDocument, case: Case) -> tuple[str, str]:
    """(verdict, detail) of one case by the document's own rules (:meth:`CaseDocument.can_sign_off`,
    :meth:`CaseDocument.signoff_mismatch`)."""
    if case.signoff is not None:
        moved = doc.signoff_mismatch(case)
        return (SIGNED_OFF_CHANGED, moved) if moved else (SIGNED_OFF, case.signoff.comment)
    ok, why = doc.can_sign_off(case)
    return (READY, "") if ok else (OPEN, why)


def _case_row(path: Path, doc: CaseDocument, case: Case, head: tuple[int, str], problem: str) -> dict[str, str]:
    from .export import cell_rows

    rows = cell_rows(doc, doc.cells_of(case))
    cc = report.count_rows(rows)
    ci = cc.pct_interval
    pct = cc.pct_blasts
    state, detail = (BROKEN, problem) if problem else verdict(doc, case)
    facts = doc.current
    so = case.signoff
    return {
        "case_file": str(path),
        "sample_id": case.sample_id,
        "folder": case.root,
        "cells": str(cc.cells),
        "included": str(cc.all + cc.hem),
        "excluded": str(cc.excluded),
        "pct_all": "" if pct is None else f"{pct:.1f}",
        "pct_all_ci_low": f"{ci[0]:.1f}" if ci else "",
        "pct_all_ci_high": f"{ci[1]:.1f}" if ci else "",
        "verdict": state,
        "verdict_detail": detail,
        "signed_off_by": so.by if so else "",
        "signed_off_at": so.at if so else "",
        "model": facts.name if facts else "",
        "model_version": facts.version if facts else "",
        "threshold": "" if doc.threshold is None else report.fmt_threshold(doc.threshold),
        "chain_head": head[1],
        "chain_rows": str(head[0]),
    }


def _file_row(path: Path, state: str, detail: str) -> dict[str, str]:
    return {**dict.fromkeys(COLUMNS, ""), "case_file": str(path), "verdict": state, "verdict_detail": detail}


def summarize_case_file(path: Path) -> list[dict[str, str]]:
    """One row per case of the case file at ``path`` (read-only); one ``unreadable`` row when it cannot be
    read, and every row ``record broken`` (with where) when its history fails :meth:`CaseStore.verify`."""
    try:
        store = CaseStore.open(path, create=False, read_only=True)
    except StoreError as exc:
        return [_file_row(path, UNREADABLE, str(exc))]
    try:
        problem = store.verify()
        head = store.head()
        doc = store.load()
    except StoreError as exc:
        return [_file_row(path, UNREADABLE, str(exc))]
    finally:
        store.close()
    cases = list(doc.cases.values())
    if not cases:
        return [_file_row(path, OPEN, "the case file holds no case")]
    return [_case_row(path, doc, c, head, "" if problem is None else str(problem)) for c in cases]


def summarize_case_files(paths: Iterable[Path]) -> list[dict[str, str]]:
    return [row for p in paths for row in summarize_case_file(p)]
