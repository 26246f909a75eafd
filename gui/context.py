"""When the window's actions are enabled: a few named facts about the window (the *context*) and, per action, an
expression over them, in the manner of napari's app-model (``Action(enablement=...)`` over context keys).

The window sets the facts (:meth:`ActionContext.update`); :func:`gui.actions.build_actions` turns the expressions
into enabled and disabled actions whenever a fact an expression names changes.  So what enables an action is
declared once, beside its command in :data:`gui.actions.COMMANDS`, and no code enables an action by hand.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import QObject, Signal


class Key(StrEnum):
    """The facts an enablement may name."""

    RUNNING = "running"  # a classification run is under way (or being cancelled)
    CAN_UNDO = "can_undo"  # the document has a review step to undo
    CAN_REDO = "can_redo"  # ... and one to redo
    HAS_MODEL = "has_model"  # a model is loaded (cells can be classified)
    CASE_LOCKED = "case_locked"  # the current case is signed off: its reviews are locked


class When(ABC):
    """An expression over the context: ``RUNNING``, ``~RUNNING``, ``HAS_MODEL & ~RUNNING``, ``A | B``."""

    @abstractmethod
    def __call__(self, facts: Mapping[Key, bool]) -> bool: ...

    @abstractmethod
    def keys(self) -> frozenset[Key]:
        """The facts the expression reads: a change of any other fact cannot change its value."""

    def __invert__(self) -> When:
        return _Not(self)

    def __and__(self, other: When) -> When:
        return _Both(self, other)

    def __or__(self, other: When) -> When:
        return _Either(self, other)


@dataclass(frozen=True)
class Is(When):
    key: Key

    def __call__(self, facts: Mapping[Key, bool]) -> bool:
        return bool(facts.get(self.key, False))

    def keys(self) -> frozenset[Key]:
        return frozenset({self.key})

    def __str__(self) -> str:
        return self.key.value


@dataclass(frozen=True)
class _Always(When):
    def __call__(self, facts: Mapping[Key, bool]) -> bool:
        return True

    def keys(self) -> frozenset[Key]:
        return frozenset()

    def __str__(self) -> str:
        return "always"


@dataclass(frozen=True)
class _Not(When):
    inner: When

    def __call__(self, facts: Mapping[Key, bool]) -> bool:
        return not self.inner(facts)

    def keys(self) -> frozenset[Key]:
        return self.inner.keys()

    def __str__(self) -> str:
        return f"not {self.inner}"


@dataclass(frozen=True)
class _Both(When):
    left: When
    right: When

    def __call__(self, facts: Mapping[Key, bool]) -> bool:
        return self.left(facts) and self.right(facts)

    def keys(self) -> frozenset[Key]:
        return self.left.keys() | self.right.keys()

    def __str__(self) -> str:
        return f"({self.left} and {self.right})"


@dataclass(frozen=True)
class _Either(When):
    left: When
    right: When

    def __call__(self, facts: Mapping[Key, bool]) -> bool:
        return self.left(facts) or self.right(facts)

    def keys(self) -> frozenset[Key]:
        return self.left.keys() | self.right.keys()

    def __str__(self) -> str:
        return f"({self.left} or {self.right})"


ALWAYS: When = _Always()
RUNNING = Is(Key.RUNNING)
CAN_UNDO = Is(Key.CAN_UNDO)
CAN_REDO = Is(Key.CAN_REDO)
HAS_MODEL = Is(Key.HAS_MODEL)
CASE_LOCKED = Is(Key.CASE_LOCKED)


class ActionContext(QObject):
    """The facts now (each False until set).  ``changed`` carries the keys whose value changed, so only the actions
    that name one of them are looked at again."""

    changed = Signal(object)  # frozenset[Key]

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._facts: dict[Key, bool] = dict.fromkeys(Key, False)

    def __getitem__(self, key: Key) -> bool:
        return self._facts[key]

    def facts(self) -> Mapping[Key, bool]:
        return dict(self._facts)

    def update(self, facts: Mapping[Key, bool]) -> frozenset[Key]:
        """Set the facts given; returns (and announces, when any) the keys whose value changed."""
        moved = frozenset(k for k, v in facts.items() if self._facts[Key(k)] != bool(v))
        for k in moved:
            self._facts[k] = bool(facts[k])
        if moved:
            self.changed.emit(moved)
        return moved
