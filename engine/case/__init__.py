"""The case record: a Qt-free document of the opened cases (:mod:`.document`), the rules every front end
counts with (:mod:`.rules`), and its SQLite store (:mod:`.store`).

The names below are imported on first use (PEP 562), so a module the document itself depends on
(:mod:`engine.pipeline`) can import :mod:`.kinds` without an import cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cell import Cell, ReviewChange, Step
    from .document import CaseDocument, Event
    from .rules import CaseCounts
    from .values import Case, ModelFacts, Result, Review, SignOff, utc_now

_WHERE = {
    "Case": "values",
    "CaseCounts": "rules",
    "CaseDocument": "document",
    "Cell": "cell",
    "Event": "document",
    "ModelFacts": "values",
    "Result": "values",
    "Review": "values",
    "ReviewChange": "cell",
    "SignOff": "values",
    "Step": "cell",
    "utc_now": "values",
}

__all__ = [
    "Case",
    "CaseCounts",
    "CaseDocument",
    "Cell",
    "Event",
    "ModelFacts",
    "Result",
    "Review",
    "ReviewChange",
    "SignOff",
    "Step",
    "utc_now",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
