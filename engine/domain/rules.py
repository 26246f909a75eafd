"""The case rules, each in one place: final label, overridden, open review, and the per-case counts.

The window, the CLI and the reports all count through :class:`CaseCounts.add`, so the words mean the same
everywhere: *flagged* is a cell the model flagged for review (:func:`engine.pipeline.decide`), reviewed or
not; *review open* is a flagged cell that nobody has reviewed yet.  % blasts and its interval come from
:func:`pct_blasts` / :func:`blast_interval` only.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Protocol

from .kinds import CellStatus
from .labels import (
    EXCLUDED,
    EXCLUSION_REASONS,
    LABELS,
    excluded_label,
    exclusion_reason,
    is_excluded,
    is_review_label,
    label_class,
    qc_exclusion,
)
from .stats import wilson_interval

__all__ = [
    "EXCLUDED",
    "EXCLUSION_REASONS",
    "LABELS",
    "SHOWN_IN",
    "CaseCounts",
    "TotalCounts",
    "blast_interval",
    "blast_unconfirmed",
    "cell_set",
    "excluded_label",
    "exclusion_reason",
    "final_label",
    "is_excluded",
    "is_review_label",
    "label_class",
    "left_before_signoff",
    "model_basis",
    "overridden",
    "p_all_text",
    "pct_blasts",
    "qc_exclusion",
    "review_open",
    "seen_enough",
    "shown_in",
    "signoff_mismatch",
    "signoff_refusal",
    "threshold_in_use",
    "wilson_interval",
    "with_total",
]


class _CellLike(Protocol):
    """What :func:`left_before_signoff` reads of a :class:`~engine.case.cell.Cell` (the rules stay below it)."""

    @property
    def status(self) -> str: ...
    @property
    def review_open(self) -> bool: ...
    @property
    def blast_unconfirmed(self) -> bool: ...


def threshold_in_use(card_threshold: float, chosen: float | None) -> float:
    """The decision threshold of a run or a case: the one the user chose, else the model card's."""
    return float(card_threshold) if chosen is None else float(chosen)


def p_all_text(p: float, prediction: str | None, threshold: float | None, digits: int = 2) -> str:
    """P(ALL) as text that never contradicts the class decided from it (ALL when P >= threshold).

    Plain rounding shows HEM's 0.4978 at threshold 0.50 as "0.50", which reads as ALL.  Then one more
    digit is shown ("0.498"); if even that crosses the threshold, the value is rounded toward its own
    side (down for HEM, up for ALL)."""
    if prediction not in LABELS or threshold is None:
        return f"{p:.{digits}f}"
    for d in (digits, digits + 1):
        text = f"{p:.{d}f}"
        if (float(text) >= threshold) == (prediction == "ALL"):
            return text
    scale = 10 ** (digits + 1)
    directed = math.ceil(p * scale) if prediction == "ALL" else math.floor(p * scale)
    return f"{directed / scale:.{digits + 1}f}"


def final_label(prediction: str | None, review_label: str | None, qc: str = "") -> str | None:
    """The reviewer's label where there is one; else excluded when the image failed the quality check (the
    score of a not-a-cell image means nothing, however confident); else the model's class."""
    if review_label:
        return review_label
    if qc and prediction:
        return qc_exclusion(qc)
    return prediction or None


def overridden(review_label: str | None, model_label_at_review: str | None) -> bool:
    """The reviewer set a class other than what the model said *when the review was made* (a later
    threshold change does not turn an accepted cell into an override).  An exclusion is not an override:
    it is counted and listed as excluded."""
    return bool(review_label in LABELS and model_label_at_review and review_label != model_label_at_review)


def review_open(flagged: bool, reviewed: bool) -> bool:
    """Review still open: flagged by the model and not reviewed."""
    return bool(flagged and not reviewed)


def blast_unconfirmed(label: str | None, reviewed: bool) -> bool:
    """A cell that counts as a blast (final label ALL) that no person has confirmed (accepted or relabelled).
    In a leukemia screen a blast call is the finding: a case is signed off only when none is left."""
    return label == "ALL" and not reviewed


#: Where a person saw a cell before reviewing it (the review records it: :attr:`.values.Review.shown_in`).
SHOWN_IN = ("walk", "preview", "gallery page")


def seen_enough(left_before_signoff: bool, shown_in: str) -> bool:
    """Whether a review of a cell counts as a person having looked: a cell a person must look at before
    sign-off (an open review, or an ALL call nobody confirmed) is reviewed only after it was shown on screen
    at a readable size (``shown_in``: one of :data:`SHOWN_IN`, "" = never shown); any other cell may be
    accepted in bulk.  A bulk accept of a whole case therefore confirms only the blast calls on screen."""
    return not left_before_signoff or shown_in in SHOWN_IN


def shown_in(where: str) -> str:
    """``where`` when it is one of :data:`SHOWN_IN`; ValueError otherwise."""
    if where not in SHOWN_IN:
        raise ValueError(f"unknown place a cell was shown: {where!r}")
    return where


def left_before_signoff(cells: Iterable[_CellLike]) -> tuple[int, int, int]:
    """(cells not classified, ALL calls not confirmed that are not flagged, flagged cells not reviewed) of
    :class:`~.cell.Cell` objects.  A flagged ALL call is counted once, as a flagged cell."""
    pending = blasts = open_ = 0
    for c in cells:
        pending += c.status == CellStatus.PENDING
        open_ += bool(c.review_open)
        blasts += bool(c.blast_unconfirmed and not c.review_open)
    return pending, blasts, open_


