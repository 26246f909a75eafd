"""Typed document events (refactoring issue, item 2): every event type has a handler in the case store, the
document emits only types it declares, and the store's handling is checked by type, not by a string."""

from __future__ import annotations

import dataclasses

import pytest

from engine.case import events
from engine.case.store import OPS_OF


def test_every_event_type_has_a_store_handler():
    assert set(OPS_OF) == set(events.EVENT_TYPES)


def test_event_types_are_frozen_dataclasses_of_one_base():
    for t in events.EVENT_TYPES:
        assert issubclass(t, events.CaseEvent) and dataclasses.is_dataclass(t)
        assert t.__dataclass_params__.frozen
    declared = set(events.EVENT_TYPES)
    defined = {
        t
        for t in vars(events).values()
        if isinstance(t, type) and issubclass(t, events.CaseEvent) and t is not events.CaseEvent
    }
    assert defined == declared  # a new event class must be declared (and so handled everywhere)


def test_an_unknown_event_type_fails_loudly_in_the_store():
    from engine.case.document import CaseDocument
    from engine.case.ops import ops_of

    @dataclasses.dataclass(frozen=True)
    class Surprise(events.CaseEvent):
        pass

    with pytest.raises(KeyError):
        ops_of(CaseDocument(), Surprise())
