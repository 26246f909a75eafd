"""Moved to :mod:`engine.domain.stats` (the ground floor); this name stays for the modules that import it."""

from .domain.stats import *  # noqa: F403
