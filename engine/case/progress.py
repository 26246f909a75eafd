"""What a person has looked at and what is left before sign-off: the part of the case document that a front end
asks while a case is reviewed (:class:`ReviewProgress`, mixed into :class:`~.core.DocumentCore`).

A cell left before sign-off (a flagged cell nobody reviewed, or an ALL call nobody confirmed) is reviewed only
after it was shown on screen at a readable size (:func:`.rules.seen_enough`); where it was shown is kept here and
written into its review (:attr:`.values.Review.shown_in`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from . import rules

if TYPE_CHECKING:
    from .cell import Cell
    from .values import Case


class ReviewProgress:
    """Needs ``cells_of`` (the document's); keeps ``shown``: cell key -> where a person last saw it."""

    def cells_of(self, case: Case | str | None) -> Iterator[Cell]:  # the document's
        raise NotImplementedError

    @property
    def shown(self) -> dict[str, str]:
        found: dict[str, str] | None = self.__dict__.get("_shown")
        if found is None:
            found = self.__dict__["_shown"] = {}
        return found

    def mark_shown(self, cells: Iterable[Cell], where: str) -> None:
        """These cells were shown on screen at a readable size (``where``: one of :data:`.rules.SHOWN_IN`)."""
        self.shown.update(dict.fromkeys((c.key for c in cells), rules.shown_in(where)))

    def unseen(self, cells: Iterable[Cell]) -> list[Cell]:
        """The cells a review would confirm without anyone having looked (:func:`.rules.seen_enough`)."""
        return [c for c in cells if not rules.seen_enough(c.left_before_signoff, self.shown.get(c.key, ""))]

    def left_before_signoff(self, case: Case | str | None) -> tuple[int, int, int]:
        """:func:`.rules.left_before_signoff` of a case's cells (None: every case): the one count the sign-off
        refusal, the walk and the summary line all give."""
        return rules.left_before_signoff(self.cells_of(case))
