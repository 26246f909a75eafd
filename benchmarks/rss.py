"""Resident memory of this process, for the benchmarks' memory figures (imported from the script folder)."""

from __future__ import annotations

import os
import resource
import sys


def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: peak RSS instead
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r / 2**20 if sys.platform == "darwin" else r / 1024
