"""No module of engine/ or gui/ over 600 lines (issue 20 item 4): a module that grows past it is split by what
it does (engine/cli/ has one module per command) before the next change lands in it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = 600


def test_engine_and_gui_modules_stay_under_600_lines():
    sizes = {
        str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
        for package in ("engine", "gui")
        for p in sorted((REPO / package).rglob("*.py"))
    }
    assert len(sizes) > 40  # the packages were found
    assert {name: n for name, n in sizes.items() if n > LIMIT} == {}
