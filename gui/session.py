"""Autosaved review sessions: what the technician did, so a crash or a kill loses nothing.

A session file (JSON, ``<user data>/sessions/session-<id>.json``) holds the opened folders, the model,
the threshold and every review (keyed by absolute path, with the file's sha256 so a review is only
re-applied to the very same image).  It is rewritten atomically (temp file + rename) after every change
by the service's writer thread.  A ``QLockFile`` beside it is held while the app runs: a session
file whose lock is free belongs to an app that did not close normally and is offered for restore.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from PySide6.QtCore import QLockFile

from engine.fileio import atomic_open

SESSION_VERSION = 1
LABELS = ("ALL", "HEM")


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ReviewRecord:
    label: str  # the technician's label: "ALL" | "HEM"
    reviewer: str
    reviewed_at: str  # ISO 8601, UTC
    sha256: str  # of the image the review was made on
    model_label: str | None = None  # the model's prediction when reviewed (for the audit trail)
    p_all: float | None = None

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"review label must be one of {LABELS}, got {self.label!r}")


@dataclass
class SessionState:
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: str = field(default_factory=utc_now)
    saved: str = ""
    model: str = ""
    threshold: float | None = None  # None = the model card's default
    folders: list[str] = field(default_factory=list)
    reviews: dict[str, ReviewRecord] = field(default_factory=dict)
    exported_at: str = ""
    unexported: bool = False  # reviews or threshold changed since the last export

    def to_json(self) -> str:
        d = asdict(self)
        d["version"] = SESSION_VERSION
        d["reviews"] = {p: asdict(r) for p, r in self.reviews.items()}
        return json.dumps(d, indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "SessionState":
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("version") != SESSION_VERSION:
            raise ValueError("not a LeukoScan session file of a supported version")
        reviews = {}
        for p, r in (d.get("reviews") or {}).items():
            reviews[str(p)] = ReviewRecord(**r)
        thr = d.get("threshold")
        return cls(
            session_id=str(d.get("session_id") or uuid.uuid4().hex[:12]),
            started=str(d.get("started", "")),
            saved=str(d.get("saved", "")),
            model=str(d.get("model", "")),
            threshold=None if thr is None else float(thr),
            folders=[str(f) for f in d.get("folders") or []],
            reviews=reviews,
            exported_at=str(d.get("exported_at", "")),
            unexported=bool(d.get("unexported", False)),
        )

    def copy(self) -> "SessionState":
        return SessionState(
            session_id=self.session_id,
            started=self.started,
            saved=self.saved,
            model=self.model,
            threshold=self.threshold,
            folders=list(self.folders),
            reviews=dict(self.reviews),
            exported_at=self.exported_at,
            unexported=self.unexported,
        )


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, encoding="utf-8") as fh:
        fh.write(text)


class SessionFiles:
    """The sessions folder: this app's own session file (locked) and orphans of earlier runs."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "sessions"
        self._lock: QLockFile | None = None
        self.path: Path | None = None

    def claim(self, state: SessionState) -> Path:
        """Lock the file of ``state`` for this process (call on the GUI thread, once per session)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.release()
        path = self.dir / f"session-{state.session_id}.json"
        lock = QLockFile(str(path.with_suffix(".lock")))
        lock.setStaleLockTime(0)
        if not lock.tryLock(100):
            raise OSError(self._lock_problem(lock, state))
        self._lock, self.path = lock, path
        return path

    def _lock_problem(self, lock: QLockFile, state: SessionState) -> str:
        """Why ``lock`` could not be taken, in words: only a lock held by a live process means another
        window; a folder that cannot be written to (read-only, permissions, disk full) says so."""
        if lock.error() == QLockFile.LockError.LockFailedError:
            return f"session {state.session_id} is in use by another LeukoScan window"
        try:  # the operating system's own reason
            with tempfile.TemporaryFile(dir=self.dir):
                pass
            why = "permission denied" if lock.error() == QLockFile.LockError.PermissionError else "unknown error"
        except OSError as exc:
            why = exc.strerror or str(exc)
        return f"cannot write to the sessions folder {self.dir}: {why}"

    def release(self, delete: bool = False) -> None:
        if self._lock is not None:
            if delete and self.path is not None:
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
            self._lock.unlock()
            self._lock = None
            self.path = None

    def orphans(self) -> list[tuple[Path, SessionState]]:
        """Session files of apps that did not close normally, newest first (unreadable ones skipped)."""
        if not self.dir.is_dir():
            return []
        found = []
        for p in self.dir.glob("session-*.json"):
            if self.path is not None and p == self.path:
                continue
            lock = QLockFile(str(p.with_suffix(".lock")))
            lock.setStaleLockTime(0)
            if not lock.tryLock(0):
                continue  # another running LeukoScan owns it
            lock.unlock()
            try:
                state = SessionState.from_json(p.read_text(encoding="utf-8"))
            except (OSError, ValueError, TypeError, KeyError):
                continue
            found.append((p, state))
        found.sort(key=lambda t: t[1].saved or t[1].started, reverse=True)
        return found

    @staticmethod
    def write(path: Path, state: SessionState) -> None:
        """Serialise and write atomically (runs on the service's writer thread)."""
        state.saved = utc_now()
        atomic_write_text(path, state.to_json())
