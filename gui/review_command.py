"""What a person asks to do with the selected cells, typed: label them ALL or HEM, accept the model's class, clear
their review, or exclude them from % blasts.

The preview's buttons, the Review menu, the label keys and the cells' context menu all hand one of these to
:meth:`gui.review_actions.ReviewActions.apply`, which matches every variant (mypy checks that none is left out), so
a label, a command and "exclude" never travel as one string that the receiver has to tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from .document import Call

__all__ = ["Accept", "Clear", "Exclude", "ReviewRequest", "SetLabel"]


@dataclass(frozen=True)
class SetLabel:
    """Label the cells with a class (an override where the model said the other)."""

    call: Call


@dataclass(frozen=True)
class Accept:
    """Confirm what each cell shows: the model's class, or the exclusion of an image that failed the quality check."""


@dataclass(frozen=True)
class Clear:
    """Remove the cells' review."""


@dataclass(frozen=True)
class Exclude:
    """The cells stop counting (not a cell, artefact, duplicate ...); ``reason`` None: the person is asked."""

    reason: str | None = None


ReviewRequest = SetLabel | Accept | Clear | Exclude