def signoff_refusal(pending: int, blasts: int, open_: int, sample_id: str = "") -> str:
    """Why a case with these counts (:func:`left_before_signoff`) cannot be signed off, in words; "" when it can.
    A signed report names its patient: no sample id, no sign-off."""
    why = []
    if pending:
        why.append(f"{pending} cell{'s are' if pending != 1 else ' is'} not classified yet")
    if blasts:
        why.append(f"{blasts} ALL call{'s are' if blasts != 1 else ' is'} not confirmed")
    if open_:
        why.append(f"{open_} flagged cell{'s are' if open_ != 1 else ' is'} not reviewed yet")
    if not sample_id.strip():
        why.append("it has no sample id (a signed report names its patient: give the sample id first)")
    return "; ".join(why)


# ------------------------------------------------------------------------------- what a sign-off covered

_CELL_SET = re.compile(r"cells (\d+), set ([0-9a-f]{16})")


def cell_set(sha256s: Iterable[str]) -> str:
    """``"cells 20, set 3fa9c0d1e2b4a5f6"``: how many images a case holds and a digest of their sorted sha256s.
    A sign-off records it (in its ``basis``), so any later change to the set of images or to one image's
    pixels is visible to every report."""
    shas = sorted(s or "" for s in sha256s)
    digest = hashlib.sha256("\n".join(shas).encode("ascii", "replace")).hexdigest()[:16]
    return f"cells {len(shas)}, set {digest}"


def model_basis(basis: str) -> str:
    """The model/threshold part of a sign-off's basis (``"vgg19 2.0.0, threshold 0.500"``)."""
    return (basis or "").split(";", 1)[0].strip()


def signoff_mismatch(basis: str, sha256s: Iterable[str]) -> str:
    """ "" when the images now in the case are the ones signed off (or the sign-off predates cell sets);
    else what differs, in words, for a report to print in red."""
    m = _CELL_SET.search(basis or "")
    if m is None:
        return ""
    shas = list(sha256s)
    now = cell_set(shas)
    if now == m.group(0):
        return ""
    n_now = len(shas)
    return (
        f"the images are not the ones signed off (signed: {m.group(1)} images, set {m.group(2)}; now: "
        f"{n_now} images, set {now[-16:]})"
    )


def pct_blasts(n_all: int, n_hem: int) -> float | None:
    """% blasts of a case: ALL cells of the cells that count (ALL + HEM); None when none count."""
    n = n_all + n_hem
    return 100.0 * n_all / n if n else None


def blast_interval(n_all: int, n_hem: int) -> tuple[float, float] | None:
    """Wilson 95% interval of % blasts, in percent (the cells of one patient are one binomial sample)."""
    ci = wilson_interval(n_all, n_all + n_hem)
    return None if ci is None else (100.0 * ci[0], 100.0 * ci[1])


@dataclass
class CaseCounts:
    case: str
    cells: int = 0
    classified: int = 0
    all: int = 0
    hem: int = 0
    flagged: int = 0  # flagged by the model, reviewed or not
    review_open: int = 0  # flagged and not reviewed yet
    blasts_unconfirmed: int = 0  # final label ALL, not confirmed by a person
    excluded: int = 0  # final label EXCLUDED (by a reviewer, or failed QC and not labelled): not in % blasts
    errors: int = 0
    reviewed: int = 0
    overridden: int = 0
    qc: int = 0  # failed the input quality check
    pending: int = 0  # not classified yet

    def add(
        self,
        status: str | None,
        label: str | None,
        flagged: bool,
        reviewed: bool,
        qc: bool = False,
        is_override: bool = False,
    ) -> None:
        """Count one cell.  ``status``: :class:`.kinds.CellStatus` OK | ERROR, or None (not classified yet);
        ``label``: its final label."""
        self.cells += 1
        if status is None:
            self.pending += 1
            return
        if status != CellStatus.OK:
            self.errors += 1
            return
        self.classified += 1
        kind = label_class(label)
        if kind == "ALL":
            self.all += 1
        elif kind == "HEM":
            self.hem += 1
        elif kind == EXCLUDED:
            self.excluded += 1
        self.flagged += bool(flagged)
        self.reviewed += bool(reviewed)
        self.review_open += review_open(flagged, reviewed)
        self.blasts_unconfirmed += blast_unconfirmed(label, reviewed)
        self.qc += bool(qc)
        self.overridden += bool(is_override)

    @property
    def pct_blasts(self) -> float | None:
        return pct_blasts(self.all, self.hem)

    @property
    def pct_interval(self) -> tuple[float, float] | None:
        """Wilson 95% interval of % blasts, in percent."""
        return blast_interval(self.all, self.hem)

    def merged(self, other: CaseCounts) -> None:
        for f in fields(self):
            if f.name != "case":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def with_total(per_case: list[CaseCounts], name: str) -> list[CaseCounts]:
    """The cases, then (with more than one) a total row of counts.  Its % blasts is not shown: the cells
    of different patients are not one sample (:class:`TotalCounts`)."""
    if len(per_case) <= 1:
        return list(per_case)
    total = TotalCounts(name)
    for cc in per_case:
        total.merged(cc)
    return [*per_case, total]


@dataclass
class TotalCounts(CaseCounts):
    """Counts over several cases: sums only; no pooled % blasts."""

    @property
    def pct_blasts(self) -> float | None:
        return None

    @property
    def pct_interval(self) -> tuple[float, float] | None:
        return None
