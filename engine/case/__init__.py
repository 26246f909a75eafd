"""The case record: a Qt-free document of the opened cases (:mod:`.document`), the rules every front end
counts with (:mod:`.rules`), and its SQLite store (:mod:`.store`)."""

from .document import (Case, CaseDocument, Cell, Event, ModelFacts, Result, Review, ReviewChange, SignOff, Step,
                       utc_now)
from .rules import CaseCounts

__all__ = ["Case", "CaseCounts", "CaseDocument", "Cell", "Event", "ModelFacts", "Result", "Review", "ReviewChange",
           "SignOff", "Step", "utc_now"]
