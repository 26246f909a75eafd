"""Moved to :mod:`engine.domain.rules` (the ground floor); this name stays for the modules that import it."""

from ..domain.rules import *  # noqa: F403
