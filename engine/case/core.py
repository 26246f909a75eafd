"""What every part of the case document shares (:class:`DocumentCore`): the cases, the cells, the listeners and
the export bookkeeping.

The document (:class:`~.document.CaseDocument`) is this core and three parts that each stand on it:
:class:`~.decisions.Decisions` (models, thresholds, the class and flag of each cell), :class:`~.signoffs.SignOffs`
(sign-off, reopen, what is locked) and :class:`~.history.ReviewHistory` (reviews, undo and redo).  A part changes
the core only through it, and announces each change through :meth:`DocumentCore.emit`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..pipeline import ScanItem
from . import events as ev
from .cell import Cell
from .progress import ReviewProgress
from .values import Case, Review, utc_now

__all__ = ["DocumentCore", "Listener", "checked_name"]

Listener = Callable[[ev.CaseEvent], None]


def checked_name(name: str | None) -> str:
    """A reviewer's or signer's name with runs of spaces collapsed; ValueError (:class:`.audit.RecordRefused`)
    when it holds control characters: refused here, before the window shows a change the store would refuse."""
    from .audit import check_name

    return check_name(str(name or ""))


class DocumentCore(ReviewProgress):
    """The cases (by root), the cells (by path), what was opened, the listeners and whether anything changed
    since the last export."""

    def __init__(self, session_id: str | None = None) -> None:
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.started = utc_now()
        self.cases: dict[str, Case] = {}  # root -> Case, in opening order
        self.cells: list[Cell] = []
        self._by_key: dict[str, Cell] = {}
        self.opened: dict[str, bool] = {}  # what was opened (path -> is a folder), what a restore re-scans
        self.exported_at = ""
        self.unexported = False  # reviews, thresholds, sample ids or sign-offs changed since the last export
        self._exported_reviews: dict[str, Review] | None = None  # the reviews of the last export (None: a
        #                                                            loaded document: those made before it)
        self._listeners: list[Listener] = []
        self.revision = 0

    # --- events ---------------------------------------------------------------------------------------
    def subscribe(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn(event)`` after every change; returns the function that unsubscribes."""
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def emit(self, event: ev.CaseEvent) -> None:
        self.revision += 1  # any change: an export taken at an earlier revision does not cover it
        for fn in list(self._listeners):
            fn(event)

    # --- cases and cells ------------------------------------------------------------------------------
    def case_of_root(self, root: str | Path) -> Case:
        """The case of an opened root, created with a unique display name on first use.  A case *is* its
        root (the key of :attr:`cases`, and each cell's :attr:`Cell.root`); the display name only labels it."""
        key = str(root)
        case = self.cases.get(key)
        if case is None:
            case = self.cases[key] = Case(key, self.unique_name(key))
            self.emit(ev.CaseAdded(key))
        return case

    def unique_name(self, root: str, wanted: str = "") -> str:
        """A display name for the case of ``root`` that no other case of the document has: ``wanted`` (a
        stored name; default the folder's name), else "name (parent)", else "name (parent) 2", ..."""
        p = Path(root)
        used = {c.name for r, c in self.cases.items() if r != root}
        name = wanted or p.name or root
        if name in used:
            name = f"{p.name or name} ({p.parent.name or p.parent})"
        base, n = name, 2
        while name in used:
            name, n = f"{base} {n}", n + 1
        return name

    def case_named(self, name: str) -> Case | None:
        return next((c for c in self.cases.values() if c.name == name), None)

    def find_case(self, case: Case | str) -> Case:
        """A case given as a :class:`Case`, its root or its display name (KeyError when there is none)."""
        if isinstance(case, Case):
            return case
        found = self.cases.get(str(case)) or self.case_named(str(case))
        if found is None:
            raise KeyError(f"no case {case!r} in the document")
        return found

    def set_sample_id(self, case: Case, sample_id: str) -> None:
        """Raises ValueError while the case is signed off (the id is part of what was signed)."""
        sample_id = " ".join(sample_id.split())
        if case.signoff is not None and sample_id != case.sample_id:
            raise ValueError(f"{case.label} is signed off: reopen it to change its sample id")
        if sample_id != case.sample_id:
            case.sample_id = sample_id
            self.unexported = True
            self.emit(ev.CaseAdded(case.root))

    def note_opened(self, path: str, is_dir: bool) -> None:
        if path not in self.opened:
            self.opened[path] = is_dir
            self.emit(ev.PathOpened(path))

    def cell(self, key: str) -> Cell | None:
        return self._by_key.get(key)

    def holds(self, cell: Cell) -> bool:
        """``cell`` is this document's (not one of cases closed since, of the same path)."""
        return self._by_key.get(cell.key) is cell

    def new_cells(self, items: Iterable[ScanItem]) -> list[Cell]:
        """Cells for scanned items not already in the document (by path), registered but not announced."""
        new = []
        for it in items:
            key = str(it.path)
            if key in self._by_key:
                continue
            c = Cell(it.path, it.root, it.folder, self.case_of_root(it.root).name, it)
            self._by_key[key] = c
            self.cells.append(c)
            new.append(c)
        return new

    def forget_cells(self) -> None:
        """Every case, cell and opened path gone (closing: :meth:`.document.CaseDocument.clear`)."""
        self.cases.clear()
        self.cells = []
        self._by_key.clear()
        self.opened.clear()
        self.unexported = False
        self._exported_reviews = {}
        self.shown.clear()

    def cells_of(self, case: Case | str | None) -> Iterator[Cell]:
        """The cells of one case (a :class:`Case`, its root or its display name; None: every cell), by root:
        two cases never pool their cells, whatever they are called.  An unknown case has none."""
        if case is None:
            return iter(self.cells)
        found = case if isinstance(case, Case) else (self.cases.get(str(case)) or self.case_named(str(case)))
        if found is None:
            return iter(())
        root = Path(found.root)
        return (c for c in self.cells if c.root == root)

    @property
    def sample_ids(self) -> dict[str, str]:
        """root -> the sample id typed for that case (cases without one are absent)."""
        return {c.root: c.sample_id for c in self.cases.values() if c.sample_id}

    # --- exports --------------------------------------------------------------------------------------
    def mark_exported(self, at: str | None = None) -> None:
        self.exported_at = at or utc_now()
        self.unexported = False
        self._exported_reviews = {c.key: c.review for c in self.cells if c.review is not None}
        self.emit(ev.Exported(self.exported_at))

    def unexported_reviews(self) -> int:
        """How many cells' reviews were made, changed or cleared since the last export (0 when nothing is
        unexported): what closing would leave out of every report.  For a document loaded from a store, the
        reviews made after its last export (``exported_at``)."""
        if not self.unexported:
            return 0
        base = self._exported_reviews
        if base is None:
            return sum(
                1
                for c in self.cells
                if c.review is not None and (not self.exported_at or (c.review.reviewed_at or "") > self.exported_at)
            )
        return sum(1 for c in self.cells if c.review != base.get(c.key))

    def note_closed(self, at: str | None = None) -> None:
        """The window showing this document closed normally (its store is then no orphan to restore)."""
        self.emit(ev.Closed(at or utc_now()))
