"""The sign-off part of the case document (:class:`SignOffs`): a case is signed off once every cell is classified,
every flagged cell reviewed, every ALL call confirmed and it has a sample id; while it is, the reviews of its cells
are locked until it is reopened, with a reason.  A sign-off records what it rested on (the model, its version, the
threshold and the exact images: :func:`.rules.cell_set`), so a later change is visible to every report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import events as ev
from . import rules
from .cell import Cell
from .core import DocumentCore, checked_name
from .decisions import Decisions
from .values import Case, SignOff, utc_now

__all__ = ["AUTOMATIC", "SignOffs"]

AUTOMATIC = "LeukoScan (automatic)"  # who reopens a case whose images changed after the sign-off


class SignOffs:
    def __init__(self, core: DocumentCore, decisions: Decisions) -> None:
        self.core = core
        self.decisions = decisions

    def signed_names(self) -> set[str]:
        """The display names of the signed-off cases."""
        return {c.name for c in self.core.cases.values() if c.signoff is not None}

    def locked(self, cell: Cell) -> bool:
        """The cell's case is signed off: its review cannot be changed (nor undone, nor redone)."""
        case = self.core.case_named(cell.case)
        return case is not None and case.signoff is not None

    def basis(self, case: Case | None = None) -> str:
        """What a verdict rests on now: the model, its version and the threshold; with ``case``, also the exact
        images it covers (:func:`.rules.cell_set`)."""
        f = self.decisions.current
        basis = f"{f.name} {f.version}, threshold {self.decisions.threshold:.3f}" if f is not None else ""
        if case is not None:
            basis += "; " + rules.cell_set(c.sha256 for c in self.core.cells_of(case.name))
        return basis

    def signed_off_elsewhere(self) -> list[Case]:
        """Signed-off cases whose verdict no longer rests on the current model and threshold."""
        now = self.basis()
        return [
            c
            for c in self.core.cases.values()
            if c.signoff is not None and c.signoff.basis and rules.model_basis(c.signoff.basis) != now
        ]

    def signoff_mismatch(self, case: Case | str) -> str:
        """ "" when the case's images are the ones its sign-off covered; else what differs (in words)."""
        case = self.core.find_case(case)
        if case.signoff is None:
            return ""
        return rules.signoff_mismatch(case.signoff.basis, (c.sha256 for c in self.core.cells_of(case.name)))

    def signoff_of(self, case: Case | str) -> SignOff | None:
        """The sign-off of a case (given as its display name, root or :class:`Case`); None when not signed
        off or unknown."""
        try:
            return self.core.find_case(case).signoff
        except KeyError:
            return None

    @property
    def signoffs(self) -> dict[str, SignOff]:
        """root -> sign-off of every signed-off case (what the reports take, keyed like their ``root``)."""
        return {c.root: c.signoff for c in self.core.cases.values() if c.signoff is not None}

    def can_sign_off(self, case: Case | str) -> tuple[bool, str]:
        """(True, "") when the case can be signed off, else (False, why in words): it has no cells, cells
        not classified yet, ALL calls that no person confirmed (:func:`.rules.blast_unconfirmed`), flagged
        cells not reviewed yet (:func:`.rules.review_open`), no sample id (a signed report names one patient), or is
        signed off."""
        case = self.core.find_case(case)
        if case.signoff is not None:
            so = case.signoff
            return False, f"the case is already signed off by {so.by}" + (f" on {so.at}" if so.at else "")
        cells = list(self.core.cells_of(case.name))
        if not cells:
            return False, "the case has no cells"
        why = rules.signoff_refusal(*self.core.left_before_signoff(case), sample_id=case.sample_id)
        return (False, why) if why else (True, "")

    def sign_off(self, case: Case | str, by: str, comment: str = "", at: str | None = None) -> SignOff:
        """Sign the case off: its reviews are locked until :meth:`reopen`.  Raises ValueError (the reason
        of :meth:`can_sign_off`, or a missing name) when it cannot be signed off."""
        case = self.core.find_case(case)
        by = checked_name(by)
        if not by:
            raise ValueError("a sign-off needs the name of who signs off")
        ok, why = self.can_sign_off(case)
        if not ok:
            raise ValueError(f"{case.label} cannot be signed off: {why}")
        basis = self.basis(case)
        so = SignOff(by, at or utc_now(), str(comment or "").strip(), basis)
        case.signoff = so
        self.core.unexported = True
        self.core.emit(ev.SignOffChanged(case.root, ev.SignOffAction.SIGN_OFF, so.by, so.at, so.comment, basis))
        return so

    def reopen(self, case: Case | str, by: str, reason: str, at: str | None = None) -> SignOff:
        """Undo a sign-off (its reviews can be changed again); who and why are required and logged.
        Returns the sign-off removed.  Raises ValueError when the case is not signed off, or ``by`` or
        ``reason`` is empty."""
        case = self.core.find_case(case)
        by = checked_name(by)
        reason = str(reason or "").strip()
        if case.signoff is None:
            raise ValueError(f"{case.label} is not signed off")
        if not by:
            raise ValueError("reopening a case needs the name of who reopens it")
        if not reason:
            raise ValueError("reopening a signed-off case needs a reason")
        old, case.signoff = case.signoff, None
        self.core.unexported = True
        self.core.emit(ev.SignOffChanged(case.root, ev.SignOffAction.REOPEN, by, at or utc_now(), reason))
        return old

    def signed_cases_touched(self, cells: Iterable[Cell]) -> dict[str, list[Cell]]:
        """root -> the given cells that belong to a signed-off case."""
        by_case: dict[str, list[Cell]] = {}
        for c in cells:
            case = self.core.cases.get(str(c.root))
            if case is not None and case.signoff is not None:
                by_case.setdefault(case.root, []).append(c)
        return by_case

    def reopen_touched(self, cells: Sequence[Cell], what: str) -> None:
        """A signed-off case whose set of images or whose pixels changed is no longer what was signed: it is
        reopened, with the reason logged, so it is reviewed (and signed) again.  The same rule as the CLI's,
        which refuses such a change unless ``--reopen REASON`` is given."""
        for root, changed in self.signed_cases_touched(cells).items():
            names = ", ".join(c.file for c in changed[:3]) + (
                f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            )
            self.reopen(self.core.cases[root], AUTOMATIC, f"{what}: {names}")
