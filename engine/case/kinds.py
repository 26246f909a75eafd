"""Moved to :mod:`engine.domain.kinds` (the ground floor); this name stays for the modules that import it."""

from ..domain.kinds import *  # noqa: F403
