"""A cell's label, typed: :class:`Call` (ALL or HEM) or :class:`Excluded` (reason).

The store, the CSV reports and the hash chain keep the text they always held (``"ALL"``, ``"HEM"``,
``"EXCLUDED: <reason>"``): :func:`parse_label` reads that text into a :data:`Label`, ``str(label)`` writes it back,
so no front end tests a prefix by hand (``startswith("EXCLUDED")``) and the class names are written once.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ALL",
    "EXCLUDED",
    "EXCLUSION_REASONS",
    "HEM",
    "LABELS",
    "Call",
    "Excluded",
    "Label",
    "exclusion_reason",
    "excluded_label",
    "is_excluded",
    "is_review_label",
    "label_class",
    "parse_label",
    "qc_exclusion",
]


class Call(StrEnum):
    """The two classes a model decides between (a member *is* its stored text: ``Call.ALL == "ALL"``)."""

    ALL = "ALL"  # leukemic blast: the positive class
    HEM = "HEM"  # normal


ALL, HEM = Call.ALL.value, Call.HEM.value
#: The classes, positive first: the one tuple of class names (model cards, training and the case rules use it).
LABELS = (ALL, HEM)

#: A third final label: the image does not count (not a cell, an artefact, a duplicate ...).  As a review label
#: it is written ``"EXCLUDED: <reason>"`` (one text, so the history and its hash chain carry the reason).
EXCLUDED = "EXCLUDED"
EXCLUSION_REASONS = ("not a cell", "artefact", "smudge", "duplicate", "out of focus")
_EXCLUDED_PREFIX = EXCLUDED + ": "


@dataclass(frozen=True)
class Excluded:
    """The image does not count, for ``reason``; ``str()`` is its stored text."""

    reason: str

    def __str__(self) -> str:
        return _EXCLUDED_PREFIX + self.reason


Label = Call | Excluded


_CALLS: dict[object, Call] = {c.value: c for c in Call}  # (a look-up: Call(text) is slow for a report's every row)


def parse_label(text: object) -> Label | None:
    """The label a stored text holds; None for anything else (None, "", an exclusion without a reason)."""
    call = _CALLS.get(text) if isinstance(text, str) else None
    if call is not None:
        return call
    if isinstance(text, str) and text.startswith(_EXCLUDED_PREFIX) and text[len(_EXCLUDED_PREFIX) :].strip():
        return Excluded(text[len(_EXCLUDED_PREFIX) :])
    return None


def excluded_label(reason: str) -> str:
    """The review label that excludes a cell for ``reason`` (required, one line)."""
    text = " ".join(str(reason or "").split())
    if not text:
        raise ValueError("excluding a cell needs a reason (e.g. 'not a cell', 'artefact', 'duplicate')")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text):
        raise ValueError("the reason for an exclusion may not contain control characters")
    return str(Excluded(text))


def qc_exclusion(qc: str) -> str:
    """The final label of an image that failed the input quality check and nobody labelled yet."""
    return excluded_label(f"failed the quality check ({qc})")


def is_review_label(label: object) -> bool:
    return parse_label(label) is not None


def label_class(label: str | None) -> str | None:
    """ "ALL" | "HEM" | "EXCLUDED" | None for a final or review label."""
    parsed = parse_label(label)
    if parsed is None:
        return None
    return EXCLUDED if isinstance(parsed, Excluded) else parsed.value


def is_excluded(label: str | None) -> bool:
    """An exclusion label, or the class word :data:`EXCLUDED` itself (what :func:`label_class` gives)."""
    return label == EXCLUDED or isinstance(parse_label(label), Excluded)


def exclusion_reason(label: str | None) -> str:
    """Why a cell is excluded ("" when it is not)."""
    parsed = parse_label(label)
    return parsed.reason if isinstance(parsed, Excluded) else ""
