"""Times are stored as UTC (ISO 8601, ``Z``) and shown in the workstation's local time with its UTC offset, so
a printed or displayed time is unambiguous wherever it is read."""

from __future__ import annotations

from datetime import UTC, datetime


def local_time(value: str | datetime | None) -> str:
    """``"2024-06-01T10:00:00Z"`` -> ``"2024-06-01 12:00 +02:00"`` on a CEST workstation; ``""`` for
    nothing; text that is not an ISO time is returned as it is (never hidden)."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        dt = value if value.tzinfo is not None else value.astimezone()  # a naive datetime: the local clock
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # stored times without an offset are UTC
    loc = dt.astimezone()
    off = loc.strftime("%z")
    return loc.strftime("%Y-%m-%d %H:%M") + (f" {off[:3]}:{off[3:]}" if off else "")
