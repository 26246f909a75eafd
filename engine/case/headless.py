"""A headless classification into a case file (``leukoscan-cli classify --store``), and the re-hash of images
whose size or mtime changed (:func:`rehash_changed`, also the app's)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..fileio import FileRefused, read_regular_file
from ..pipeline import CellResult, ScanItem
from . import rules
from .cell import Cell
from .document import CaseDocument
from .images import (
    ImageChange,
    NotTheCase,
    case_images,
    compare_stored,
    hash_files,
    paths_to_hash,
    refuse_other_samples,
)
from .kinds import CellStatus, StoreErrorKind
from .records import store_name
from .schema import StoreError
from .values import ModelFacts
from .writer import file_stat

if TYPE_CHECKING:
    from .store import CaseStore  # (the store re-exports this module's names: no import at run time)

__all__ = ["HeadlessRun", "SignedOffChanged", "rehash_changed"]


def rehash_changed(doc: CaseDocument, keys: Iterable[str], store: CaseStore | None = None) -> list[Cell]:
    """Of these cells (from :meth:`CaseStore.changed_files`), those whose image content really changed
    (its sha256 is not the one classified or reviewed); pass them to ``doc.content_changed``.  With
    ``store``, the unchanged ones (only touched) get their new size/mtime stored, so they are not
    re-hashed next time.  Unreadable files are left alone (a classification says why)."""
    changed: list[Cell] = []
    touched: list[tuple[str, int | None, int | None]] = []
    for key in keys:
        cell = doc.cell(key)
        if cell is None:
            continue
        known = {r.sha256 for r in cell.results.values() if r.sha256}
        if cell.review is not None and cell.review.sha256:
            known.add(cell.review.sha256)
        if not known:
            continue
        try:
            sha = hashlib.sha256(read_regular_file(cell.path)).hexdigest()
        except (OSError, FileRefused):
            continue
        if any(s != sha for s in known):
            changed.append(cell)
        else:
            touched.append((key, *file_stat(key)))
    if store is not None and touched:
        store.record_stats(touched)
    return changed


class SignedOffChanged(StoreError):
    """A headless run would change the images of a signed-off case and no reason to reopen it was given."""

    def __init__(self, message: str):
        super().__init__(message, StoreErrorKind.SIGNED_OFF)


class HeadlessRun:
    """A headless classification into a case file (``leukoscan-cli classify --store``): the scanned
    items are added to the stored document, the cells that already have a valid result of this model
    (same card, file unchanged since) are skipped, and results are stored ``chunk`` at a time as they
    arrive, so an overnight run can be opened in the app and reviewed without classifying again.

    ``todo``: the items to classify (``classify(run.todo, ...)``; each result's ``index`` is into it);
    :meth:`add` each result; :meth:`finish` stores the rest and closes the store (returns its write errors).
    """

    def __init__(
        self,
        store: CaseStore,
        facts: ModelFacts,
        items: Sequence[ScanItem],
        threshold: float | None = None,
        opened: Iterable[tuple[str, bool]] = (),
        chunk: int = 64,
        reopen: str | None = None,
        reopened_by: str = "",
        sample_id: str | None = None,
    ):
        self.store, self.facts, self.chunk = store, facts, max(1, chunk)
        self.doc = doc = store.load()
        stored = case_images(doc, items)  # the folders the file holds a case of, compared by sha256 (as the app does)
        images = compare_stored(stored, items, hash_files(paths_to_hash(stored, items)))
        refuse_other_samples(images, doc, store.path)  # raises before anything is written
        sample_id = self._one_patient(items, sample_id)  # raises before anything is written
        touched = self._signed_off_changes(images, reopen, facts, threshold)  # raises before anything is written
        #: what was said about the run (images gone from a case's folder), one line each
        self.warnings = [
            f"{len(ch.gone)} image(s) of {doc.cases[r].label} are no longer in {r}; they stay in the case file"
            for r, ch in images.items()
            if ch.gone and r not in touched
        ]
        store.attach(doc)
        for root, what in touched.items():
            doc.reopen(doc.cases[root], reopened_by or "leukoscan-cli", f"{reopen} ({what})")
        for path, is_dir in opened:
            doc.note_opened(path, is_dir)
        doc.add_items(items)
        if sample_id:
            doc.set_sample_id(doc.case_of_root(items[0].root), sample_id)
        doc.set_model(facts)
        if threshold is not None:
            doc.set_threshold(threshold)
        self.threshold = doc.threshold
        found = [doc.cell(str(it.path)) for it in items]
        self.cells: list[Cell] = [c for c in found if c is not None]
        assert len(self.cells) == len(items), "add_items made a cell of every item"  # todo indexes both alike
        keys = {c.key for c in self.cells}
        by_hash = [c for ch in images.values() for c in map(doc.cell, ch.changed) if c is not None]
        by_stat = rehash_changed(doc, [k for k in store.changed_files() if k in keys], store)
        self.changed = doc.content_changed(list(dict.fromkeys(by_hash + by_stat)))
        todo = [i for i, c in enumerate(self.cells) if c.result is None or c.result.status != CellStatus.OK]
        self.todo: list[ScanItem] = [items[i] for i in todo]
        self._todo_cells = [self.cells[i] for i in todo]
        self.skipped = len(items) - len(todo)
        self._pending: list[tuple[Cell, CellResult]] = []
        self._finished = False
        self.record: tuple[int, str] | None = None  # (rows, head) of the history chain when finished

    def _signed_off_changes(
        self, images: dict[str, ImageChange], reopen: str | None, facts: ModelFacts, threshold: float | None
    ) -> dict[str, str]:
        """root -> what this run changes in that signed-off case: new, changed (by sha256, whatever the size and
        mtime say) or gone images, another model or threshold than it was signed off with.  Such a run is refused
        (:class:`SignedOffChanged`) unless ``reopen`` gives a reason: then the cases are reopened with it before
        anything else is written (the app reopens them automatically, with a logged reason)."""
        doc = self.doc
        thr = rules.threshold_in_use(
            facts.threshold, threshold if threshold is not None else doc.thresholds.get(facts.name)
        )
        now = f"{facts.name} {facts.version}, threshold {thr:.3f}"
        touched: dict[str, str] = {}
        for root, case in doc.cases.items():
            if case.signoff is None:
                continue
            ch = images.get(root) or ImageChange(root)
            what = [
                f"{len(v)} {w} image(s)" for v, w in ((ch.new, "new"), (ch.changed, "changed"), (ch.gone, "gone")) if v
            ]
            signed = rules.model_basis(case.signoff.basis)
            if signed and signed != now:
                what.append(f"signed off with {signed}, this run: {now}")
            if what:
                touched[root] = ", ".join(what)
        if touched and not reopen:
            said = "; ".join(f"{doc.cases[r].label}: {w}" for r, w in touched.items())
            raise SignedOffChanged(
                f"signed-off case(s) would change ({said}); nothing was classified or written. "
                "Give --reopen REASON to reopen them (the reason is logged), or classify the new "
                "images as a separate case"
            )
        return touched

    def _one_patient(self, items: Sequence[ScanItem], sample_id: str | None) -> str:
        """One patient per record: ``sample_id`` (one folder's) must not rename the patient of a case the file
        holds, and a file named after a case's sample id (``BM-1.leukoscan``) takes no other folder.
        :class:`NotTheCase` otherwise; returns the sample id (spaces collapsed, "" for none)."""
        doc, path = self.doc, self.store.path
        sid = " ".join((sample_id or "").split())
        roots = list(dict.fromkeys(str(it.root) for it in items))
        if sid and len(roots) != 1:
            raise NotTheCase(f"--sample-id names one patient, this run holds {len(roots)} folders: give one folder")
        known = doc.cases.get(roots[0]) if sid else None
        if known is not None and known.sample_id and known.sample_id != sid:
            raise NotTheCase(
                f"the case of {known.root} is sample {known.sample_id} in {path}; {sid} would name another patient "
                "for its images: nothing was classified or written (reopen and change it in the app if it was mistyped)"
            )
        owners = {store_name(c.sample_id): c for c in doc.cases.values() if c.sample_id}
        owner = owners.get(Path(path).stem)
        new = [r for r in roots if r not in doc.cases]
        if owner is not None and (new or (sid and sid != owner.sample_id)):
            raise NotTheCase(
                f"{Path(path).name} is the case file of sample {owner.sample_id} ({owner.root}); it takes no other "
                f"sample ({', '.join(new) or sid}): nothing was classified or written. Give another --store"
            )
        return sid

    def add(self, result: CellResult) -> None:
        self._pending.append((self._todo_cells[result.index], result))
        if len(self._pending) >= self.chunk:
            self._store_pending()

    def _store_pending(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self.doc.add_results(self.facts, pending)

    def finish(self, timeout: float | None = 60.0) -> list[str]:
        """Store what is left, wait for the writes, close the case file; the write errors, if any."""
        if not self._finished:
            self._finished = True
            try:
                self._store_pending()
                self.record = self.store.head()
            finally:
                if not self.store.close(timeout):
                    self.store.errors.append(f"the case file {self.store.path} was not fully written in {timeout:g} s")
        return list(self.store.errors)
