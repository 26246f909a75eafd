"""What made a run folder or a model card: the command line, the recipe's name and the commit of the code.

A card's numbers are only as good as the knowledge of what produced them: the recipe command (``probe-fit``,
``e2e``, ``frozen``) writes :func:`record` into the run's ``metrics.json``; ``export`` writes the card's
``provenance`` block (:func:`card_block`): its own command and commit, the recipe, and the run's record.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

#: The paths whose uncommitted changes make a commit hash an incomplete answer to "which code made this".
CODE_PATHS = ("training", "engine")

_command: list[str] = []


def set_command(argv: list[str]) -> None:
    """The arguments ``leukoscan-train`` runs with (``main`` sets them once)."""
    _command[:] = [str(a) for a in argv]


def command() -> str:
    """The command line as a shell would take it back; "" when not run through ``leukoscan-train``."""
    return shlex.join(["leukoscan-train", *_command]) if _command else ""


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out


def commit() -> dict:
    """{"commit": the checked-out commit (None outside a git checkout), "uncommitted_changes": files under
    :data:`CODE_PATHS` that differ from it (the code that ran is that commit plus these)}."""
    head = (_git("rev-parse", "HEAD") or "").strip()
    changed = _git("status", "--porcelain", "--", *CODE_PATHS)
    files = sorted(line[3:] for line in (changed or "").splitlines() if line.strip())  # "XY path"
    return {"commit": head or None, "uncommitted_changes": files}


def record(recipe: str) -> dict:
    """The run folder's provenance: {command, recipe, commit, uncommitted_changes}."""
    return {"command": command(), "recipe": recipe, **commit()}


def card_block(run_metrics: dict, recipe: str | None = None) -> dict:
    """The card's ``provenance``: the export's own command and commit, the recipe (``recipe``, else the one the run
    names), and the run's record (``run``; absent for a run folder written before runs recorded it)."""
    run = run_metrics.get("provenance")
    recipe = recipe or (run or {}).get("recipe") or (run_metrics.get("recipe") or {}).get("name")
    block = {"command": command(), "recipe": recipe, **commit()}
    if run:
        block["run"] = run
    return block
